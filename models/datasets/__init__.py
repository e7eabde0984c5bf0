"""Training-data builders: each writes a standard ultralytics 6-channel detection dataset.

Layout written by every builder (see :mod:`models.datasets.writer`)::

    root/images/{train,val}/NAME.tif   6-page TIFF: flight R, G, B then baseline R, G, B (uint8)
    root/labels/{train,val}/NAME.txt   YOLO boxes: class cx cy w h (normalised)
    root/data.yaml                     channels: 6, names {0: new_building, 1: construction}

Builders: :mod:`.synthetic` (rendered districts), :mod:`.fairdrone` (pseudo pairs from real
single-date drone imagery), :mod:`.labelled` (user-labelled real pairs).
"""

from __future__ import annotations

__all__: list[str] = []
