"""Radiometric normalisation between epochs: per-band histogram matching as a 256-entry LUT.

The LUT is computed once per pair from decimated reads of the common valid area (cheap, global)
and applied to every baseline tile, so colour and season differences are not read as change.

>>> src = np.array([[10, 20, 30, 40]], dtype=np.uint8)
>>> ref = np.array([[110, 120, 130, 140]], dtype=np.uint8)
>>> lut = histogram_lut(src, ref)
>>> lut[src].tolist()
[[110, 120, 130, 140]]
"""

from __future__ import annotations

import numpy as np

__all__ = ["histogram_lut", "match_luts", "apply_luts"]


def histogram_lut(src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """uint8 LUT mapping the value distribution of ``src`` onto that of ``ref`` (uint8 arrays)."""
    src_hist = np.bincount(src.ravel(), minlength=256).astype(np.float64)
    ref_hist = np.bincount(ref.ravel(), minlength=256).astype(np.float64)
    if src_hist.sum() == 0 or ref_hist.sum() == 0:
        return np.arange(256, dtype=np.uint8)
    src_cdf = np.cumsum(src_hist) / src_hist.sum()
    ref_cdf = np.cumsum(ref_hist) / ref_hist.sum()
    # value at the middle of each source bin's CDF step, looked up in the reference CDF
    src_mid = src_cdf - src_hist / (2.0 * src_hist.sum())
    ref_mid = ref_cdf - ref_hist / (2.0 * ref_hist.sum())
    present = ref_hist > 0
    lut = np.interp(src_mid, ref_mid[present], np.arange(256)[present])
    return np.clip(np.rint(lut), 0, 255).astype(np.uint8)


def match_luts(src_pixels: np.ndarray, ref_pixels: np.ndarray) -> np.ndarray:
    """(3, 256) LUTs from (n, 3) uint8 baseline and (m, 3) uint8 flight pixels."""
    if src_pixels.ndim != 2 or src_pixels.shape[1] != 3:
        raise ValueError(f"src_pixels must be (n, 3), got {src_pixels.shape}")
    if ref_pixels.ndim != 2 or ref_pixels.shape[1] != 3:
        raise ValueError(f"ref_pixels must be (m, 3), got {ref_pixels.shape}")
    return np.stack([histogram_lut(src_pixels[:, i], ref_pixels[:, i]) for i in range(3)])


def apply_luts(rgb: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Apply (3, 256) LUTs to an (h, w, 3) uint8 image."""
    out = np.empty_like(rgb)
    for i in range(3):
        out[..., i] = luts[i][rgb[..., i]]
    return out
