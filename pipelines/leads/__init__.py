"""From candidates to leads: georeference, merge across seams, filter, assemble.

The pure core of the leads stage. ``georef`` turns tile-pixel boxes into map polygons,
``merge`` fuses duplicates across tile overlaps in map units, ``filters`` decides what is a lead
(score, area, coverage, permits, known buildings) and ``build`` assembles the leads GeoDataFrame
in the documented schema (:mod:`pipelines.schema`).
"""

from pipelines.leads.georef import MapCandidates, georeference
from pipelines.leads.merge import merge_candidates

__all__ = ["MapCandidates", "georeference", "merge_candidates"]
