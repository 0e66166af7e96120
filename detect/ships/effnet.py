"""The ship segmenter on a pretrained encoder: EfficientNet-B4 to its stride-16 stage under a U-Net decoder.

Sentinel-2 has ~385 hand-labelled ships to learn from here (sen2ships); a network trained from scratch on them
misses ships in cities it never saw. The only Sentinel-2 encoder with pretrained weights this project can
install (PyPI; nothing is fetched at run time) is the one inside **ukis-csmask** (DLR, Apache-2.0; Wieland
et al. 2019, Remote Sensing of Environment 230, 111203): a U-Net on an EfficientNet-B4 encoder (Tan & Le
2019), ImageNet weights fine-tuned to mask clouds and cloud shadows in Sentinel-2 and Landsat blue, green,
red and NIR reflectance. ``pretrained_start`` copies its encoder into ``EffUNet`` as the start of training
(the ``pretrained`` extra: ``pip install -e ".[pretrained]"``); trained weights load without it.

``EffUNet`` keeps the encoder's stem and its first 22 blocks (the stride-2, 4, 8 and 16 stages; 4.2 M
parameters), with EfficientNet-PyTorch's module names, so the pretrained tensors load by name. Input and
output are ``UNet``'s: the project's encoded scene (``detect.ships.segment.encode``) in, hull and core logits
out. B02, B03, B04 and B08 go to the pretrained stem as reflectance normalised with the statistics it was
trained on (an absent band at its mean); all encoded channels (B11 and the presence flags too) pass through
a convolution added to the stem's output, zero at the start so the encoder starts as the pretrained one. Its
paddings are TensorFlow's "same" at EfficientNet-B4's 380 px input, as the pretrained weights were made with.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imagery.errors import InputError

#: EfficientNet-B4's stages to stride 16: (blocks, kernel, stride, expansion, output channels).
B4_STAGES = ((2, 3, 1, 1, 24), (4, 3, 2, 6, 32), (4, 5, 2, 6, 56), (6, 3, 2, 6, 112), (6, 5, 1, 6, 160))
B4_STEM = 48
#: Blocks in the whole B4 encoder: a block's stochastic-depth rate is ``DROP_CONNECT`` · index / this.
B4_BLOCKS = 32
DROP_CONNECT = 0.2
#: The input size EfficientNet-B4's fixed "same" paddings were computed for.
B4_SIZE = 380
#: Blocks whose outputs are the decoder's skips (stride 4 and 8) and its head (stride 16).
SKIP_BLOCKS = (5, 9, 21)
DECODER = (128, 64, 32, 16)
#: The bands the pretrained stem reads, and their reflectance mean and standard deviation in its training
#: data (ukis-csmask's ``model_4b_l2a.json``; ``pretrained_start`` checks them against the installed copy).
STEM_BANDS = ("B02", "B03", "B04", "B08")
STEM_MEAN = (0.26681777834892273, 0.27799084782600403, 0.28811994194984436, 0.36494743824005127)
STEM_STD = (0.33637598156929016, 0.3125455975532532, 0.311148464679718, 0.27260705828666687)
#: ukis-csmask's model whose encoder starts training: its 4-band Level-2A network.
CSMASK_MODEL = "model_4b_l2a"
PRETRAINED_INSTALL = 'pip install -e ".[pretrained]"'


def same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding (before, after) of one axis of ``size`` px."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _Conv(nn.Conv2d):
    """A convolution with a fixed (left, right, top, bottom) zero padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, pad=(0, 0, 0, 0), **kw) -> None:
        super().__init__(cin, cout, kernel, stride, **kw)
        self.pad = tuple(pad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad) if any(self.pad) else x)


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, momentum=0.01, eps=1e-3)  # EfficientNet's (TensorFlow momentum 0.99)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expansion, depthwise k×k, squeeze-and-excitation, 1×1 projection,
    and (stride 1, same width) a residual with stochastic depth at rate ``drop``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int, drop: float):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = _Conv(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        p = same_pad(size, kernel, stride)
        self._depthwise_conv = _Conv(mid, mid, kernel, stride, (*p, *p), groups=mid, bias=False)
        self._bn1 = _bn(mid)
        squeezed = max(1, int(cin * 0.25))
        self._se_reduce = _Conv(mid, squeezed, 1)
        self._se_expand = _Conv(squeezed, mid, 1)
        self._project_conv = _Conv(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.drop = drop

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = F.silu(self._bn0(self._expand_conv(inp))) if self.expand else inp
        x = F.silu(self._bn1(self._depthwise_conv(x)))
        s = self._se_expand(F.silu(self._se_reduce(F.adaptive_avg_pool2d(x, 1))))
        x = self._bn2(self._project_conv(torch.sigmoid(s) * x))
        if not self.residual:
            return x
        if self.training and self.drop > 0:  # stochastic depth: the whole block dropped per sample
            keep = 1.0 - self.drop
            mask = torch.floor(keep + torch.rand([x.shape[0], 1, 1, 1], dtype=x.dtype, device=x.device))
            x = x / keep * mask
        return x + inp


class Encoder(nn.Module):
    """EfficientNet-B4's stem and blocks to its stride-16 stage; returns the features at strides 2 to 16."""

    def __init__(self, in_ch: int = len(STEM_BANDS)) -> None:
        super().__init__()
        p = same_pad(B4_SIZE, 3, 2)
        self._conv_stem = _Conv(in_ch, B4_STEM, 3, 2, (*p, *p), bias=False)
        self._bn0 = _bn(B4_STEM)
        size = math.ceil(B4_SIZE / 2)
        blocks, cin = [], B4_STEM
        for repeats, kernel, stride, expand, cout in B4_STAGES:
            for r in range(repeats):
                s = stride if r == 0 else 1
                drop = DROP_CONNECT * len(blocks) / B4_BLOCKS
                blocks.append(MBConv(cin, cout, kernel, s, expand, size, drop))
                size, cin = math.ceil(size / s), cout
        self._blocks = nn.ModuleList(blocks)
        self.channels = (B4_STEM, *(blocks[i]._project_conv.out_channels for i in SKIP_BLOCKS))

    def forward(self, x: torch.Tensor, stem_add: torch.Tensor | None = None) -> list[torch.Tensor]:
        x = self._conv_stem(x)
        if stem_add is not None:
            x = x + stem_add.to(x.dtype)
        x = F.silu(self._bn0(x))
        feats = [x]
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in SKIP_BLOCKS:
                feats.append(x)
        return feats


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))


class DecoderBlock(nn.Module):
    def __init__(self, cin: int, skip: int, cout: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_relu(cin + skip, cout)
        self.conv2 = _conv_bn_relu(cout, cout)

    def forward(self, x: torch.Tensor, size: tuple[int, int], skip: torch.Tensor | None) -> torch.Tensor:
        x = F.interpolate(x, size=size, mode="nearest")
        if skip is not None:
            x = torch.cat([x, skip], 1)
        return self.conv2(self.conv1(x))


class Decoder(nn.Module):
    def __init__(self, enc: tuple[int, ...], chs: tuple[int, ...] = DECODER) -> None:
        super().__init__()
        skips = (*reversed(enc[:-1]), 0)  # stride 8, 4, 2 features, then none at full resolution
        ins = (enc[-1], *chs[:-1])
        self.blocks = nn.ModuleList(DecoderBlock(i, s, o) for i, s, o in zip(ins, skips, chs, strict=True))


class EffUNet(nn.Module):
    """The pretrained-encoder ship segmenter; input and output as ``detect.ships.segment.UNet``'s, on sizes of
    a multiple of 16 px (``SegModel`` pads its tiles so; training crops must be)."""

    def __init__(self, bands: Sequence[str], out_ch: int = 2) -> None:
        """``bands``: the encoded input's bands (``detect.ships.segment.SEG_BANDS``), which hold
        ``STEM_BANDS``."""
        super().__init__()
        self.n = len(bands)
        self.stem_idx = [list(bands).index(b) for b in STEM_BANDS]
        self.encoder = Encoder()
        self.decoder = Decoder(self.encoder.channels)
        self.segmentation_head = nn.Sequential(nn.Conv2d(DECODER[-1], out_ch, 3, padding=1))
        self.extra = nn.Conv2d(2 * self.n, B4_STEM, 3, stride=2, padding=1, bias=False)
        nn.init.zeros_(self.extra.weight)
        self._init_new_parts()
        self.register_buffer("mean", torch.tensor(STEM_MEAN).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(STEM_STD).view(1, -1, 1, 1))

    def _init_new_parts(self) -> None:
        """The decoder and head as segmentation_models_pytorch initialises them (the probe's start):
        convolutions He-uniform (fan in, ReLU), batch norm 1 and 0, the head Xavier-uniform with zero bias."""
        for m in self.decoder.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.segmentation_head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The pretrained part (trained at a smaller rate: ``SegTrainConfig.encoder_lr``)."""
        return list(self.encoder.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        refl = (x[:, self.stem_idx] / 3.0) ** 2  # encode's sqrt(reflectance) * 3, undone
        present = x[:, [self.n + i for i in self.stem_idx]]
        z = (refl - self.mean) / self.std * present
        feats = self.encoder(z, stem_add=self.extra(x))
        y = feats[-1]
        skips = feats[-2::-1]
        for i, block in enumerate(self.decoder.blocks):
            skip = skips[i] if i < len(skips) else None
            y = block(y, skip.shape[-2:] if skip is not None else x.shape[-2:], skip)
        return self.segmentation_head(y)


def csmask_files() -> tuple[Path, Path]:
    """ukis-csmask's ONNX network and its json (band statistics); InputError where it is not installed."""
    try:
        import ukis_csmask
    except ImportError:
        raise InputError(
            "the pretrained encoder's start comes from ukis-csmask, which is not installed "
            f"({PRETRAINED_INSTALL})"
        ) from None
    root = Path(ukis_csmask.__file__).parent
    onnx_path, json_path = root / f"{CSMASK_MODEL}.onnx", root / f"{CSMASK_MODEL}.json"
    if not onnx_path.is_file() or not json_path.is_file():
        raise InputError(f"ukis-csmask has no {CSMASK_MODEL} network in {root}")
    return onnx_path, json_path


def csmask_encoder(want: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tensors of ukis-csmask's 4-band L2A network named in ``want`` (an ``Encoder``'s state dict), shapes
    and dtypes as there."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise InputError(f"reading ukis-csmask's network needs onnx ({PRETRAINED_INSTALL})") from None
    onnx_path, json_path = csmask_files()
    mean, std = json.loads(json_path.read_text())["data"]["dataset_statistics"]["img"]
    if not (np.allclose(mean, STEM_MEAN) and np.allclose(std, STEM_STD)):
        raise InputError(f"{json_path}: band statistics differ from the ones this network was built for")
    init = {t.name: t for t in onnx.load(str(onnx_path)).graph.initializer}
    out = {}
    for k, v in want.items():
        t = init.get(f"model.encoder.{k}")
        if t is None:
            continue
        a = torch.from_numpy(np.array(numpy_helper.to_array(t)))
        if tuple(a.shape) != tuple(v.shape):
            raise InputError(f"{onnx_path}: {k} is {tuple(a.shape)}, this encoder's is {tuple(v.shape)}")
        out[k] = a.to(v.dtype)
    missing = [k for k in want if k not in out and not k.endswith("num_batches_tracked")]
    if missing:
        raise InputError(f"{onnx_path}: {len(missing)} encoder tensors missing (first {missing[0]})")
    return out


def pretrained_start(net: EffUNet) -> int:
    """Load ukis-csmask's encoder into ``net`` (its decoder and added stem convolution stay as they are);
    returns how many tensors were loaded."""
    state = csmask_encoder(net.encoder.state_dict())
    net.encoder.load_state_dict(state, strict=False)
    return len(state)


def from_smp_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict of ``benchmarks/seg_pretrained_probe.py``'s network (``segmentation_models_pytorch``'s
    Unet under ``net.``) as ``EffUNet``'s: the prefix dropped, and the encoder's stride-32 stage, whose output
    that network computed and never used."""
    encoder = set(Encoder().state_dict())
    out = {}
    for k, v in state.items():
        k2 = k[4:] if k.startswith("net.") else k
        if k2.startswith("encoder.") and k2[len("encoder.") :] not in encoder:
            continue
        out[k2] = v
    missing = {f"encoder.{k}" for k in encoder} - set(out)
    if missing or "extra.weight" not in out:
        first = sorted(missing or {"extra.weight"})[0]
        raise ValueError(f"not a probe state dict: {first} missing")
    return out
