"""Ship detection by hull segmentation: what the ship detectors ``auto`` (the default), ``seg-ens``, ``seg``
and ``seg-b4`` run.

A small U-Net maps whatever bands a scene has (any of B02 B03 B04 B08 B11 that includes B08 or all three
true-colour bands) to two probability maps: the hull and its core (the inner half of each hull, apart from
hulls that touch). Ships moored side by side are split by their cores; each ship's box, length and beam come
from its own hull pixels. Training: ``detect.ships.segment_train``; weights ``weights/ships-s2-seg.pt``
(v7, method ``seg``) and, on a pretrained encoder (``detect.ships.effnet``), ``weights/ships-s2-seg-b4.pt``
(method ``seg-b4``); ``ships-s2-seg-ens`` is the two averaged (``SegEnsemble``, method ``seg-ens``), which
``auto`` runs on every scene since session 25.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from affine import Affine
from scipy import ndimage
from torch import nn

from detect.core.device import check_device
from detect.core.geometry import Detection, detection_from_pixel_box, mask_corner_points
from detect.core.haze import check_haze_mode, haze_applies, subtract_dark
from detect.core.water import WaterMask, water_mask
from detect.core.weights import resolve_weights, sha256_file, weights_dir
from imagery.atomic import atomic_write_json
from imagery.errors import ModelError
from imagery.types import Grid, RasterWindow

log = logging.getLogger(__name__)

#: Input bands in channel order. A band the scene lacks is zero and its presence channel 0.
SEG_BANDS = ("B02", "B03", "B04", "B08", "B11")
TRUE_COLOUR = ("B02", "B03", "B04")
DEFAULT_SEG_MODEL = "ships-s2-seg"
#: The segmentation model on the pretrained encoder (``detect.ships.effnet``), method ``seg-b4``: what
#: ``auto`` ran on every scene in session 24, since then a member of ``ENSEMBLE_SEG_MODEL``
#: (weights/ships-s2-seg-b4.md).
B4_SEG_MODEL = "ships-s2-seg-b4"
#: The two segmentation models as one ensemble (their probabilities averaged), method ``seg-ens``: what
#: ``auto`` runs on every scene since session 25 (weights/ships-s2-seg-ens.md).
ENSEMBLE_SEG_MODEL = "ships-s2-seg-ens"


def usable_bands(bands: Sequence[str]) -> bool:
    """Whether the model accepts a scene with ``bands``: B08, or all three true-colour bands."""
    have = set(bands)
    return "B08" in have or set(TRUE_COLOUR) <= have


def present_bands(window: RasterWindow) -> tuple[str, ...]:
    """The model bands ``window`` really holds: a band of all-nodata counts as absent."""
    return tuple(b for b in SEG_BANDS if b in window.band_names and np.isfinite(window.band(b)).any())


def encode(reflectance: np.ndarray, present: Sequence[str]) -> np.ndarray:
    """(len(SEG_BANDS), H, W) reflectance (absent bands anything) → (2·len(SEG_BANDS), H, W) model input.

    The square root spreads dark water (0.01–0.05) apart from hulls (0.05–0.4) without letting bright
    roofs and quays dominate; presence channels tell the network which bands are real."""
    n = len(SEG_BANDS)
    out = np.zeros((2 * n, *reflectance.shape[1:]), np.float32)
    for i, b in enumerate(SEG_BANDS):
        if b in present:
            out[i] = np.sqrt(np.clip(np.nan_to_num(reflectance[i], nan=0.0), 0.0, 2.0)) * 3.0
            out[n + i] = 1.0
    return out


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Plain U-Net: ``depth`` levels of two 3×3 convolutions, ``base``·2^level channels, two output maps."""

    def __init__(self, in_ch: int = 2 * len(SEG_BANDS), base: int = 16, depth: int = 4, out_ch: int = 2):
        super().__init__()
        chs = [base * 2**i for i in range(depth)]
        self.enc = nn.ModuleList()
        c = in_ch
        for ch in chs:
            self.enc.append(_block(c, ch))
            c = ch
        self.dec = nn.ModuleList()
        for ch in reversed(chs[:-1]):
            self.dec.append(_block(c + ch, ch))
            c = ch
        self.head = nn.Conv2d(c, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, enc in enumerate(self.enc):
            x = enc(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for dec in self.dec:
            s = skips.pop()
            x = F.interpolate(x, size=s.shape[-2:], mode="bilinear", align_corners=False)
            x = dec(torch.cat([x, s], 1))
        return self.head(x)


#: Networks the segmenter can be: "" the plain ``UNet`` (``base``, ``depth``), or a U-Net on a pretrained
#: encoder (``detect.ships.effnet``: "efficientnet-b4", ``base`` and ``depth`` unused).
ENCODERS = ("", "efficientnet-b4")


def seg_network(base: int = 16, depth: int = 4, encoder: str = "") -> nn.Module:
    """A fresh network of the segmenter (random weights): ``UNet(base, depth)`` or, with ``encoder``, the
    pretrained-encoder U-Net (``detect.ships.effnet.EffUNet``; its pretrained start is loaded by training)."""
    if encoder == "":
        return UNet(base=base, depth=depth)
    if encoder == "efficientnet-b4":
        from detect.ships.effnet import EffUNet

        return EffUNet(SEG_BANDS)
    raise ModelError(
        f"unknown segmentation encoder {encoder!r}; this code builds {', '.join(map(repr, ENCODERS))}"
    )


def network_for(state: dict[str, torch.Tensor]) -> nn.Module:
    """A fresh network of the architecture whose weights ``state`` holds (not loaded into it): for readers of
    trained runs that kept no spec (the benchmarks)."""
    if "encoder._conv_stem.weight" in state:
        return seg_network(encoder="efficientnet-b4")
    if "enc.0.0.weight" not in state:
        raise ModelError("not the weights of a segmentation network this code builds")
    depth = len({k.split(".")[1] for k in state if k.startswith("enc.")})
    return seg_network(int(state["enc.0.0.weight"].shape[0]), depth)


@dataclass(frozen=True)
class SegSpec:
    """What a set of segmentation weights expects and how it scored; ``<name>.json`` beside ``<name>.pt``."""

    name: str
    base: int = 16
    depth: int = 4
    bands: tuple[str, ...] = SEG_BANDS
    gsd_m: float = 10.0
    #: Instance score at or above which a ship is reported (chosen inside each fold's training cities).
    threshold: float = 0.5
    mask_threshold: float = 0.5
    core_threshold: float = 0.5
    min_pixels: int = 3
    #: No ship is longer than ~460 m; longer "hulls" are breakwaters, quays and bridge decks.
    max_length_m: float = 500.0
    #: Dark level per band of the training scenes (``detect.core.haze``): what dark-object subtraction
    #: brings a Level-1C scene back to. Empty: no subtraction.
    dark_reference: dict[str, float] = field(default_factory=dict, compare=False)
    sha256: str = ""
    metrics: dict[str, Any] = field(default_factory=dict, compare=False)
    #: The network (``ENCODERS``): "" the plain U-Net of ``base`` and ``depth``.
    encoder: str = ""
    #: An ensemble's members: weights name → sha256 (each a segmentation model of its own beside this spec,
    #: whose hull and core probabilities are averaged); empty for one network. An ensemble has no .pt: its
    #: ``sha256`` is ``ensemble_digest`` (members and thresholds), what a run's record key checks.
    members: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        if self.encoder not in ENCODERS:
            raise ModelError(
                f"segmentation weights with encoder {self.encoder!r}; this code builds "
                f"{', '.join(map(repr, ENCODERS))}"
            )
        if self.bands != SEG_BANDS:
            raise ModelError(
                f"segmentation weights for bands {list(self.bands)}; this code reads {list(SEG_BANDS)}"
            )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["arch"] = "ensemble" if self.members else "unet"
        d["bands"] = list(self.bands)
        if not self.encoder:  # the plain U-Net's specs read as they did before encoders
            del d["encoder"]
        if not self.members:
            del d["members"]
        return d

    @classmethod
    def read(cls, path: str | Path) -> SegSpec:
        try:
            d = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ModelError(f"model spec {path} not found") from None
        except (OSError, ValueError) as e:
            raise ModelError(f"model spec {path} is unreadable: {e}") from None
        arch = d.get("arch") if isinstance(d, dict) else None
        if arch not in ("unet", "ensemble") or (arch == "ensemble") != bool(d.get("members")):
            raise ModelError(f"{path} is not a segmentation model spec (arch {arch!r})")
        members = d.get("members", {})
        if not isinstance(members, dict) or not all(isinstance(v, str) for v in members.values()):
            raise ModelError(f"{path}: 'members' must map weights names to their sha256")
        try:
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (TypeError, ValueError) as e:  # a field missing or of the wrong kind
            raise ModelError(f"model spec {path} is malformed: {str(e).splitlines()[0]}") from None

    def write(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_json())


def ensemble_digest(spec: SegSpec) -> str:
    """What defines an ensemble's detections, hashed: its members' sha256, its thresholds and its grid (it
    has no weights file of its own to hash; ``dark_reference`` enters run record keys on its own)."""
    import hashlib

    keys = ("threshold", "mask_threshold", "core_threshold", "min_pixels", "max_length_m", "gsd_m")
    what = {"members": dict(sorted(spec.members.items())), **{k: getattr(spec, k) for k in keys}}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()


def onnx_session(net: nn.Module, spec: SegSpec) -> Any | None:
    """An onnxruntime session of ``net`` on CPU, or None where onnxruntime (or the export) is unavailable.

    The graph is exported once per weights (keyed by their sha256) into the same cache as the YOLO model's
    exports; onnxruntime runs this U-Net about twice as fast as torch on CPU, with the same probabilities
    (logits agree to ~1e-5)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from detect.ships.onnx_runtime import onnx_cache_dir

    path = onnx_cache_dir() / f"{spec.name}-seg-{spec.sha256[:16]}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        x = torch.zeros(1, 2 * len(SEG_BANDS), 64, 64)
        axes = {2: "height", 3: "width"}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(
                    net.cpu().eval(),
                    (x,),
                    str(tmp),
                    input_names=["x"],
                    output_names=["logits"],
                    dynamic_axes={"x": axes, "logits": axes},
                    opset_version=17,
                    dynamo=False,
                )
            os.replace(tmp, path)
        except Exception as e:  # any exporter failure: torch still runs the model
            tmp.unlink(missing_ok=True)
            log.debug("ONNX export of %s failed (%s); running it on torch", spec.name, e)
            return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # a damaged cached export: torch still runs the model
        log.debug("cannot open %s (%s); running %s on torch", path, e, spec.name)
        return None


class SegModel:
    """Loaded segmentation weights: ``probabilities(x)`` maps an encoded scene to hull and core maps.

    ``session``: an onnxruntime session of the same network (``onnx_session``), used instead of torch."""

    def __init__(
        self, net: nn.Module, spec: SegSpec, device: str = "cpu", session: Any | None = None
    ) -> None:
        self.net = net.to(device).eval()
        self.spec = spec
        self.device = device
        self.session = session

    @property
    def runtime(self) -> str:
        return "onnxruntime" if self.session is not None else "torch"

    def with_spec(self, spec: SegSpec) -> SegModel:
        """The same network(s) under another spec (thresholds, ``dark_reference``)."""
        return SegModel(self.net, spec, self.device, session=self.session)

    @classmethod
    def load(
        cls, name_or_path: str | Path = DEFAULT_SEG_MODEL, device: str = "cpu", runtime: str = "auto"
    ) -> SegModel:
        """Named or path weights, sha256 checked. ``runtime``: "torch", "onnx" (onnxruntime on CPU), or
        "auto": onnxruntime on CPU where it is installed, else torch."""
        if runtime not in ("auto", "torch", "onnx"):
            raise ValueError(f"unknown runtime {runtime!r}; use auto, torch or onnx")
        pt, spec_path = resolve_weights(name_or_path)
        if spec_path.is_file() and not pt.is_file():
            spec = SegSpec.read(spec_path)
            if spec.members:
                return SegEnsemble.from_spec(spec, spec_path.parent, device=device, runtime=runtime)
        if not pt.is_file():
            missing = pt if spec_path.is_file() else f"{pt} (or an ensemble spec {spec_path.name})"
            raise ModelError(f"model weights {missing} not found (weights dir: {weights_dir()})")
        spec = SegSpec.read(spec_path)
        digest = sha256_file(pt)
        if spec.sha256 and spec.sha256 != digest:
            raise ModelError(
                f"{pt} does not match its spec's sha256 (spec {spec.sha256[:12]}…, file {digest[:12]}…)"
            )
        check_device(device)
        net = seg_network(spec.base, spec.depth, spec.encoder)
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except (RuntimeError, OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot load segmentation weights {pt}: {str(e).splitlines()[0]}") from None
        spec = spec if spec.sha256 else SegSpec(**{**asdict(spec), "sha256": digest})
        session = None
        if runtime == "onnx" or (runtime == "auto" and device == "cpu"):
            session = onnx_session(net, spec)
            if session is None and runtime == "onnx":
                raise ModelError(
                    "runtime 'onnx' asked for, but onnxruntime is not installed (pip install onnxruntime)"
                )
        return cls(net, spec, device, session=session)

    @torch.no_grad()
    def _forward(self, x: np.ndarray) -> np.ndarray:
        """(1, C, H, W) encoded input → (2, H, W) hull and core probabilities."""
        if self.session is not None:
            logits = self.session.run(None, {"x": np.ascontiguousarray(x, np.float32)})[0][0]
            return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return torch.sigmoid(self.net(torch.from_numpy(x).to(self.device)))[0].float().cpu().numpy()

    @torch.no_grad()
    def probabilities(
        self, x: np.ndarray, keep: np.ndarray | None = None, tile: int = 1024, overlap: int = 32
    ) -> np.ndarray:
        """(C, H, W) encoded input → (2, H, W) hull and core probabilities.

        Tiles of ``tile`` px overlap by ``overlap`` px (each keeps its centre, so no seams); a tile
        whose ``keep`` area (e.g. water) is empty is not run and stays 0."""
        _, h, w = x.shape
        out = np.zeros((2, h, w), np.float32)
        step = tile - 2 * overlap
        ys = range(0, max(1, h - 2 * overlap), step)
        xs = range(0, max(1, w - 2 * overlap), step)
        for y in ys:
            for xx in xs:
                y0, x0 = max(0, min(y, h - tile)), max(0, min(xx, w - tile))
                y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
                if keep is not None and not keep[y0:y1, x0:x1].any():
                    continue
                t = x[:, y0:y1, x0:x1]
                ph, pw = (-t.shape[1]) % 16, (-t.shape[2]) % 16
                p = self._forward(np.pad(t, ((0, 0), (0, ph), (0, pw)))[None])[:, : t.shape[1], : t.shape[2]]
                cy0 = 0 if y0 == 0 else overlap
                cx0 = 0 if x0 == 0 else overlap
                cy1 = t.shape[1] if y1 == h else t.shape[1] - overlap
                cx1 = t.shape[2] if x1 == w else t.shape[2] - overlap
                out[:, y0 + cy0 : y0 + cy1, x0 + cx0 : x0 + cx1] = p[:, cy0:cy1, cx0:cx1]
        return out


class SegEnsemble(SegModel):
    """Several segmentation models that read the same input, run on every tile, their hull and core
    probabilities averaged; ``spec`` (the ensemble's: thresholds, ``members``) decides the detections."""

    def __init__(self, members: Sequence[SegModel], spec: SegSpec) -> None:
        if not members:
            raise ModelError(f"ensemble {spec.name} has no members")
        self.members = list(members)
        self.net = self.members[0].net
        self.spec = spec
        self.device = self.members[0].device
        self.session = None

    @property
    def runtime(self) -> str:
        return "+".join(m.runtime for m in self.members)

    def with_spec(self, spec: SegSpec) -> SegEnsemble:
        return SegEnsemble(self.members, spec)

    @classmethod
    def from_spec(
        cls, spec: SegSpec, folder: Path, device: str = "cpu", runtime: str = "auto"
    ) -> SegEnsemble:
        """The members named in ``spec`` from ``folder``, each checked against the sha256 the ensemble
        was measured with (a member retrained since would silently change the ensemble)."""
        if spec.sha256 and spec.sha256 != ensemble_digest(spec):
            raise ModelError(f"ensemble spec {spec.name} does not match its sha256 (edited by hand?)")
        members = []
        for name, digest in spec.members.items():
            try:
                m = SegModel.load(folder / f"{name}.pt", device=device, runtime=runtime)
            except ModelError as e:
                raise ModelError(f"ensemble {spec.name}: member {name}: {e}") from None
            if m.spec.sha256 != digest:
                raise ModelError(
                    f"ensemble {spec.name}: member {name} is not the weights it was measured with "
                    f"(expected {digest[:12]}…, found {m.spec.sha256[:12]}…)"
                )
            if m.spec.gsd_m != spec.gsd_m:
                raise ModelError(
                    f"ensemble {spec.name}: member {name} reads a {m.spec.gsd_m} m grid, not {spec.gsd_m}"
                )
            members.append(m)
        return cls(members, spec if spec.sha256 else replace(spec, sha256=ensemble_digest(spec)))

    def _forward(self, x: np.ndarray) -> np.ndarray:
        return np.mean([m._forward(x) for m in self.members], axis=0, dtype=np.float32)


@dataclass(frozen=True)
class Instance:
    """One ship's hull pixels (rows, cols on the window grid) and its score."""

    rows: np.ndarray
    cols: np.ndarray
    score: float

    def corners_px(self) -> np.ndarray:
        """Minimum-area rectangle around the hull's pixel corners, (4, 2) col, row."""
        r0, c0 = int(self.rows.min()), int(self.cols.min())
        m = np.zeros((int(self.rows.max()) - r0 + 1, int(self.cols.max()) - c0 + 1), np.uint8)
        m[self.rows - r0, self.cols - c0] = 1
        pts = mask_corner_points(m) + np.array([c0, r0])
        return cv2.boxPoints(cv2.minAreaRect(pts.astype(np.float32))).astype(np.float64)


def instances(prob: np.ndarray, spec: SegSpec) -> list[Instance]:
    """Hull and core maps → ships: each core is a seed, each hull pixel joins the nearest seed in its own
    hull component; hull components without a core are ships of their own. Score: half the mean hull
    probability plus half the peak core probability."""
    eight = np.ones((3, 3), bool)
    hull = prob[0] > spec.mask_threshold
    core = (prob[1] > spec.core_threshold) & hull
    seeds, n = ndimage.label(core, structure=eight)
    comp, _ = ndimage.label(hull, structure=eight)
    lab = np.zeros(hull.shape, np.int32)
    if n:
        _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
        lab = np.where(hull, seeds[iy, ix], 0)
        seed_comp = np.zeros(n + 1, np.int64)
        seed_comp[seeds[core]] = comp[core]
        lab[seed_comp[lab] != comp] = 0  # a nearest seed across water belongs to another hull
    orphan = hull & (lab == 0)
    extra, _ = ndimage.label(orphan, structure=eight)
    lab = np.where(orphan, extra + n, lab)
    out = []
    for k, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        m = lab[sl] == k
        if m.sum() < spec.min_pixels:
            continue
        score = 0.5 * float(prob[0][sl][m].mean()) + 0.5 * float(prob[1][sl][m].max())
        rows, cols = np.nonzero(m)
        out.append(Instance(rows + sl[0].start, cols + sl[1].start, score))
    return out


#: How far (px) from its hull pixels a ship must find open water: one pixel of quay fender or mixed
#: hull/water pixels between them, and one of NDWI noise.
WATER_REACH_PX = 2


def upsample_factor(res_m: float, gsd_m: float) -> int:
    """How many model pixels per scene pixel along each axis: 1 when the model's grid is the scene's,
    2 for a 5 m model on a 10 m scene."""
    return max(1, round(res_m / gsd_m))


def upsampled_grid(grid: Grid, f: int) -> Grid:
    """``grid`` with pixels ``f`` times smaller (same footprint)."""
    if f == 1:
        return grid
    return Grid(grid.crs, grid.transform @ Affine.scale(1 / f), grid.width * f, grid.height * f)


def upsample(a: np.ndarray, f: int, linear: bool = False) -> np.ndarray:
    """A (H, W) or (C, H, W) array ``f`` times larger per axis: bilinear for reflectance, nearest for
    masks and labels (their dtype kept)."""
    if f == 1:
        return a
    if a.ndim == 3:
        return np.stack([upsample(b, f, linear) for b in a])
    interp = cv2.INTER_LINEAR if linear else cv2.INTER_NEAREST
    src = a.astype(np.uint8) if a.dtype == bool else a
    if src.dtype == np.int32 or src.dtype == np.int64:
        src = src.astype(np.float32)  # cv2 resizes no int32; labels stay exact as floats below 2**24
    out = cv2.resize(src, (a.shape[1] * f, a.shape[0] * f), interpolation=interp)
    return out.astype(a.dtype)


def touches(inst: Instance, water: np.ndarray, reach_px: int) -> bool:
    """Whether any pixel within ``reach_px`` of the hull is water."""
    h, w = water.shape
    r0, r1 = max(0, int(inst.rows.min()) - reach_px), min(h, int(inst.rows.max()) + reach_px + 1)
    c0, c1 = max(0, int(inst.cols.min()) - reach_px), min(w, int(inst.cols.max()) + reach_px + 1)
    m = np.zeros((r1 - r0, c1 - c0), np.uint8)
    m[inst.rows - r0, inst.cols - c0] = 1
    near = cv2.dilate(m, np.ones((2 * reach_px + 1, 2 * reach_px + 1), np.uint8)) > 0
    return bool((near & water[r0:r1, c0:c1]).any())


@dataclass(frozen=True)
class Hull:
    """A kept hull: its instance, its box corners (col, row on the model grid) and whether it touches no
    open water (None without a water mask)."""

    instance: Instance
    corners: np.ndarray
    on_land: bool | None


@dataclass(frozen=True)
class SegPass:
    """One pass of ``SegShipDetector.run`` over a window, on the model's grid (the scene's, or finer)."""

    bands: tuple[str, ...]
    grid: Grid
    reflectance: np.ndarray  # (len(SEG_BANDS), H, W), absent bands 0
    prob: np.ndarray  # (2, H, W): hull, core
    water_core: np.ndarray | None
    hulls: list[Hull]
    #: What dark-object subtraction took off each band (reflectance); None where it did not run.
    haze_offsets: dict[str, float] | None = None


class SegShipDetector:
    """The segmentation ship detector (``detect.core.registry.Detector``): methods ``seg`` (v7's U-Net),
    ``seg-b4`` (the pretrained encoder), ``seg-ens`` (both, averaged: a ``SegEnsemble``) and ``auto`` (which
    runs ``seg-ens``); the weights decide the network.

    Reads whichever of ``SEG_BANDS`` a window has; refuses (MissingBandsError) only a window with neither
    B08 nor true colour. ``water_mask``: where B03 and B08 allow an NDWI water mask, skip tiles with no
    water in reach and drop hulls that touch no open water (every ship floats: a hull moored at a quay
    still has water along its other side; roofs and yards inland do not); ``keep_land`` keeps them,
    flagged ``on_land: true``, instead.
    ``haze``: dark-object subtraction (``detect.core.haze``) down to the spec's ``dark_reference`` before the
    network: ``auto`` on Level-1C (top-of-atmosphere) windows, whose path radiance the L2A-trained model never
    saw; ``on`` on every window; ``off`` never. Where it took something off, the detector label says so
    (``seg:ships-s2-seg-ens[B02+B03+B04+B08;haze-corrected]``), which the run outputs keep. The water mask is
    made from the bands as read (NDWI changes little with haze).
    Each detection names the model and the bands that ran (``model_bands``) and what the subtraction took
    off (``haze_offsets``, null where it did not run); lengths come from the hull pixels
    (``length_source: pixels``).
    """

    classes = ("ship",)
    required_bands: tuple[str, ...] = ()
    optional_bands = SEG_BANDS

    def __init__(
        self,
        model: SegModel | str | None = None,
        conf: float | None = None,
        water_mask: bool = True,
        device: str = "cpu",
        *,
        keep_land: bool = False,
        haze: str = "auto",
    ) -> None:
        check_haze_mode(haze)
        if model is None or isinstance(model, str):
            model = SegModel.load(model or DEFAULT_SEG_MODEL, device=device)
        self.model = model
        self.spec = model.spec
        self.conf = self.spec.threshold if conf is None else conf
        self.use_water = water_mask
        self.keep_land = keep_land
        self.haze = haze
        self.name = f"seg:{self.spec.name}"
        self.last_water: WaterMask | None = None

    def bands_for(self, window: RasterWindow) -> tuple[str, ...]:
        """The model bands this window really holds (a band of all-nodata counts as absent)."""
        have = present_bands(window)
        if not usable_bands(have):
            raise window.missing_bands(
                ["B08"] if not set(TRUE_COLOUR) & set(have) else [b for b in TRUE_COLOUR if b not in have],
                f"{window.scene_id or 'window'}: the ship model needs B08, or B02+B03+B04 "
                f"(bands with data: {', '.join(have) or 'none'}"
                + (f"; listed: {', '.join(window.band_names)}" if set(window.band_names) != set(have) else "")
                + ")",
            )
        return tuple(have)

    def run(self, window: RasterWindow, *, conf: float | None = None) -> SegPass:
        """The network over ``window`` and the hulls the detector keeps (score >= ``conf``, no longer than
        the spec allows, touching open water where there is a water mask, unless ``keep_land``)."""
        conf = self.conf if conf is None else conf
        bands = self.bands_for(window)
        window = window.without_empty_bands()  # an all-nodata band is no band: it blanks no pixel, no water
        refl = np.zeros((len(SEG_BANDS), *window.grid.shape), np.float32)
        for b in bands:
            refl[SEG_BANDS.index(b)] = window.band(b)
        refl[:, ~window.valid_mask] = 0.0
        offsets = None
        if self.haze_applies(window):
            ref = {b: v for b, v in self.spec.dark_reference.items() if b in bands}
            refl, offsets = subtract_dark(refl, SEG_BANDS, window.valid_mask, ref)
            offsets = {b: round(v, 4) for b, v in offsets.items()}
        wm = water_mask(window) if self.use_water else None
        self.last_water = wm
        keep = window.valid_mask
        if wm is not None and wm.available and not self.keep_land:
            # hulls reach ~30 px beyond the water mask's edge at quays; tiles far inland are skipped
            near = cv2.dilate(wm.mask.astype(np.uint8), np.ones((61, 61), np.uint8)) > 0
            keep = keep & near
        # a model trained on a finer grid (spec.gsd_m 5: lever "finer grid") sees the scene upsampled
        f = upsample_factor(window.grid.res_m, self.spec.gsd_m)
        grid = upsampled_grid(window.grid, f)
        water_core = wm.core if wm is not None and wm.available else None
        if f > 1:
            refl, keep = upsample(refl, f, linear=True), upsample(keep, f)
            water_core = None if water_core is None else upsample(water_core, f)
        prob = self.model.probabilities(encode(refl, bands), keep=keep)
        hulls = []
        for inst in instances(prob, self.spec):
            if inst.score < conf:
                continue
            corners = inst.corners_px()
            sides = np.hypot(*(corners[1] - corners[0])), np.hypot(*(corners[2] - corners[1]))
            if max(sides) * grid.res_m > self.spec.max_length_m:
                continue
            on_land = None
            if water_core is not None:
                on_land = not touches(inst, water_core, WATER_REACH_PX * f)
                if on_land and not self.keep_land:
                    continue
            hulls.append(Hull(inst, corners, on_land))
        return SegPass(bands, grid, refl, prob, water_core, hulls, offsets)

    def haze_applies(self, window: RasterWindow) -> bool:
        """Whether dark-object subtraction runs on ``window`` (``haze`` and its processing level)."""
        return haze_applies(self.haze, self.spec.dark_reference, window.processing_level)

    def detect(self, window: RasterWindow, *, conf: float | None = None) -> list[Detection]:
        """Ships in ``window`` with score >= ``conf`` (default: the model's threshold)."""
        return self.detections(window, self.run(window, conf=conf))

    def detections(self, window: RasterWindow, run: SegPass) -> list[Detection]:
        """The detections of a pass of ``run`` over ``window``, one per kept hull, in the pass's order."""
        label = f"{self.name}[{'+'.join(run.bands)}{';haze-corrected' if run.haze_offsets else ''}]"
        return [
            detection_from_pixel_box(
                run.grid,
                h.corners,
                "ship",
                h.instance.score,
                scene=window.scene_id,
                acquired=window.acquired,
                detector=label,
                properties={
                    "on_land": h.on_land,
                    "length_source": "pixels",
                    "model_bands": "+".join(run.bands),
                    "haze_offsets": run.haze_offsets,
                },
            )
            for h in run.hulls
        ]
