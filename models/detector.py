"""The change detector: load once, predict on batches of 6-channel tiles, get ``Candidates``.

>>> det = ChangeDetector.load()                                  # doctest: +SKIP
>>> det.card.working_gsd_m, det.card.imgsz                       # doctest: +SKIP
(0.2, 512)
>>> cands = det.predict([tile_hw6_uint8, ...], conf=0.25)         # doctest: +SKIP

Input tiles are ``(h, w, 6)`` uint8: flight R, G, B then baseline R, G, B, at the card's working
GSD. A tile larger than the card's ``imgsz`` is shrunk to fit; a smaller one is padded, never
enlarged (enlarging would change its GSD). Boxes come back in the tile's own pixels.

Device ``auto``: CUDA (fp16, PyTorch) when available, else the CPU backend measured fastest on this
machine among PyTorch, ONNX Runtime and OpenVINO (measured once per weights and thread count, the
choice cached beside the exports). Nothing is ever downloaded.
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
)
from models.candidates import Candidates
from models.card import ModelCard, read_card, sha256

__all__ = ["ChangeDetector", "DEFAULT_WEIGHTS", "preprocess"]

log = logging.getLogger(__name__)

#: the shipped weights (a model card with the same stem sits beside them)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "buildwatch-cd-yolo11n.pt"
PAD_VALUE = 114  # ultralytics' letterbox grey

Device = Literal["auto", "cpu", "cuda"]
BackendChoice = Literal["auto", "torch", "onnx", "openvino"]


def preprocess(images: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack tiles into a ``(n, 6, size, size)`` float32 batch in [0, 1]; returns it and the scales."""
    batch = np.full((len(images), 6, size, size), PAD_VALUE / 255.0, np.float32)
    scales = np.ones(len(images), np.float32)
    for i, img in enumerate(images):
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 6 or arr.dtype != np.uint8:
            raise ModelError(
                f"tile {i}: expected an (h, w, 6) uint8 array (flight RGB + baseline RGB), "
                f"got shape {arr.shape} dtype {arr.dtype}"
            )
        h, w = arr.shape[:2]
        r = min(1.0, size / h, size / w)
        if r < 1.0:
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            arr = np.concatenate(
                [cv2.resize(arr[..., k : k + 3], (nw, nh), interpolation=cv2.INTER_AREA)
                 for k in (0, 3)], axis=2)  # fmt: skip
            h, w = nh, nw
        batch[i, :, :h, :w] = arr.transpose(2, 0, 1).astype(np.float32) / 255.0
        scales[i] = r
    return batch, scales


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
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
            raise ModelError(f"device {device!r}: use 'auto', 'cpu' or 'cuda'")
        if str(device).startswith("cuda"):
            if backend not in ("auto", "torch"):
                raise ModelError(f"backend {backend!r} runs on the CPU only; use device='cpu'")
            return cls(TorchBackend(path, str(device)), card, path)
        if backend not in ("auto", "torch", "onnx", "openvino"):
            raise ModelError(f"backend {backend!r}: use auto, torch, onnx or openvino")
        cache = cache_dir_for(path, cache_dir)
        tag = (card.sha256 or sha256(path))[:10]
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
        import torch
        from ultralytics.utils.nms import non_max_suppression

        step = self.backend.batch or max(1, len(images))
        out: list[Candidates] = []
        for start in range(0, len(images), step):
            chunk = list(images[start : start + step])
            x, scales = preprocess(chunk, self.imgsz)
            if self.backend.batch and len(chunk) < self.backend.batch:  # static batch: pad
                pad = np.zeros((self.backend.batch - len(chunk), *x.shape[1:]), np.float32)
                x = np.concatenate([x, pad])
            raw = self.backend.run(x)[: len(chunk)]
            dets = non_max_suppression(torch.from_numpy(np.ascontiguousarray(raw)), conf, iou,
                                       max_det=max_det, nc=self.nc)  # fmt: skip
            for img, det, r in zip(chunk, dets, scales, strict=True):
                d = det.cpu().numpy()
                h, w = img.shape[:2]
                xyxy = d[:, :4] / r
                xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, w)
                xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, h)
                out.append(Candidates(xyxy, d[:, 4].clip(0, 1), d[:, 5].astype(np.int64)))
        return out

    __call__ = predict


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
