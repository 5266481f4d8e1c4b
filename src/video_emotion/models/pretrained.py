"""Pretrained initialisation: every way a model can start from weights it did not learn here, in one place.

    from video_emotion.models.pretrained import load_init
    report = load_init(model, {"kind": "resnet2d", "path": "resnet50.pth"}, classes=classes)

Six kinds of file (``init.kind``):

``resnet2d``
    An ImageNet 2D ResNet (torchvision's ``resnet18/34/50/101/152`` ``.pth`` files, or timm's ``resnet*``
    ``pytorch_model.bin`` / ``model.safetensors``; both use the same key names: ``conv1``, ``bn1``,
    ``layer{1-4}.{j}.conv{1,2,3}``, ``.bn{1,2,3}``, ``.downsample.{0,1}``, ``fc``) inflated into a P3D trunk
    (``p3d``, ``p3d_sa``, ``p3d_mhsa``, ``res_att``, ``res_att2``) whose ``block``, ``layers`` and ``width`` are those
    of the 2D net. The stem's 1x7x7 conv takes the 7x7 conv, every spatial 1x3x3 conv its 3x3 counterpart, every
    1x1x1 conv its 1x1 one, batch norms theirs; the temporal 3x1x1 convs are set so that the inflated trunk computes
    the 2D network's features frame by frame at the start (:func:`inflate_resnet`).
``c3d``
    C3D's Sports-1M weights as distributed for PyTorch (``c3d.pickle``: ``conv1``, ``conv2``, ``conv3a`` ...
    ``conv5b``, ``fc6``, ``fc7``, ``fc8``), into ``c3d``.
``torchvision_video``
    torchvision's Kinetics-400 video ResNets (``r3d_18-b3b3357e.pth``, ``mc3_18-a90a0ba3.pth``,
    ``r2plus1d_18-91a641e6.pth``), into ``r3d_18``, ``mc3_18``, ``r2plus1d_18`` (the same key names and shapes).
``p3d199``
    The P3D authors' Kinetics P3D-199 as converted to PyTorch (``p3d_rgb_199.checkpoint.pth.tar``, its tensors
    under ``state_dict``), into ``p3d199`` or a P3D variant built with ``trunk="p3d199"``.
``checkpoint``
    A ``best.pt`` (or ``last.pt``) this pipeline wrote: cross-dataset fine-tuning.
``state_dict``
    Any file of tensors (``torch.save`` of a state dict, possibly under ``state_dict``/``model``, or
    ``.safetensors``), its keys renamed by ``init.key_map``.

Each kind brings the input convention its weights were trained with (:data:`INPUT_NORMS`, a
:class:`video_emotion.clips.InputNorm`; a checkpoint its own, a plain state dict the default), in the report as
``input_norm``: training, evaluation and predict normalise clips with it. ``init.input_norm`` (``mean``, ``std``,
``scale``, ``order``) overrides it.

``init.key_map`` (``{file prefix: model prefix}``, longest prefix first; ``null`` drops the keys) applies to the
file's keys before any of the above. Every load returns a report (matched, derived, missing, unexpected and
shape-mismatched keys, the classifier head and the share of the model's weights that the file set) and is refused
below ``init.min_matched``: a silently partial load is the classic bug of fine-tuning.

The classifier head (``fc`` of the P3D nets, ``fc8`` of C3D) is never counted: when the file names its classes
(a checkpoint of this pipeline) the rows of the classes both share are carried over by name and the others keep
their fresh initialisation; otherwise (ImageNet's 1000 classes, Sports-1M's 487) it is re-initialised.

The fine-tuning controls (learning-rate multiplier of the loaded weights, frozen stages, frozen batch-norm
statistics) live here too: :func:`param_groups`, :func:`trunk_stages`, :func:`set_frozen`, :func:`freeze_batchnorm`.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from video_emotion.clips import InputNorm
from video_emotion.io import file_sha256

from .blocks import BasicBlock, Bottleneck, P3DConv
from .p3d import P3DNet
from .p3d199 import P3D199
from .video_resnet import VideoResNet

KINDS = ("resnet2d", "c3d", "torchvision_video", "p3d199", "checkpoint", "state_dict")
IMAGENET = InputNorm((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# The input convention of each kind's published weights: ImageNet's for the 2D ResNets and P3D-199 (its conversion's
# input_mean/input_std); torchvision's video models' Kinetics-400 statistics; C3D's Caffe input (0-255 BGR minus the
# Sports-1M mean, the mean clip's per-channel average). checkpoint: the checkpoint's own; state_dict: the default.
INPUT_NORMS = {
    "resnet2d": IMAGENET,
    "p3d199": IMAGENET,
    "torchvision_video": InputNorm((0.43216, 0.394666, 0.37645), (0.22803, 0.22145, 0.216989)),
    "c3d": InputNorm((90.25, 97.66, 101.41), (1.0, 1.0, 1.0), scale=255, order="BGR"),
}
# The models each kind's files are for (resnet2d: checked by inflate_resnet).
KIND_MODELS = {"torchvision_video": (VideoResNet, "r3d_18, mc3_18, r2plus1d_18"),
               "p3d199": (P3D199, 'p3d199, or a P3D variant with trunk="p3d199"')}
MIN_MATCHED = 0.9
# P3D-A's temporal conv sees its spatial conv's output through BN and ReLU. To pass that output through unchanged
# the inflated BN adds SHIFT (ReLU then cuts nothing above -SHIFT standard deviations) and the block's BN takes it
# off again (its running mean), in training mode too, where batch statistics remove the shift by themselves.
SHIFT = 8.0
# C3D's Sports-1M file (c3d.pickle) -> this package's C3D.
C3D_KEYS = {"conv1": "features.conv1a.0", "conv2": "features.conv2a.0", "conv3a": "features.conv3a.0",
            "conv3b": "features.conv3b.0", "conv4a": "features.conv4a.0", "conv4b": "features.conv4b.0",
            "conv5a": "features.conv5a.0", "conv5b": "features.conv5b.0", "fc6": "fc6", "fc7": "fc7", "fc8": "fc8"}
_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class InitError(ValueError):
    """An init file that cannot initialise the model; the message names the file and the fix."""


def weights_sha256(sd: Mapping[str, torch.Tensor], classes: Iterable[str] | None = None) -> str:
    """A hash of the weights themselves (names, dtypes, shapes, values) and the class names: the same for any file
    that holds them, whatever its bytes (``torch.save`` names each archive after its file, so a checkpoint saved
    again under a temporary name has other bytes and the same weights)."""
    h = hashlib.sha256()
    for key in sorted(sd):
        t = sd[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    h.update(json.dumps(list(classes or [])).encode())
    return h.hexdigest()


# ---- reading files ------------------------------------------------------------------------------------------------

_SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
                       "U8": torch.uint8, "BOOL": torch.bool}


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file (8-byte header length, JSON header, raw little-endian data) as a dict of tensors."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, spec in header.items():
        if key == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        dtype = _SAFETENSORS_DTYPES[spec["dtype"]]
        flat = torch.frombuffer(bytearray(data[start:end]), dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
        out[key] = flat.reshape(spec["shape"]).clone()
    return out


def _tensors(obj) -> dict[str, torch.Tensor] | None:
    """``obj`` as a flat state dict, unwrapping ``state_dict``/``model``/``module``/``net`` wrappers; else None."""
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module", "net"):
            if key in obj and (found := _tensors(obj[key])) is not None:
                return found
    return None


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file (``torch.save`` of a state dict, maybe wrapped, or ``.safetensors``).

    A ``module.`` prefix on every key (a model saved from inside DistributedDataParallel) is taken off.
    """
    path = Path(path)
    if not path.is_file():
        raise InitError(f"init file {path} not found; put the published file there (README: Pretrained "
                        "initialisation) or correct init.path")
    try:
        if path.suffix == ".safetensors":
            sd = read_safetensors(path)
        else:
            sd = _tensors(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 (any reader error means the same to the user)
        raise InitError(f"init file {path} cannot be read as weights ({type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from e
    if sd is None:
        raise InitError(f"init file {path} holds no state dict (a mapping of names to tensors)")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def apply_key_map(sd: Mapping[str, torch.Tensor], key_map: Mapping[str, str | None] | None) -> dict:
    """Rename keys by prefix (``{old: new}``, the longest matching prefix wins; ``new`` null drops the key)."""
    if not key_map:
        return dict(sd)
    prefixes = sorted(key_map, key=len, reverse=True)
    out = {}
    for key, value in sd.items():
        old = next((p for p in prefixes if key.startswith(p)), None)
        if old is None:
            out[key] = value
        elif key_map[old] is not None:
            out[key_map[old] + key[len(old):]] = value
    return out


# ---- model structure ----------------------------------------------------------------------------------------------


def head_name(model: nn.Module) -> str:
    """The classifier layer's name: ``fc`` (P3D nets), ``fc8`` (C3D)."""
    return "fc8" if hasattr(model, "fc8") else "fc"


def trunk_stages(model: nn.Module) -> list[nn.Module]:
    """The model's stages from the input on, for ``freeze_stages``: P3D nets: stem, stage 1 ... 4 (with their
    spatial attention); C3D: conv1a, conv2a, conv3, conv4, conv5 (each with its pool), fc6, fc7."""
    if hasattr(model, "stages"):
        return [model.stem, *model.stages]
    f = model.features
    return [f.conv1a, f.conv2a, nn.ModuleList([f.conv3a, f.conv3b]), nn.ModuleList([f.conv4a, f.conv4b]),
            nn.ModuleList([f.conv5a, f.conv5b]), model.fc6, model.fc7]


# ---- 2D ResNet -> P3D -----------------------------------------------------------------------------------------------


class _Converted:
    """Model key -> (tensor, where it came from); ``derived`` marks tensors the inflation computed."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.source: dict[str, str] = {}
        self.derived: set[str] = set()

    def put(self, key: str, value: torch.Tensor, source: str | None) -> None:
        self.tensors[key] = value
        if source is None:
            self.derived.add(key)
        else:
            self.source[key] = source


def _inflate_conv(out: _Converted, sd: dict, used: set, key3d: str, key2d: str) -> None:
    if key2d in sd:
        out.put(key3d, sd[key2d].unsqueeze(2), key2d)
        used.add(key2d)


def _copy_bn(out: _Converted, sd: dict, used: set, prefix3d: str, prefix2d: str) -> None:
    for name in _BN:
        if prefix2d + name in sd:
            out.put(prefix3d + name, sd[prefix2d + name], prefix2d + name)
            used.add(prefix2d + name)


def _inflate_p3d_conv(out: _Converted, sd: dict, used: set, conv: P3DConv, bn: nn.BatchNorm3d, p3: str, bn3: str,
                      conv2d: str, bn2d: str) -> None:
    """A 2D 3x3 conv and its BN into a P3D conv and the BN after it, computing the 2D output on identical frames.

    P3D-B (S + T) and -C (S + T(S)): T starts at zero, so the block sees S's output alone; BN is the 2D one.
    P3D-A (T(ReLU(BN_mid(S)))): T passes its centre frame through; BN_mid normalises with the 2D statistics and
    adds SHIFT, the block's BN takes SHIFT off (running mean) and applies the 2D scale and bias.
    """
    _inflate_conv(out, sd, used, p3 + "spatial.weight", conv2d)
    complete = (conv2d in sd and tuple(sd[conv2d].unsqueeze(2).shape) == tuple(conv.spatial.weight.shape)
                and all(bn2d + n in sd for n in _BN[:4]))
    if not complete:  # the file's tensors go in as they are; the load report names what does not fit
        _copy_bn(out, sd, used, bn3, bn2d)
        return
    t = torch.zeros_like(conv.temporal.weight)
    if conv.kind != "A":
        out.put(p3 + "temporal.weight", t, None)
        if conv.kind == "C":  # BN_mid feeds only T (zero): its defaults
            for name, value in (("weight", 1.0), ("bias", 0.0), ("running_mean", 0.0), ("running_var", 1.0)):
                out.put(p3 + f"mid.0.{name}", torch.full((t.shape[0],), value), None)
        _copy_bn(out, sd, used, bn3, bn2d)
        return
    channels = t.shape[0]
    t[torch.arange(channels), torch.arange(channels), 1, 0, 0] = 1.0
    out.put(p3 + "temporal.weight", t, None)
    mid = p3 + "mid.0."
    out.put(mid + "weight", torch.ones(channels), None)
    out.put(mid + "bias", torch.full((channels,), SHIFT), None)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        if bn2d + name in sd:
            out.put(mid + name, sd[bn2d + name], bn2d + name)
            used.add(bn2d + name)
    out.put(bn3 + "weight", sd[bn2d + "weight"], bn2d + "weight")
    out.put(bn3 + "bias", sd[bn2d + "bias"], bn2d + "bias")
    used.update({bn2d + "weight", bn2d + "bias"})
    out.put(bn3 + "running_mean", torch.full((channels,), SHIFT), None)
    out.put(bn3 + "running_var", torch.full((channels,), 1.0 - bn.eps), None)


def inflate_resnet(sd: Mapping[str, torch.Tensor], model: nn.Module) -> tuple[_Converted, set[str]]:
    """A torchvision/timm 2D ResNet state dict as the state dict of the P3D ``model``: (converted, used 2D keys)."""
    if not isinstance(model, P3DNet):
        raise InitError("init kind resnet2d inflates a 2D ResNet into a P3D net (p3d, p3d_sa, p3d_mhsa, res_att, "
                        f"res_att2), not into {type(model).__name__}")
    if "conv1.weight" not in sd and "conv1.0.weight" in sd:
        raise InitError("this 2D ResNet has a deep stem (timm's resnet*d: conv1.0, conv1.1, ...), which the P3D "
                        "stem (one 1x7x7 conv) cannot take; use a plain ResNet (torchvision's, or timm's resnet50)")
    sd = dict(sd)
    out, used = _Converted(), set()
    _inflate_conv(out, sd, used, "stem.conv.weight", "conv1.weight")
    _copy_bn(out, sd, used, "stem.bn.", "bn1.")
    for i, stage in enumerate(model.stages):
        blocks = [b for b in stage if isinstance(b, (BasicBlock, Bottleneck))]
        for j, block in enumerate(blocks):
            p3, p2 = f"stages.{i}.{j}.", f"layer{i + 1}.{j}."
            if isinstance(block, Bottleneck):
                _inflate_conv(out, sd, used, p3 + "conv1.weight", p2 + "conv1.weight")
                _copy_bn(out, sd, used, p3 + "bn1.", p2 + "bn1.")
                _inflate_p3d_conv(out, sd, used, block.conv2, block.bn2, p3 + "conv2.", p3 + "bn2.",
                                  p2 + "conv2.weight", p2 + "bn2.")
                _inflate_conv(out, sd, used, p3 + "conv3.weight", p2 + "conv3.weight")
                _copy_bn(out, sd, used, p3 + "bn3.", p2 + "bn3.")
            else:
                for k in (1, 2):
                    _inflate_p3d_conv(out, sd, used, getattr(block, f"conv{k}"), getattr(block, f"bn{k}"),
                                      p3 + f"conv{k}.", p3 + f"bn{k}.", p2 + f"conv{k}.weight", p2 + f"bn{k}.")
            _inflate_conv(out, sd, used, p3 + "shortcut.0.weight", p2 + "downsample.0.weight")
            _copy_bn(out, sd, used, p3 + "shortcut.1.", p2 + "downsample.1.")
    for name in ("weight", "bias"):  # the 2D classifier: the head logic re-initialises it
        if f"fc.{name}" in sd:
            out.put(f"fc.{name}", sd[f"fc.{name}"], f"fc.{name}")
            used.add(f"fc.{name}")
    return out, used


# ---- the load ------------------------------------------------------------------------------------------------------


def _plain_converted(sd: Mapping[str, torch.Tensor], rename: Mapping[str, str] | None = None) -> tuple[_Converted,
                                                                                                   set[str]]:
    out = _Converted()
    for key, value in sd.items():
        new = key
        if rename:
            layer, _, rest = key.partition(".")
            new = f"{rename[layer]}.{rest}" if layer in rename and rest else key
        out.put(new, value, key)
    return out, set(sd)


def _head(model_sd: dict, conv: _Converted, head: str, classes: list[str] | None,
          file_classes: list[str] | None) -> tuple[dict, str]:
    """New head tensors and what happened to the head."""
    w, b = f"{head}.weight", f"{head}.bias"
    if w not in conv.tensors:
        return {}, "initialised afresh (the file has no classifier)"
    fw, fb = conv.tensors[w], conv.tensors.get(b)
    if fw.ndim != 2 or fw.shape[1] != model_sd[w].shape[1]:
        return {}, f"initialised afresh (the file's classifier takes {fw.shape[-1]} features, the model's " \
                   f"{model_sd[w].shape[1]})"
    if not file_classes or not classes:
        return {}, f"initialised afresh (the file's {fw.shape[0]} outputs name no classes)"
    if len(file_classes) != fw.shape[0]:
        return {}, "initialised afresh (the file's class list does not fit its classifier)"
    shared = [c for c in classes if c in file_classes]
    if not shared:
        return {}, f"initialised afresh (no class in common with the file's {', '.join(file_classes)})"
    new_w, new_b = model_sd[w].clone(), model_sd[b].clone()
    for c in shared:
        new_w[classes.index(c)] = fw[file_classes.index(c)]
        if fb is not None:
            new_b[classes.index(c)] = fb[file_classes.index(c)]
    if shared == list(classes) and list(file_classes) == list(classes):
        return {w: new_w, b: new_b}, "carried over (the same classes)"
    rest = [c for c in classes if c not in shared]
    return {w: new_w, b: new_b}, (f"rows carried over by class name: {', '.join(shared)}"
                                  + (f"; initialised afresh: {', '.join(rest)}" if rest else ""))


def _examples(keys: Iterable[str], n: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _read(init: Mapping) -> tuple[dict[str, torch.Tensor], list[str] | None, InputNorm]:
    """The file's tensors, for a checkpoint of this pipeline its class names, and the input convention of the
    weights (:data:`INPUT_NORMS`; a checkpoint's own; ``init.input_norm`` above either)."""
    path = Path(init["path"])
    kind = init.get("kind")
    if kind != "checkpoint":
        return read_state_dict(path), None, InputNorm.of(init.get("input_norm") or INPUT_NORMS.get(kind))
    if not path.is_file():
        raise InitError(f"init checkpoint {path} not found; train that run first or correct init.path")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return dict(ckpt["model"]), list(ckpt.get("classes") or []) or None, \
            InputNorm.of(init.get("input_norm") or ckpt.get("input_norm"))
    except Exception as e:  # noqa: BLE001
        raise InitError(f"init checkpoint {path} is not a checkpoint of this pipeline ({type(e).__name__}: "
                        f"{str(e).strip().splitlines()[0][:200] if str(e).strip() else ''})") from e


def load_init(model: nn.Module, init: Mapping, *, classes: list[str] | None = None) -> dict:
    """Initialise ``model`` in place from ``init`` (``kind``, ``path``, ``key_map``, ``min_matched``); the report.

    ``classes``: the model's class names (the head rows are carried over by name from a file that names its own).
    The report (a plain dict: it goes into the log, the checkpoints and the history's metadata) holds ``kind``,
    ``path``, ``sha256`` (of the file's bytes), ``weights_sha256`` (:func:`weights_sha256` of what it holds: the
    training fingerprint's identity of an init), ``matched``/``derived``/``missing``/``unexpected``/``shape_mismatched`` (counts),
    ``loaded`` (every model key the init set), the key lists (``missing_keys`` ...), ``head``, ``matched_share``
    (of the model's weights, head excluded), ``min_matched`` and ``input_norm`` (the weights' input convention,
    :meth:`InputNorm.as_dict`). Raises :class:`InitError` below ``min_matched`` or for a model of another family.
    """
    kind = str(init.get("kind") or "")
    if kind not in KINDS:
        raise InitError(f"init.kind {kind!r} is not one of {', '.join(KINDS)}")
    path = Path(init["path"])
    min_matched = float(init.get("min_matched", MIN_MATCHED) if init.get("min_matched") is not None else MIN_MATCHED)
    if kind in KIND_MODELS and not isinstance(model, KIND_MODELS[kind][0]):
        raise InitError(f"init kind {kind} loads into {KIND_MODELS[kind][1]}, not into {type(model).__name__}")
    sd, file_classes, norm = _read(init)
    held = weights_sha256(sd, file_classes)
    sd = apply_key_map(sd, init.get("key_map"))
    if kind == "resnet2d":
        conv, used = inflate_resnet(sd, model)
        unexpected = sorted(set(sd) - used)
    elif kind == "c3d":
        conv, used = _plain_converted(sd, C3D_KEYS)
        unexpected = []
    else:
        conv, used = _plain_converted(sd)
        unexpected = []

    model_sd = model.state_dict()
    head = head_name(model)
    head_keys = {f"{head}.weight", f"{head}.bias"}
    counted = [k for k in model_sd if k not in head_keys and not k.endswith("num_batches_tracked")]
    matched, derived, missing, mismatched = [], [], [], []
    new = {}
    for key in model_sd:
        if key in head_keys:
            continue
        if key not in conv.tensors:
            if not key.endswith("num_batches_tracked"):
                missing.append(key)
            continue
        value = conv.tensors[key]
        if tuple(value.shape) != tuple(model_sd[key].shape):
            mismatched.append(f"{key} {tuple(value.shape)} -> {tuple(model_sd[key].shape)}")
            continue
        new[key] = value.to(model_sd[key].dtype)
        if not key.endswith("num_batches_tracked"):
            (derived if key in conv.derived else matched).append(key)
    unexpected += sorted(conv.source.get(k, k) for k in conv.tensors
                         if k not in model_sd and k not in head_keys)
    head_new, head_note = _head(model_sd, conv, head, list(classes) if classes else None, file_classes)
    share = (len(matched) + len(derived)) / max(len(counted), 1)
    report = {
        "kind": kind, "path": str(path), "sha256": file_sha256(path), "weights_sha256": held,
        "matched": len(matched), "derived": len(derived), "missing": len(missing), "unexpected": len(unexpected),
        "shape_mismatched": len(mismatched), "matched_share": round(share, 4), "min_matched": min_matched,
        "head": head_note, "missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": mismatched,
        "loaded": sorted(new) + sorted(head_new), "input_norm": norm.as_dict(),
    }
    if share < min_matched or not (matched or derived):
        problems = "; ".join(p for p in (
            f"{len(missing)} missing, e.g. {_examples(missing)}" if missing else "",
            f"{len(mismatched)} of another shape, e.g. {_examples(mismatched, 2)}" if mismatched else "",
            f"{len(unexpected)} file keys unused, e.g. {_examples(unexpected)}" if unexpected else "") if p)
        raise InitError(
            f"init {path} ({kind}) set {len(matched) + len(derived)} of the model's {len(counted)} weight tensors "
            f"({share:.0%}), below init.min_matched {min_matched:.0%}: {problems}. Check that the file is a {kind} "
            "file for this architecture and its keywords (block, layers, width), map its key names with "
            "init.key_map, or lower init.min_matched if a partial load is what you want")
    model.load_state_dict({**model_sd, **new, **head_new})
    return report


def summary(report: Mapping) -> str:
    """One line for the log and the report: what the init was and how much of the model it set."""
    line = (f"init {report['kind']} {report['path']} (sha256 {report['sha256'][:12]}): {report['matched']} tensors "
            f"matched, {report['derived']} derived, {report['missing']} missing, {report['unexpected']} unexpected, "
            f"{report['shape_mismatched']} of another shape ({report['matched_share']:.0%} of the model, "
            f"min {report['min_matched']:.0%}); head {report['head']}; input "
            f"{InputNorm.of(report.get('input_norm')).describe()}")
    for name, key in (("missing", "missing_keys"), ("unexpected", "unexpected_keys"),
                      ("of another shape", "mismatched_keys")):
        if report.get(key):
            line += f"; {name}: {_examples(report[key], 4)}"
    return line


def short(report: Mapping | None) -> str:
    """A few words naming the init, for tables: ``scratch``, ``resnet2d resnet50.pth (97%)``."""
    if not report:
        return "scratch"
    return f"{report['kind']} {Path(report['path']).name} ({report['matched_share']:.0%})"


# ---- fine-tuning controls ------------------------------------------------------------------------------------------


def param_groups(model: nn.Module, loaded: Iterable[str], weight_decay: float, lr: float,
                 pretrained_lr_mult: float = 1.0) -> list[dict]:
    """Optimizer groups: decayed (ndim >= 2) and not, each split into fresh and loaded parameters; the loaded ones
    (``loaded``: state-dict keys the init set, head excluded) get ``lr * pretrained_lr_mult``. Without loaded
    parameters: the two groups of a run from scratch. Empty groups are left out."""
    loaded = set(loaded) - {f"{head_name(model)}.weight", f"{head_name(model)}.bias"}
    groups = []
    for mult_of, is_loaded in ((1.0, False), (pretrained_lr_mult, True)):
        params = [(n, q) for n, q in model.named_parameters() if (n in loaded) == is_loaded]
        for decay in (True, False):
            chosen = [q for n, q in params if (q.ndim >= 2) == decay]
            if chosen or not is_loaded:
                groups.append({"params": chosen, "weight_decay": weight_decay if decay else 0.0,
                               "lr": lr * mult_of, "pretrained": is_loaded})
    return groups


def set_frozen(model: nn.Module, n_stages: int, frozen: bool) -> list[nn.Module]:
    """Freeze (or thaw) the first ``n_stages`` of :func:`trunk_stages`: no gradient, batch norms in eval mode.

    Returns the frozen stages; call :func:`keep_frozen_eval` after each ``model.train()``.
    """
    stages = trunk_stages(model)[:max(0, n_stages)]
    for stage in stages:
        for q in stage.parameters():
            q.requires_grad_(not frozen)
    return stages if frozen else []


def keep_frozen_eval(modules: Iterable[nn.Module]) -> None:
    """Batch norms of ``modules`` in eval mode (their statistics stay as loaded); after ``model.train()``."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def freeze_batchnorm(model: nn.Module) -> None:
    """Every batch norm of ``model`` in eval mode: statistics as loaded (``train.freeze_bn``)."""
    keep_frozen_eval([model])


FINETUNE_DEFAULTS = {
    "pretrained_lr_mult": 1.0,  # learning rate of the weights the init set, relative to train.lr
    "freeze_stages": 0,  # the first N of trunk_stages get no gradient ...
    "freeze_epochs": None,  # ... for the first M epochs (None: the whole run); their batch norms keep their statistics
    "freeze_bn": False,  # every batch norm keeps the statistics it was loaded with, the whole run
}


class FineTuning:
    """The fine-tuning controls of a model with an init, epoch by epoch (``train.`` keys of FINETUNE_DEFAULTS).

    ``set_epoch(epoch)`` freezes or thaws the first ``freeze_stages`` stages and returns whether that changed (a
    DistributedDataParallel wrapper must then be made again); a forward pre-hook keeps the batch norms that must not
    learn their statistics in eval mode whatever ``model.train()`` did.
    """

    def __init__(self, model: nn.Module, settings: Mapping) -> None:
        s = {**FINETUNE_DEFAULTS, **{k: v for k, v in settings.items() if k in FINETUNE_DEFAULTS}}
        self.model, self.n, self.until, self.freeze_bn = model, int(s["freeze_stages"]), s["freeze_epochs"], \
            bool(s["freeze_bn"])
        self.frozen: bool | None = None
        self.held: list[nn.Module] = [model] if self.freeze_bn else []
        if self.n or self.freeze_bn:
            model.register_forward_pre_hook(lambda _m, _a: keep_frozen_eval(self.held))

    def set_epoch(self, epoch: int) -> bool:
        if not self.n:
            return False
        frozen = self.until is None or epoch < int(self.until)
        if frozen == self.frozen:
            return False
        self.frozen = frozen
        stages = set_frozen(self.model, self.n, frozen)
        self.held = [self.model] if self.freeze_bn else stages
        return True
