"""The ImageNet-pretrained backbone: its port of EfficientNet-Lite0, the 6-channel stem, the YAML."""

from __future__ import annotations

import cv2
import matplotlib.cbook as cbook
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.backbone import FEATURE_INDEX, efficientnet_lite0, imagenet_file

ARCH = "models/arch/buildwatch-efflite0-seg.yaml"


def _imagenet_logits(features: torch.Tensor) -> torch.Tensor:
    """The classifier the backbone drops (head conv, BN, ReLU6, pool, fc), from the same file."""
    sd = torch.load(imagenet_file(), map_location="cpu", weights_only=True)
    y = F.conv2d(features, sd["_conv_head.weight"])
    y = F.batch_norm(y, sd["_bn1.running_mean"], sd["_bn1.running_var"], sd["_bn1.weight"],
                     sd["_bn1.bias"], False, 0.0, 1e-3)  # fmt: skip
    return F.linear(F.relu6(y).mean((2, 3)), sd["_fc.weight"], sd["_fc.bias"])


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """A real photograph (matplotlib's sample of Grace Hopper in uniform), 0–1, 224²."""
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (224, 224)).astype(np.float32) / 255
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def test_pretrained_port_recognises_a_photograph(photo):
    """Every ImageNet tensor loads (strictly) and the network sees what ImageNet taught it: a
    port with a wrong block order, kernel or input scaling would not name the uniform."""
    net = efficientnet_lite0(weights="imagenet", in_channels=3).eval()
    with torch.no_grad():
        top5 = _imagenet_logits(net(photo)).topk(5).indices[0].tolist()
    assert top5[0] == 652  # "military uniform"
    assert 906 in top5 or 834 in top5  # "Windsor tie" / "suit"
    random = efficientnet_lite0(weights=None, in_channels=3).eval()
    with torch.no_grad():
        diff = (random(photo) - net(photo)).abs().max().item()
    assert diff > 1e-3  # weights=None really leaves them random


def test_six_channel_stem_sees_an_unchanged_pair_as_the_photo(photo):
    """Flight = baseline through the 6-channel stem gives the 3-channel network's features."""
    rgb = efficientnet_lite0(weights="imagenet", in_channels=3).eval()
    fused = efficientnet_lite0(weights="imagenet", in_channels=6).eval()
    with torch.no_grad():
        a, b = rgb(photo), fused(torch.cat([photo, photo], 1))
        changed = fused(torch.cat([photo, torch.zeros_like(photo)], 1))
    assert torch.allclose(a, b, atol=1e-4)
    assert (changed - b).abs().mean() > 0.01  # the baseline half is really read


def test_bad_backbone_arguments_are_refused():
    with pytest.raises(ValueError, match="multiple of 3"):
        efficientnet_lite0(weights="imagenet", in_channels=4)
    with pytest.raises(ValueError, match="'imagenet' or None"):
        efficientnet_lite0(weights="coco")


def test_model_yaml_builds_the_pretrained_detector():
    """The ultralytics YAML builds a 6-channel segment model whose backbone holds ImageNet's
    filters, with the strides and channels the heads expect."""
    from ultralytics.nn.tasks import SegmentationModel

    model = SegmentationModel(ARCH, ch=6, nc=2, verbose=False)
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    backbone = model.model[0].m  # TorchVision(split=True) -> Sequential [stem, block 0, ...]
    reference = efficientnet_lite0(weights="imagenet", in_channels=6)
    for (name, got), want in zip(
        backbone.state_dict().items(), reference.features.state_dict().values(), strict=True
    ):
        if got.dtype.is_floating_point:
            assert torch.equal(got, want), name
    model.eval()
    with torch.no_grad():
        outs = model.model[0](torch.rand(1, 6, 64, 64))
    for index, (stride, channels) in FEATURE_INDEX.items():
        assert outs[index].shape[1:] == (channels, 64 // stride, 64 // stride)


SIAMESE_ARCH = "models/arch/buildwatch-efflite0-siamese-seg.yaml"


def test_siamese_backbone_sees_each_date_and_their_difference(photo):
    """Each date through the ImageNet network: an unchanged pair gives the photo's own features
    and a zero difference at every stride; a changed one does not."""
    from models.backbone import SiameseLite0

    rgb = efficientnet_lite0(weights="imagenet", in_channels=3).eval()
    net = SiameseLite0(weights="imagenet").eval()
    with torch.no_grad():
        same = net(torch.cat([photo, photo], 1))
        changed = net(torch.cat([photo, photo.flip(-1)], 1))
        want, z = [], photo
        for i, layer in enumerate(rgb.features):
            z = layer(z)
            if i + 1 in FEATURE_INDEX:
                want.append(z)
    assert [t.shape[1] for t in same] == [2 * c for _, c in FEATURE_INDEX.values()]
    for got, ref, moved in zip(same, want, changed, strict=True):
        c = ref.shape[1]
        assert torch.allclose(got[:, :c], ref, atol=1e-4)  # the flight, through ImageNet's eyes
        assert got[:, c:].abs().max() == 0  # nothing changed
        assert moved[:, c:].abs().mean() > 0.01  # the baseline really is compared


def test_siamese_backbone_trains_only_past_its_frozen_layers():
    """Stem and stride-2/4 blocks keep their ImageNet filters and statistics in training; the
    rest learns."""
    from models.backbone import SiameseLite0

    net = SiameseLite0(weights="imagenet").train()
    stats = net.encoder.features[1].bn1.running_mean.clone()
    later = net.encoder.features[8].bn1.running_mean.clone()
    for p in net.parameters():  # ultralytics' trainer switches every parameter back on
        p.requires_grad_(True)
    outs = net(torch.rand(2, 6, 64, 64))
    sum(o.mean() for o in outs).backward()
    frozen = list(net.encoder.features[: net.frozen].parameters())
    trained = list(net.encoder.features[net.frozen :].parameters())
    assert frozen and all(p.grad is None for p in frozen)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trained)
    assert torch.equal(net.encoder.features[1].bn1.running_mean, stats)
    assert not torch.equal(net.encoder.features[8].bn1.running_mean, later)


def test_siamese_model_yaml_builds():
    from ultralytics.nn.tasks import SegmentationModel

    model = SegmentationModel(SIAMESE_ARCH, ch=6, nc=2, verbose=False).eval()
    assert model.stride.tolist() == [8.0, 16.0, 32.0]
    with torch.no_grad():
        outs = model.model[0](torch.rand(1, 6, 64, 64))
    assert [tuple(o.shape[1:]) for o in outs] == [
        (2 * c, 64 // s, 64 // s) for s, c in FEATURE_INDEX.values()
    ]
    with pytest.raises(ValueError, match="'imagenet' or None"):
        from models.backbone import efficientnet_lite0_siamese

        efficientnet_lite0_siamese(weights="coco")
