"""Inference backends: one small interface over PyTorch, ONNX Runtime and OpenVINO.

Every backend maps a float32/float16 ``(B, 6, S, S)`` array scaled to [0, 1] to the raw YOLO
head output ``(B, 4 + nc, N)``; decoding and NMS happen once, in :mod:`models.detector`.

The CPU path never imports torch: the shipped weights come with an OpenVINO model exported from
them (``<weights stem>.openvino.xml/.bin``, dynamic batch, compiled for a static batch at load)
and a sidecar (``.openvino.json``) naming the SHA-256 of the ``.pt`` it came from; it is used only
when that hash matches (:func:`shipped_openvino`, :func:`export_shipped_openvino` makes it).
Other weights are exported once — that needs torch and ultralytics — with a *static* batch and
cached next to the weights (or in a user cache folder when that is read-only), keyed by the
weights' hash, image size and batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from geo.errors import ModelError
from models.runtime import configure_ultralytics, default_config_dir, set_threads

__all__ = [
    "SHIPPED_SUFFIX",
    "shipped_openvino",
    "export_shipped_openvino",
    "Backend",
    "BackendName",
    "TorchBackend",
    "OnnxBackend",
    "OpenVinoBackend",
    "cache_dir_for",
    "export_onnx",
    "export_openvino",
    "available_cpu_backends",
]

log = logging.getLogger(__name__)

BackendName = Literal["torch", "onnx", "openvino"]


class Backend(Protocol):
    """A loaded network: ``run(x)`` on a ``(B, 6, S, S)`` batch; ``batch`` 0 means any size."""

    name: str
    batch: int
    half: bool

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The network outputs: predictions, then (segment models) mask prototypes."""
        ...


def cache_dir_for(weights: Path, cache_dir: str | Path | None = None) -> Path:
    """Where exports of ``weights`` live: ``cache_dir``, else beside the weights, else user cache."""
    candidates = [Path(cache_dir)] if cache_dir else []
    candidates += [weights.parent / ".export-cache", default_config_dir().parent / "exports"]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
            probe = path / ".write-probe"
            probe.write_text("")
            probe.unlink()
            return path
        except OSError:
            continue
    raise ModelError(f"no writable folder for model exports among {candidates}; pass cache_dir")


class TorchBackend:
    """The ultralytics ``DetectionModel`` itself (fused, eval; fp16 on CUDA)."""

    name = "torch"
    batch = 0

    def __init__(self, weights: Path, device: str = "cpu", half: bool | None = None) -> None:
        configure_ultralytics()
        import torch
        from ultralytics import YOLO

        set_threads()
        self.device = torch.device(device)
        self.half = bool(self.device.type == "cuda" if half is None else half)
        try:
            model: Any = YOLO(str(weights)).model
        except Exception as exc:  # ultralytics raises many kinds for a bad file
            raise ModelError(
                f"{weights}: cannot load YOLO weights ({exc}); pass a buildwatch .pt"
            ) from exc
        model = model.fuse() if hasattr(model, "fuse") else model
        model = model.to(self.device).eval()
        self.model = model.half() if self.half else model.float()
        self._torch = torch

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device, non_blocking=True)
            t = t.half() if self.half else t.float()
            out = self.model(t)
            # detect: pred or (pred, raw); segment: ((pred, proto), raw)
            out = out[0] if isinstance(out, list | tuple) else out
            parts = list(out) if isinstance(out, list | tuple) else [out]
            return [p.float().cpu().numpy() for p in parts]


def export_onnx(weights: Path, imgsz: int, batch: int, cache: Path, tag: str) -> Path:
    """Export ``weights`` to a static-batch ONNX file in ``cache`` (reused when present)."""
    target = cache / f"{weights.stem}-{tag}-s{imgsz}-b{batch}.onnx"
    if target.is_file():
        return target
    configure_ultralytics()
    from ultralytics import YOLO

    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        copy = Path(tmp) / weights.name
        shutil.copyfile(weights, copy)
        try:
            out = YOLO(str(copy)).export(
                format="onnx", imgsz=imgsz, batch=batch, dynamic=False, simplify=False,
                half=False, verbose=False,
            )  # fmt: skip
        except Exception as exc:
            raise ModelError(f"{weights}: ONNX export failed ({exc})") from exc
        os.replace(out, target)
    return target


def export_openvino(onnx_path: Path) -> Path:
    """Convert an ONNX file to OpenVINO IR (``.xml`` + ``.bin``) beside it."""
    target = onnx_path.with_suffix(".xml")
    if target.is_file() and target.with_suffix(".bin").is_file():
        return target
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    tmp = onnx_path.with_name(f".{onnx_path.stem}.tmp.xml")
    ov.save_model(model, str(tmp), compress_to_fp16=False)
    os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
    os.replace(tmp, target)
    return target


#: the OpenVINO model shipped beside a ``.pt``: ``<stem>.openvino.xml`` / ``.bin`` / ``.json``
SHIPPED_SUFFIX = ".openvino"


def _shipped_paths(weights: Path) -> tuple[Path, Path, Path]:
    base = weights.with_name(weights.stem + SHIPPED_SUFFIX)
    return (
        base.with_suffix(base.suffix + ".xml"),
        base.with_suffix(base.suffix + ".bin"),
        (base.with_suffix(base.suffix + ".json")),
    )


def shipped_openvino(weights: Path, imgsz: int, weights_sha256: str) -> Path | None:
    """The OpenVINO model shipped beside *weights*, if it was exported from exactly these weights
    (SHA-256 in its sidecar) at *imgsz*; else None (and a log line saying why)."""
    import json

    xml, binary, meta = _shipped_paths(weights)
    if not (xml.is_file() and binary.is_file() and meta.is_file()):
        return None
    try:
        facts = json.loads(meta.read_text())
    except ValueError:
        log.warning("%s: unreadable; the OpenVINO model beside the weights is not used", meta)
        return None
    if facts.get("source_sha256") != weights_sha256 or int(facts.get("imgsz", -1)) != imgsz:
        log.warning(
            "%s was exported from other weights or image size (%s, %s); exporting anew",
            xml.name,
            str(facts.get("source_sha256", ""))[:12],
            facts.get("imgsz"),
        )
        return None
    return xml


def export_shipped_openvino(weights: Path, imgsz: int, weights_sha256: str) -> Path:
    """Export *weights* to the OpenVINO model shipped beside them (dynamic batch, fp16 weights;
    the CPU computes in fp32) with its hash sidecar. Needs torch and ultralytics."""
    import json

    configure_ultralytics()
    from ultralytics import YOLO

    xml, binary, meta = _shipped_paths(weights)
    with tempfile.TemporaryDirectory(dir=weights.parent) as tmp:
        copy = Path(tmp) / weights.name
        shutil.copyfile(weights, copy)
        onnx_path = YOLO(str(copy)).export(
            format="onnx", imgsz=imgsz, dynamic=True, simplify=False, half=False, verbose=False
        )
        import openvino as ov

        model = ov.convert_model(str(onnx_path))
        tmp_xml = Path(tmp) / "model.xml"
        ov.save_model(model, str(tmp_xml), compress_to_fp16=True)
        os.replace(tmp_xml.with_suffix(".bin"), binary)
        os.replace(tmp_xml, xml)
    facts = {"source": weights.name, "source_sha256": weights_sha256, "imgsz": imgsz,
             "batch": "dynamic", "weights_precision": "fp16", "openvino": ov.__version__}  # fmt: skip
    meta.write_text(json.dumps(facts, indent=1) + "\n")
    return xml


class OnnxBackend:
    """ONNX Runtime on the CPU, one thread per core, static batch."""

    name = "onnx"
    half = False

    def __init__(self, path: Path, batch: int, threads: int) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.batch = batch

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        outs = self.session.run(None, {self.input: x.astype(np.float32)})
        return [np.asarray(o) for o in outs]


class OpenVinoBackend:
    """OpenVINO on the CPU, one thread per core, static batch (a dynamic model is compiled for
    ``(batch, 6, imgsz, imgsz)``).

    With ``uint8_input`` the compiled model takes the tiles as they are read — ``(B, S, S, 6)``
    uint8 — and converts, scales by 1/255 and transposes inside the graph, which is faster than
    numpy and never holds a float copy of the batch.
    """

    name = "openvino"
    half = False
    uint8_input = False

    def __init__(
        self,
        xml: Path,
        batch: int,
        threads: int,
        imgsz: int | None = None,
        uint8_input: bool = False,
        precision: str = "auto",
    ) -> None:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(xml))
        if model.inputs[0].get_partial_shape().is_dynamic:
            if imgsz is None:
                raise ModelError(f"{xml}: a dynamic model needs the image size to compile")
            model.reshape([batch, 6, imgsz, imgsz])
        if uint8_input:
            from openvino.preprocess import PrePostProcessor

            ppp = PrePostProcessor(model)
            ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            ppp.input().model().set_layout(ov.Layout("NCHW"))
            ppp.input().preprocess().convert_element_type(ov.Type.f32).scale(255.0)
            model = ppp.build()
            self.uint8_input = True
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        if precision != "auto":  # auto: OpenVINO's choice (bf16 where the CPU has it, else fp32)
            config["INFERENCE_PRECISION_HINT"] = precision
        self.compiled = core.compile_model(model, "CPU", config)
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.batch = batch

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        result = self.compiled(x if self.uint8_input else x.astype(np.float32, copy=False))
        return [np.asarray(result[out]) for out in self.compiled.outputs]


def available_cpu_backends() -> list[BackendName]:
    """CPU backends whose runtime is importable here (torch always)."""
    names: list[BackendName] = ["torch"]
    for name, module in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        try:
            __import__(module)
        except ImportError:
            continue
        names.append(name)  # type: ignore[arg-type]
    return names
