"""The change detector: load once, predict on batches of 6-channel tiles, get ``Candidates``.

>>> det = ChangeDetector.load()                                  # doctest: +SKIP
>>> det.card.working_gsd_m, det.card.imgsz                       # doctest: +SKIP
(0.2, 512)
>>> cands = det.predict([tile_hw6_uint8, ...], conf=0.25)         # doctest: +SKIP

Input tiles are ``(h, w, 6)`` uint8: flight R, G, B then baseline R, G, B, at the card's working
GSD. A tile larger than the card's ``imgsz`` is shrunk to fit; a smaller one is padded, never
enlarged (enlarging would change its GSD). Boxes come back in the tile's own pixels, and from a
segment model (ultralytics ``segment`` task) each with its outline: the instance mask decoded
from its coefficients and the prototypes inside the box, traced, simplified to a pixel and
squared where the structure is rectangular (:func:`mask_outline`).

Device ``auto``: CUDA (fp16, PyTorch) when an NVIDIA device is there, else the CPU. On the CPU,
backend ``auto`` is the OpenVINO model shipped beside the weights when it was exported from them
(hash checked), so detection never imports torch or ultralytics: pre-processing, NMS
(:mod:`models.postprocess`) and mask decoding are numpy. For other weights it is the backend
measured fastest on this machine among PyTorch, ONNX Runtime and OpenVINO (measured once per
weights and thread count, the choice cached beside the exports). Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from geo.atomic import write_text_atomic
from geo.errors import ModelError
from models.backends import (
    Backend,
    OnnxBackend,
    OpenVinoBackend,
    TorchBackend,
    available_cpu_backends,
    cache_dir_for,
    export_onnx,
    export_openvino,
    shipped_openvino,
)
from models.candidates import Candidates
from models.card import ModelCard, read_card, sha256
from models.postprocess import non_max_suppression

__all__ = [
    "ChangeDetector",
    "DEFAULT_WEIGHTS",
    "preprocess",
    "preprocess_uint8",
    "mask_outline",
    "square_outline",
]

log = logging.getLogger(__name__)

#: the shipped weights (a model card with the same stem sits beside them): the outlining
#: (segment) detector; ``buildwatch-cd-yolo11n.pt`` beside it is the earlier box detector
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "buildwatch-cd-yolo11n-seg.pt"
PAD_VALUE = 114  # ultralytics' letterbox grey

Device = Literal["auto", "cpu", "cuda"]
BackendChoice = Literal["auto", "torch", "onnx", "openvino"]


def preprocess(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack tiles into a ``(n, 6, size, size)`` float32 batch in [0, 1]; returns it and the scales."""
    batch = np.full((len(images), 6, size, size), PAD_VALUE / 255.0, np.float32)
    scales = np.ones(len(images), np.float32)
    for i, img in enumerate(images):
        arr = _check_tile(i, img)
        h, w = arr.shape[:2]
        r = min(1.0, size / h, size / w)
        if r < 1.0:
            arr = _shrink(arr, r)
            h, w = arr.shape[:2]
        batch[i, :, :h, :w] = arr.transpose(2, 0, 1).astype(np.float32) / 255.0
        scales[i] = r
    return batch, scales


def preprocess_uint8(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tiles as one ``(n, size, size, 6)`` uint8 batch, padded like :func:`preprocess` (for a
    backend that converts and scales inside its graph); returns it and the scales."""
    if (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.shape[1:]
        == (
            size,
            size,
            6,
        )
    ):
        return images, np.ones(len(images), np.float32)  # already the batch: no copy
    batch = np.full((len(images), size, size, 6), PAD_VALUE, np.uint8)
    scales = np.ones(len(images), np.float32)
    for i, img in enumerate(images):
        arr = _check_tile(i, img)
        h, w = arr.shape[:2]
        r = min(1.0, size / h, size / w)
        if r < 1.0:
            arr = _shrink(arr, r)
            h, w = arr.shape[:2]
        batch[i, :h, :w] = arr
        scales[i] = r
    return batch, scales


def _check_tile(i: int, img: np.ndarray) -> np.ndarray:
    arr = np.asarray(img)
    if arr.ndim != 3 or arr.shape[2] != 6 or arr.dtype != np.uint8:
        raise ModelError(
            f"tile {i}: expected an (h, w, 6) uint8 array (flight RGB + baseline RGB), "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    return arr


def _shrink(arr: np.ndarray, r: float) -> np.ndarray:
    h, w = arr.shape[:2]
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    return np.concatenate(
        [cv2.resize(arr[..., k : k + 3], (nw, nh), interpolation=cv2.INTER_AREA) for k in (0, 3)],
        axis=2,
    )


def square_outline(pts: np.ndarray, rectangularity: float = 0.9) -> np.ndarray:
    """``pts`` replaced by its minimum-area rectangle when it fills at least ``rectangularity`` of it.

    Most structures are rectangles; a mask outline traces them with rounded, pixel-stepped corners.
    Where the outline is that close to its rectangle, the rectangle *is* the better outline.
    """
    if len(pts) < 3:
        return pts
    area = abs(cv2.contourArea(pts.astype(np.float32)))
    rect = cv2.minAreaRect(pts.astype(np.float32))
    rect_area = rect[1][0] * rect[1][1]
    if rect_area > 0 and area / rect_area >= rectangularity:
        return cv2.boxPoints(rect).astype(np.float32)
    return pts


def _grow_half_pixel(c: np.ndarray) -> np.ndarray:
    """A contour through boundary-pixel centres, grown by half a pixel to the pixels' outer edges."""
    from shapely import Polygon

    poly = Polygon(c).buffer(0.5, join_style="mitre", mitre_limit=2.0)
    if poly.is_empty or poly.geom_type != "Polygon":
        return c
    return np.asarray(poly.exterior.coords, np.float32)[:-1]


def mask_outline(
    coeffs: np.ndarray,
    proto: np.ndarray,
    box: np.ndarray,
    imgsz: int,
    scale: float,
    tile_shape: tuple[int, int],
    simplify_px: float = 1.0,
) -> np.ndarray | None:
    """One instance's outline (tile pixels) from its mask coefficients and the prototypes.

    The mask is ``sigmoid(coeffs @ proto)`` inside the box, as ultralytics computes it, but only
    the box's own window of the prototype grid is decoded and upsampled, and the result is traced
    (``cv2.findContours``), simplified by ``simplify_px`` and squared where it is rectangular.
    ``box`` is in network-input pixels; ``scale`` the input/tile pixel ratio.
    """
    nm, ph, pw = proto.shape
    k = ph / imgsz  # proto cells per input pixel
    x0, y0, x1, y1 = (float(v) for v in box)
    c0, r0 = max(0, int(np.floor(x0 * k)) - 1), max(0, int(np.floor(y0 * k)) - 1)
    c1, r1 = min(pw, int(np.ceil(x1 * k)) + 1), min(ph, int(np.ceil(y1 * k)) + 1)
    if c1 - c0 < 1 or r1 - r0 < 1:
        return None
    logits = (coeffs.astype(np.float32) @ proto[:, r0:r1, c0:c1].reshape(nm, -1)).reshape(
        r1 - r0, c1 - c0
    )
    up = 1.0 / (k * scale)  # tile pixels per proto cell
    tw, th = max(1, round((c1 - c0) * up)), max(1, round((r1 - r0) * up))
    big = cv2.resize(logits, (tw, th), interpolation=cv2.INTER_LINEAR)
    ox, oy = c0 * up, r0 * up  # tile-pixel origin of the window
    mask = (big > 0).astype(np.uint8)
    bx0, by0 = max(0, round(x0 / scale - ox)), max(0, round(y0 / scale - oy))
    bx1, by1 = round(x1 / scale - ox), round(y1 / scale - oy)
    clip = np.zeros_like(mask)
    clip[by0:by1, bx0:bx1] = 1
    mask &= clip
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    c = max(contours, key=cv2.contourArea)
    if cv2.contourArea(c) < 4:
        return None
    c = cv2.approxPolyDP(c, simplify_px, True).reshape(-1, 2).astype(np.float32)
    if len(c) < 3:
        return None
    c = _grow_half_pixel(square_outline(c) + np.array([ox + 0.5, oy + 0.5], np.float32))
    h, w = tile_shape
    c[:, 0] = c[:, 0].clip(0, w)
    c[:, 1] = c[:, 1].clip(0, h)
    return c


def _default_card(weights: Path) -> ModelCard:
    log.warning(
        "%s: no model card beside the weights; assuming 0.2 m, 512 px, 64 px overlap", weights
    )
    return ModelCard(name=weights.stem, weights=weights.name)


class ChangeDetector:
    """A loaded change detector: ``.card`` says what it expects, ``.predict`` runs it."""

    def __init__(self, backend: Backend, card: ModelCard, weights: Path) -> None:
        self.backend = backend
        self.card = card
        self.weights = weights
        self.imgsz = int(card.imgsz)
        self.nc = len(card.classes)

    def __repr__(self) -> str:
        return (
            f"ChangeDetector({self.weights.name}, backend={self.backend.name}, imgsz={self.imgsz})"
        )

    @classmethod
    def load(
        cls,
        weights: str | Path | None = None,
        device: Device | str = "auto",
        backend: BackendChoice | str = "auto",
        batch: int = 8,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> ChangeDetector:
        """Load weights (default: the shipped ones) on ``device`` with ``backend``."""
        path = Path(weights) if weights else DEFAULT_WEIGHTS
        if not path.is_file():
            raise ModelError(
                f"{path}: weights not found; pass --weights PATH or train them with "
                "`buildwatch train --config models/configs/gpu.yaml`"
            )
        card_path = path.with_suffix(".yaml")
        card = read_card(card_path) if card_path.is_file() else _default_card(path)
        if int(card.channels) != 6:
            raise ModelError(f"{card_path}: channels is {card.channels}; the detector needs 6")
        threads = int(threads or os.cpu_count() or 1)
        if device == "auto":
            device = "cuda" if _cuda_available() else "cpu"
        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ModelError(f"device {device!r}: use 'auto', 'cpu' or 'cuda'")
        if str(device).startswith("cuda"):
            if backend not in ("auto", "torch"):
                raise ModelError(f"backend {backend!r} runs on the CPU only; use device='cpu'")
            return cls(TorchBackend(path, str(device)), card, path)
        if backend not in ("auto", "torch", "onnx", "openvino"):
            raise ModelError(f"backend {backend!r}: use auto, torch, onnx or openvino")
        digest = sha256(path)
        shipped = shipped_openvino(path, int(card.imgsz), digest)
        if shipped is not None and backend in ("auto", "openvino"):
            backend_ = OpenVinoBackend(
                shipped, batch, threads, int(card.imgsz), uint8_input=True, precision=precision
            )
            return cls(backend_, card, path)
        cache = cache_dir_for(path, cache_dir)
        tag = (card.sha256 or digest)[:10]
        if backend == "auto":
            backend = _fastest_cpu_backend(path, card, batch, threads, cache, tag)
        return cls(
            _make_cpu_backend(str(backend), path, card, batch, threads, cache, tag), card, path
        )

    def predict(
        self,
        images: Sequence[np.ndarray],
        conf: float = 0.25,
        iou: float = 0.5,
        max_det: int = 300,
    ) -> list[Candidates]:
        """Detect new structures in each ``(h, w, 6)`` uint8 tile; one ``Candidates`` per tile."""
        if not len(images):
            return []
        step = self.backend.batch or max(1, len(images))
        out: list[Candidates] = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            as_uint8 = bool(getattr(self.backend, "uint8_input", False))
            x, scales = (preprocess_uint8 if as_uint8 else preprocess)(chunk, self.imgsz)
            if self.backend.batch and len(chunk) < self.backend.batch:  # static batch: pad
                pad = np.zeros((self.backend.batch - len(chunk), *x.shape[1:]), x.dtype)
                x = np.concatenate([x, pad])
            outs = self.backend.run(x)
            raw = outs[0][: len(chunk)]
            protos = outs[1][: len(chunk)] if len(outs) > 1 and outs[1].ndim == 4 else None
            for i, (img, r) in enumerate(zip(chunk, scales, strict=True)):
                d = non_max_suppression(raw[i], self.nc, conf, iou, max_det)
                h, w = img.shape[:2]
                xyxy = d[:, :4] / r
                xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
                xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
                outline = np.empty(len(d), object)
                if protos is not None and len(d):
                    for j in range(len(d)):
                        outline[j] = mask_outline(
                            d[j, 6:], protos[i], d[j, :4], self.imgsz, r, (h, w)
                        )
                out.append(Candidates(xyxy, d[:, 4].clip(0, 1), d[:, 5].astype(np.int64),
                                      outline=outline))  # fmt: skip
        return out

    __call__ = predict


def _cuda_available() -> bool:
    """True when torch sees a CUDA device; torch is imported only where an NVIDIA driver is."""
    import sys

    if "torch" not in sys.modules and not any(
        Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version")
    ):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _make_cpu_backend(
    name: str, path: Path, card: ModelCard, batch: int, threads: int, cache: Path, tag: str
) -> Backend:
    if name == "torch":
        return TorchBackend(path, "cpu", half=False)
    onnx_path = export_onnx(path, int(card.imgsz), batch, cache, tag)
    if name == "onnx":
        return OnnxBackend(onnx_path, batch, threads)
    return OpenVinoBackend(export_openvino(onnx_path), batch, threads)


def _fastest_cpu_backend(
    path: Path, card: ModelCard, batch: int, threads: int, cache: Path, tag: str
) -> str:
    """Measure each available CPU backend once (cached per weights/batch/threads); return the fastest."""
    record = cache / f"{path.stem}-{tag}-s{card.imgsz}-b{batch}-t{threads}-backend.json"
    if record.is_file():
        try:
            return str(json.loads(record.read_text())["fastest"])
        except (ValueError, KeyError):
            pass
    x = np.random.default_rng(0).random((batch, 6, card.imgsz, card.imgsz), dtype=np.float32)
    timings: dict[str, float] = {}
    for name in available_cpu_backends():
        try:
            be = _make_cpu_backend(name, path, card, batch, threads, cache, tag)
            be.run(x)
            t0 = time.perf_counter()
            be.run(x)
            timings[name] = time.perf_counter() - t0
        except Exception as exc:  # an unavailable runtime must not stop detection
            log.warning("CPU backend %s unavailable: %s", name, exc)
    if not timings:
        raise ModelError(f"{path}: no CPU backend could run these weights")
    fastest = min(timings, key=lambda k: timings[k])
    write_text_atomic(
        record, json.dumps({"fastest": fastest, "seconds_per_batch": timings}, indent=1)
    )
    log.info("CPU backend timings %s -> %s", timings, fastest)
    return fastest
