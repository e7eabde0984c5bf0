"""Where concentrated clearance should go: unit ranking, hot spots, interactive and static maps.

``priorities`` (pure aggregation and the documented score), ``hotspots`` (clusters in metres),
``tables`` (ranked CSV/XLSX), ``folium_map`` (interactive HTML, offline-capable), ``static``
(PNG maps and trend chart), ``overlay`` (flight orthophoto for the web map), ``render``
(:func:`render_all`: every output in one call), ``sample`` (a tiny seeded district).
"""

from pipelines.maps.render import Priorities, compute_priorities, render_all, write_priorities

__all__ = ["Priorities", "compute_priorities", "render_all", "write_priorities"]
