"""Reduced-resolution reads of a JPEG-compressed GeoTIFF by DCT scaling, tile by tile.

Drone tools often write big orthophotos as JPEG-compressed tiled GeoTIFFs without overviews.
Reading one at the working GSD (e.g. 5 cm → 20 cm) with GDAL decodes every pixel and averages,
and GDAL's own *implicit* JPEG overviews keep about 1 MB per decoded tile for the life of the
process (measured with rasterio's GDAL: ``benchmarks/bench_runtime.py``), so neither fits a flat
memory budget. Here each TIFF tile's JPEG stream is read with ``os.pread`` (its offset and size
from GDAL's ``TIFF`` metadata, the shared quantisation/Huffman tables from the TIFF's
``JPEGTables`` tag) and decoded by libjpeg directly at 1/2, 1/4 or 1/8 of its size
(``cv2.IMREAD_REDUCED_COLOR_*``): no full-size pixels, nothing kept between reads.

:class:`JpegTiles.open` returns None for anything it does not handle (not a tiled, pixel-
interleaved 3-band 8-bit JPEG GeoTIFF, or one with a mask, alpha or nodata); callers then use
GDAL as before.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import cv2
import numpy as np
import rasterio

__all__ = ["JpegTiles", "REDUCED_FLAGS"]

#: DCT reduction factor -> OpenCV decode flag (libjpeg scaled decoding)
REDUCED_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}
_JPEG_TABLES = 347


def _jpeg_tables(path: str) -> bytes | None:
    """The ``JPEGTables`` tag of the first IFD (classic TIFF or BigTIFF), or None."""
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head[:2] not in (b"II", b"MM"):
            return None
        e = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(e + "H", head[2:4])[0]
        if magic == 42:
            ifd = struct.unpack(e + "I", head[4:8])[0]
            fh.seek(ifd)
            n = struct.unpack(e + "H", fh.read(2))[0]
            entry, fmt = 12, e + "HHII"
        elif magic == 43:
            ifd = struct.unpack(e + "Q", head[8:16])[0]
            fh.seek(ifd)
            n = struct.unpack(e + "Q", fh.read(8))[0]
            entry, fmt = 20, e + "HHQQ"
        else:
            return None
        raw = fh.read(n * entry)
        for k in range(n):
            tag, _typ, count, value = struct.unpack(fmt, raw[k * entry : (k + 1) * entry])
            if tag == _JPEG_TABLES:
                inline = 4 if magic == 42 else 8
                if count <= inline:
                    off = k * entry + (8 if magic == 42 else 12)
                    return raw[off : off + count]
                fh.seek(value)
                return fh.read(count)
    return None


@dataclass
class JpegTiles:
    """The JPEG tiles of one GeoTIFF, decodable at reduced sizes (see module doc)."""

    path: str
    width: int
    height: int
    block: tuple[int, int]  # (rows, cols)
    offsets: np.ndarray  # (tile rows, tile cols) int64
    sizes: np.ndarray
    tables: bytes
    fd: int

    @classmethod
    def open(cls, ds: rasterio.DatasetReader) -> JpegTiles | None:
        """For an open dataset ``ds`` of a supported file; None otherwise."""
        comp = str(ds.compression or "").lower()
        if ds.driver != "GTiff" or "jpeg" not in comp or ds.count != 3 or ds.dtypes[0] != "uint8":
            return None
        if ds.nodata is not None or not ds.is_tiled or ds.profile.get("interleave") != "pixel":
            return None
        if any(f.name != "all_valid" for f in ds.mask_flag_enums[0]):
            return None
        path = str(ds.name)
        if not os.path.isfile(path):
            return None
        tables = _jpeg_tables(path)
        if not tables or tables[-2:] != b"\xff\xd9":
            return None
        bh, bw = ds.block_shapes[0]
        nr, nc = -(-ds.height // bh), -(-ds.width // bw)
        offsets = np.zeros((nr, nc), np.int64)
        sizes = np.zeros((nr, nc), np.int64)
        for r in range(nr):
            for c in range(nc):
                off = ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)
                size = ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)
                if off is None or size is None:
                    return None
                offsets[r, c], sizes[r, c] = int(off), int(size)
        return cls(path, ds.width, ds.height, (bh, bw), offsets, sizes, tables,
                   os.open(path, os.O_RDONLY))  # fmt: skip

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _tile(self, r: int, c: int, factor: int) -> np.ndarray:
        """Tile (r, c) decoded at 1/factor as (h, w, 3) RGB."""
        bh, bw = self.block
        h, w = -(-bh // factor), -(-bw // factor)
        size = int(self.sizes[r, c])
        if size == 0:  # a sparse tile: nothing was written there
            return np.zeros((h, w, 3), np.uint8)
        data = os.pread(self.fd, size, int(self.offsets[r, c]))
        stream = self.tables[:-2] + data[2:]  # tables without EOI + tile without SOI
        img = cv2.imdecode(np.frombuffer(stream, np.uint8), REDUCED_FLAGS[factor])
        if img is None:
            raise OSError(f"{self.path}: JPEG tile ({r}, {c}) does not decode")
        return img[:h, :w, ::-1]

    def read(self, row0: int, col0: int, rows: int, cols: int, factor: int) -> np.ndarray:
        """Full-resolution window (row0, col0, rows, cols) as (3, rows/f, cols/f) uint8 RGB,
        decoded at 1/``factor``; the window is clipped to the image (must start inside it)."""
        bh, bw = self.block
        row1, col1 = min(row0 + rows, self.height), min(col0 + cols, self.width)
        tr0, tr1 = row0 // bh, (row1 - 1) // bh
        tc0, tc1 = col0 // bw, (col1 - 1) // bw
        sh, sw = bh // factor, bw // factor
        mosaic = np.zeros(((tr1 - tr0 + 1) * sh, (tc1 - tc0 + 1) * sw, 3), np.uint8)
        for r in range(tr0, tr1 + 1):
            for c in range(tc0, tc1 + 1):
                t = self._tile(r, c, factor)
                y, x = (r - tr0) * sh, (c - tc0) * sw
                mosaic[y : y + t.shape[0], x : x + t.shape[1]] = t[:sh, :sw]
        y0, x0 = (row0 - tr0 * bh) // factor, (col0 - tc0 * bw) // factor
        out_h, out_w = -(-(row1 - row0) // factor), -(-(col1 - col0) // factor)
        return np.ascontiguousarray(np.moveaxis(mosaic[y0 : y0 + out_h, x0 : x0 + out_w], -1, 0))
