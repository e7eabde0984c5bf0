"""The detector's classes: one place defines their ids, names and Chinese labels.

``new_building`` (a completed new structure, extension or rooftop addition) feeds the *existing*
ledger (存量违法建筑); ``construction`` (foundations, frames, scaffolding, materials) feeds the
*in-progress* ledger (在建违法建筑).

>>> CLASS_NAMES[1], CLASS_IDS["new_building"]
('construction', 0)
"""

from __future__ import annotations

__all__ = ["CLASS_NAMES", "CLASS_IDS", "CLASS_LABELS_ZH"]

CLASS_NAMES: tuple[str, ...] = ("new_building", "construction")
CLASS_IDS: dict[str, int] = {name: i for i, name in enumerate(CLASS_NAMES)}
CLASS_LABELS_ZH: dict[str, str] = {"new_building": "新建建筑", "construction": "在建工程"}
