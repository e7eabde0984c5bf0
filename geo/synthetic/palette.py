"""Label ids and colour palettes of the synthetic scene (pure numpy).

The renderer draws every surface as a *label* (one byte per pixel) and turns labels into colours
with a 256-entry palette at the end. Labels 0..63 are fixed surfaces (ground, crops, trees, cars,
construction materials); labels 64..255 are roof colours sampled per seed. The palette of an epoch
depends on its season, so the same field or tree changes colour between the two epochs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "Season",
    "SEASONS",
    "LBL",
    "CROPS",
    "ROOF_FIRST",
    "ROOF_MATERIALS",
    "epoch_palette",
    "sample_roof_palette",
]

Season = Literal["spring", "summer", "autumn", "winter"]
SEASONS: tuple[Season, ...] = ("spring", "summer", "autumn", "winter")

#: fixed surface labels
LBL: dict[str, int] = {
    "nodata": 0,
    "soil": 1,
    "grass": 2,
    "asphalt": 3,
    "concrete": 4,
    "mark_white": 5,
    "mark_yellow": 6,
    "water": 7,
    "dirt": 8,
    "paving": 9,
    "rubble": 10,
    "foundation": 11,
    "rebar": 12,
    "bricks": 13,
    "scaffold": 14,
    "timber": 15,
    "wall": 16,
    "car_window": 17,
    "solar": 18,
    "site_soil": 19,
    # crops 20..27, tree crowns 28..31, car paints 32..39
}
CROPS: tuple[str, ...] = ("rice", "vegetable", "corn", "fallow", "rape", "tea", "orchard", "wheat")
for _i, _c in enumerate(CROPS):
    LBL[f"crop_{_c}"] = 20 + _i
for _i in range(4):
    LBL[f"tree_{_i}"] = 28 + _i
for _i in range(8):
    LBL[f"car_{_i}"] = 32 + _i
ROOF_FIRST = 64

#: roof materials: name -> (base RGB, jitter, roof kind)
ROOF_MATERIALS: dict[str, tuple[tuple[int, int, int], int, str]] = {
    "concrete": ((150, 148, 140), 18, "flat"),
    "light": ((196, 194, 188), 14, "flat"),
    "terracotta": ((168, 84, 62), 18, "gable"),
    "grey_tile": ((96, 98, 102), 14, "gable"),
    "blue_steel": ((58, 104, 160), 16, "steel"),
    "white_steel": ((200, 204, 206), 10, "steel"),
    "green": ((70, 120, 92), 14, "flat"),
    "brown": ((120, 96, 76), 14, "flat"),
}

_FIXED: dict[str, tuple[int, int, int]] = {
    "soil": (142, 118, 92),
    "asphalt": (78, 80, 82),
    "concrete": (170, 168, 160),
    "mark_white": (232, 232, 226),
    "mark_yellow": (222, 186, 60),
    "water": (52, 78, 74),
    "dirt": (150, 132, 104),
    "paving": (176, 150, 130),
    "rubble": (146, 136, 124),
    "foundation": (184, 182, 172),
    "rebar": (120, 76, 54),
    "bricks": (166, 82, 60),
    "scaffold": (46, 112, 74),
    "timber": (176, 144, 96),
    "wall": (206, 200, 186),
    "car_window": (34, 38, 44),
    "solar": (34, 46, 84),
    "site_soil": (160, 128, 92),
}
_CAR_PAINTS = [
    (226, 226, 224),
    (28, 28, 30),
    (160, 162, 166),
    (110, 112, 116),
    (150, 30, 30),
    (40, 64, 120),
    (214, 214, 210),
    (190, 170, 130),
]
# season -> (grass, tree crowns x4, crops x8)
_VEG: dict[str, dict[str, object]] = {
    "spring": {
        "grass": (104, 128, 70),
        "trees": [(62, 100, 52), (80, 116, 58), (56, 88, 54), (96, 122, 66)],
        "crops": [
            (110, 120, 96),
            (92, 140, 64),
            (124, 130, 80),
            (140, 118, 90),
            (206, 190, 60),
            (64, 112, 58),
            (98, 126, 70),
            (120, 150, 70),
        ],
    },
    "summer": {
        "grass": (86, 122, 58),
        "trees": [(46, 86, 40), (60, 100, 46), (40, 74, 40), (72, 108, 52)],
        "crops": [
            (84, 140, 60),
            (78, 132, 56),
            (92, 138, 58),
            (134, 120, 88),
            (112, 128, 64),
            (52, 102, 50),
            (80, 118, 56),
            (150, 140, 80),
        ],
    },
    "autumn": {
        "grass": (132, 128, 86),
        "trees": [(92, 98, 52), (130, 110, 60), (70, 84, 50), (150, 100, 56)],
        "crops": [
            (176, 152, 84),
            (96, 128, 66),
            (180, 160, 96),
            (140, 118, 88),
            (130, 120, 84),
            (60, 100, 52),
            (110, 112, 64),
            (170, 150, 96),
        ],
    },
    "winter": {
        "grass": (128, 124, 96),
        "trees": [(86, 92, 66), (110, 104, 80), (64, 78, 58), (120, 108, 84)],
        "crops": [
            (132, 116, 90),
            (96, 118, 72),
            (138, 122, 96),
            (144, 120, 94),
            (102, 122, 74),
            (62, 96, 56),
            (116, 108, 84),
            (108, 124, 76),
        ],
    },
}


def sample_roof_palette(
    rng: np.random.Generator, weights: dict[str, float]
) -> tuple[np.ndarray, list[str]]:
    """Sample the 192 roof colours of one scene: ``(colours (192,3) uint8, material per entry)``.

    ``weights`` gives the relative frequency of each material in :data:`ROOF_MATERIALS`.
    """
    names = list(ROOF_MATERIALS)
    p = np.array([weights.get(n, 0.0) for n in names], float)
    p = p / p.sum()
    mats = rng.choice(len(names), size=256 - ROOF_FIRST, p=p)
    cols = np.zeros((256 - ROOF_FIRST, 3), np.uint8)
    for i, m in enumerate(mats):
        base, jit, _ = ROOF_MATERIALS[names[m]]
        cols[i] = np.clip(np.array(base) + rng.normal(0, jit / 4, 3) + rng.normal(0, jit), 0, 255)
    return cols, [names[m] for m in mats]


def epoch_palette(season: str, roof_colours: np.ndarray, soil_tint: np.ndarray) -> np.ndarray:
    """The (256, 3) uint8 RGB palette of one epoch: fixed surfaces, seasonal vegetation, roofs."""
    pal = np.zeros((256, 3), np.float64)
    for name, rgb in _FIXED.items():
        pal[LBL[name]] = rgb
    for lbl in ("soil", "dirt", "site_soil"):
        pal[LBL[lbl]] = pal[LBL[lbl]] * soil_tint
    veg = _VEG[season]
    pal[LBL["grass"]] = np.asarray(veg["grass"], float)
    for i, rgb in enumerate(veg["trees"]):  # type: ignore[arg-type]
        pal[LBL[f"tree_{i}"]] = rgb
    for i, rgb in enumerate(veg["crops"]):  # type: ignore[arg-type]
        pal[20 + i] = rgb
    for i, rgb in enumerate(_CAR_PAINTS):
        pal[LBL[f"car_{i}"]] = rgb
    pal[ROOF_FIRST:] = roof_colours
    return np.clip(pal, 0, 255).astype(np.uint8)
