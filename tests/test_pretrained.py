"""Pretrained initialisation: the published file formats (built here with their exact key names and shapes and random
values), the ResNet -> P3D inflation computing the 2D network's features, load reports, refusals, the head."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import torch.nn.functional as F

from video_emotion.labels import EMOTIONS
from video_emotion.models import create_model
from video_emotion.models.pretrained import (
    InitError,
    load_init,
    param_groups,
    read_safetensors,
    set_frozen,
    summary,
    trunk_stages,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# torchvision.models.resnet / timm.models.resnet: (block, layers); both name their weights the same way.
RESNETS = {"resnet18": ("basic", (2, 2, 2, 2)), "resnet34": ("basic", (3, 4, 6, 3)),
           "resnet50": ("bottleneck", (3, 4, 6, 3))}


def _bn(sd: dict, prefix: str, c: int, gen: torch.Generator, batches: bool = True) -> None:
    sd[prefix + "weight"] = 0.5 + torch.rand(c, generator=gen)
    sd[prefix + "bias"] = 0.1 * torch.randn(c, generator=gen)
    sd[prefix + "running_mean"] = 0.1 * torch.randn(c, generator=gen)
    sd[prefix + "running_var"] = 0.5 + torch.rand(c, generator=gen)
    if batches:
        sd[prefix + "num_batches_tracked"] = torch.tensor(100)


def _conv(sd: dict, key: str, out: int, inp: int, k: int, gen: torch.Generator) -> None:
    sd[key] = torch.randn(out, inp, k, k, generator=gen) * (2.0 / (inp * k * k)) ** 0.5


def resnet_state_dict(name: str, *, batches: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes of torchvision's (or timm's) ``name``, random values.

    ``batches=False``: without ``num_batches_tracked`` (as some timm checkpoints are published)."""
    block, layers = RESNETS[name]
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _conv(sd, "conv1.weight", 64, 3, 7, gen)
    _bn(sd, "bn1.", 64, gen, batches)
    inplanes, expansion = 64, 4 if block == "bottleneck" else 1
    for i, n in enumerate(layers):
        planes = 64 * 2**i
        for j in range(n):
            p = f"layer{i + 1}.{j}."
            if block == "bottleneck":
                _conv(sd, p + "conv1.weight", planes, inplanes, 1, gen)
                _bn(sd, p + "bn1.", planes, gen, batches)
                _conv(sd, p + "conv2.weight", planes, planes, 3, gen)
                _bn(sd, p + "bn2.", planes, gen, batches)
                _conv(sd, p + "conv3.weight", planes * 4, planes, 1, gen)
                _bn(sd, p + "bn3.", planes * 4, gen, batches)
            else:
                _conv(sd, p + "conv1.weight", planes, inplanes, 3, gen)
                _bn(sd, p + "bn1.", planes, gen, batches)
                _conv(sd, p + "conv2.weight", planes, planes, 3, gen)
                _bn(sd, p + "bn2.", planes, gen, batches)
            if j == 0 and (i > 0 or inplanes != planes * expansion):
                _conv(sd, p + "downsample.0.weight", planes * expansion, inplanes, 1, gen)
                _bn(sd, p + "downsample.1.", planes * expansion, gen, batches)
            inplanes = planes * expansion
    sd["fc.weight"] = 0.01 * torch.randn(1000, inplanes, generator=gen)
    sd["fc.bias"] = torch.zeros(1000)
    return sd


def test_the_published_resnet50_layout():
    sd = resnet_state_dict("resnet50")
    # torchvision's resnet50: 320 entries (53 convs, 53 batch norms of 5 entries, fc), 25.56 M parameters
    assert len(sd) == 320
    assert sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == 25_557_032
    assert sd["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert sd["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1) and sd["fc.weight"].shape == (1000, 2048)
    assert len(resnet_state_dict("resnet18")) == 122 and "layer1.0.downsample.0.weight" not in resnet_state_dict(
        "resnet18")


def resnet2d_features(sd: dict, x: torch.Tensor, block: str, layers, calibrate: bool = False) -> torch.Tensor:
    """The 2D ResNet's last feature map, written with torch.nn.functional from the state dict alone.

    ``calibrate``: batch norms in training mode with momentum 1, so that their running statistics become this
    batch's (statistics of the scale the features really have, as a trained network's are)."""

    def bn(t, p):
        return F.batch_norm(t, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                            training=calibrate, momentum=1.0, eps=1e-5)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1.")), 3, 2, 1)
    for i, n in enumerate(layers):
        for j in range(n):
            p, stride = f"layer{i + 1}.{j}.", 2 if i > 0 and j == 0 else 1
            if block == "bottleneck":
                out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"]), p + "bn1."))
                out = F.relu(bn(F.conv2d(out, sd[p + "conv2.weight"], stride=stride, padding=1), p + "bn2."))
                out = bn(F.conv2d(out, sd[p + "conv3.weight"]), p + "bn3.")
            else:
                out = F.relu(bn(F.conv2d(x, sd[p + "conv1.weight"], stride=stride, padding=1), p + "bn1."))
                out = bn(F.conv2d(out, sd[p + "conv2.weight"], padding=1), p + "bn2.")
            short = x
            if p + "downsample.0.weight" in sd:
                short = bn(F.conv2d(x, sd[p + "downsample.0.weight"], stride=stride), p + "downsample.1.")
            x = F.relu(out + short)
    return x


def write_safetensors(path, sd: dict) -> None:
    names = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for k, v in sd.items():
        data = v.contiguous().numpy().tobytes()
        header[k] = {"dtype": names[v.dtype], "shape": list(v.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


@pytest.mark.parametrize("name,fmt,frames", [("resnet18", "torchvision", 4), ("resnet50", "torchvision", 4),
                                             ("resnet50", "timm", 8)])
def test_inflated_trunk_computes_the_2d_features_on_identical_frames(tmp_path, name, fmt, frames):
    block, layers = RESNETS[name]
    sd = {k: v.double() if v.is_floating_point() else v
          for k, v in resnet_state_dict(name, batches=fmt == "torchvision").items()}
    gen = torch.Generator().manual_seed(1)
    resnet2d_features(sd, torch.randn(8, 3, 32, 32, generator=gen, dtype=torch.float64), block, layers,
                      calibrate=True)  # running statistics of the scale the features have
    if fmt == "timm":  # timm's hub files: safetensors (float32)
        path = tmp_path / "model.safetensors"
        write_safetensors(path, {k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        sd = {k: v.double() if v.is_floating_point() else v for k, v in read_safetensors(path).items()}
    else:
        path = tmp_path / f"{name}.pth"
        torch.save({k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, path)
        sd = {k: v.float().double() if v.is_floating_point() else v for k, v in sd.items()}
    # every P3D kind (blocks cycle A, B, C), temporal strides on stages 2-4
    model = create_model("p3d", 6, block=block, layers=layers, p3d_kinds="ABC", temporal_strides=(1, 2, 2, 2))
    report = load_init(model, {"kind": "resnet2d", "path": str(path), "min_matched": 1.0}, classes=list(EMOTIONS))
    assert report["missing"] == 0 and report["unexpected"] == 0 and report["shape_mismatched"] == 0, report
    assert report["matched_share"] == 1.0 and report["head"].startswith("initialised afresh")
    model = model.double().eval()
    image = torch.randn(2, 3, 32, 32, generator=gen, dtype=torch.float64)
    expected = resnet2d_features(sd, image, block, layers)
    clip = image.unsqueeze(2).expand(-1, -1, frames, -1, -1).contiguous()  # identical frames
    with torch.no_grad():
        got = model.forward_features(clip)
    assert got.shape[2] >= 1 and got.shape[1] == expected.shape[1]
    for t in range(got.shape[2]):
        torch.testing.assert_close(got[:, :, t], expected, rtol=1e-5, atol=1e-5)  # float32 weights


def test_inflation_holds_in_float32_and_training_mode_keeps_the_2d_function(tmp_path):
    """Batch statistics: the inflated net in training mode computes the 2D net in training mode, frame by frame."""
    block, layers = RESNETS["resnet18"]
    sd = resnet_state_dict("resnet18")
    path = tmp_path / "r18.pth"
    torch.save(sd, path)
    model = create_model("p3d", 6, block=block, layers=layers)
    load_init(model, {"kind": "resnet2d", "path": str(path)})
    image = torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    clip = image.unsqueeze(2).expand(-1, -1, 2, -1, -1).contiguous()
    model.train()
    with torch.no_grad():
        got = model.forward_features(clip)
    ref = {k: v.clone() for k, v in sd.items()}
    # one 3D batch of 2 identical frames has the statistics of the 2D batch; P3D-A normalises twice, so batch norm's
    # eps counts twice: equal to a small tolerance, not exactly
    expected = resnet2d_features(ref, image, block, layers, calibrate=True)
    torch.testing.assert_close(got[:, :, 0], expected, rtol=1e-2, atol=1e-2)
    assert (got[:, :, 0] - expected).abs().mean() < 1e-3


def test_a_partial_load_is_refused_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "resnet50.pth"
    torch.save(resnet_state_dict("resnet50"), path)
    demo = create_model("p3d", 6, width=8, layers=(1, 1, 1, 1))  # the demo size: no tensor has the file's shape
    before = {k: v.clone() for k, v in demo.state_dict().items()}
    with pytest.raises(InitError, match=r"resnet50\.pth \(resnet2d\).*below init\.min_matched 90%.*of another "
                                        r"shape.*init\.key_map.*lower init\.min_matched"):
        load_init(demo, {"kind": "resnet2d", "path": str(path)})
    assert all(torch.equal(before[k], v) for k, v in demo.state_dict().items())  # nothing loaded
    # A deeper 2D net into the same depth's keys: what is left over is named; res_att's attention is missing.
    model = create_model("res_att", 6, block="basic", layers=(2, 2, 2, 2))
    torch.save(resnet_state_dict("resnet34"), path)
    report = load_init(model, {"kind": "resnet2d", "path": str(path)}, classes=list(EMOTIONS))
    assert report["unexpected"] > 0 and any(k.startswith("layer1.2.") for k in report["unexpected_keys"])
    assert report["missing"] > 0 and any("mhsa" in k for k in report["missing_keys"])
    assert "missing" in summary(report)
    with pytest.raises(InitError, match="min_matched"):
        load_init(model, {"kind": "resnet2d", "path": str(path), "min_matched": 1.0})


def c3d_pickle() -> dict[str, torch.Tensor]:
    """c3d.pickle as published for PyTorch: Sports-1M C3D, 487 classes, conv1 ... fc8."""
    gen = torch.Generator().manual_seed(0)
    shapes = {"conv1": (64, 3), "conv2": (128, 64), "conv3a": (256, 128), "conv3b": (256, 256), "conv4a": (512, 256),
              "conv4b": (512, 512), "conv5a": (512, 512), "conv5b": (512, 512)}
    sd = {}
    for name, (o, i) in shapes.items():
        sd[f"{name}.weight"] = 0.01 * torch.randn(o, i, 3, 3, 3, generator=gen)
        sd[f"{name}.bias"] = 0.01 * torch.randn(o, generator=gen)
    for name, (o, i) in {"fc6": (4096, 8192), "fc7": (4096, 4096), "fc8": (487, 4096)}.items():
        sd[f"{name}.weight"] = 0.01 * torch.randn(o, i, generator=gen)
        sd[f"{name}.bias"] = 0.01 * torch.randn(o, generator=gen)
    return sd


def test_c3d_sports1m_pickle_loads_with_the_classifier_replaced(tmp_path):
    sd = c3d_pickle()
    path = tmp_path / "c3d.pickle"
    torch.save(sd, path, _use_new_zipfile_serialization=False)  # the file predates torch's zip format
    model = create_model("c3d", 6)
    head = model.fc8.weight.detach().clone()
    report = load_init(model, {"kind": "c3d", "path": str(path), "min_matched": 1.0}, classes=list(EMOTIONS))
    assert report["matched"] == 20 and report["missing"] == 0 and report["unexpected"] == 0
    assert report["head"].startswith("initialised afresh") and "487" in report["head"]
    assert torch.equal(model.features.conv3b[0].weight, sd["conv3b.weight"])
    assert torch.equal(model.fc7.weight, sd["fc7.weight"]) and torch.equal(model.fc8.weight, head)
    assert model.fc8.weight.shape == (6, 4096)


def _checkpoint(path, classes, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"width": 4, "layers": (1, 1, 1, 1), "heads": 2, **kw}
    model = create_model("res_att", len(classes), **kw)
    torch.save({"model": model.state_dict(), "classes": list(classes), "arch": "res_att", "model_kwargs": kw}, path)
    return model


def test_a_checkpoint_carries_the_head_rows_over_by_class_name(tmp_path):
    path = tmp_path / "best.pt"
    source = _checkpoint(path, EMOTIONS)
    classes = ["happiness", "neutral", "anger"]
    model = create_model("res_att", 3, width=4, layers=(1, 1, 1, 1), heads=2)
    fresh = model.fc.weight.detach().clone()
    report = load_init(model, {"kind": "checkpoint", "path": str(path), "min_matched": 1.0}, classes=classes)
    assert report["matched_share"] == 1.0 and report["missing"] == 0
    assert "happiness, anger" in report["head"] and "neutral" in report["head"]
    assert torch.equal(model.fc.weight[0], source.fc.weight[EMOTIONS.index("happiness")])
    assert torch.equal(model.fc.weight[2], source.fc.weight[EMOTIONS.index("anger")])
    assert torch.equal(model.fc.weight[1], fresh[1])
    assert torch.equal(model.stages[0][0].conv2.spatial.weight, source.stages[0][0].conv2.spatial.weight)
    # The same classes: the whole head.
    same = create_model("res_att", 6, width=4, layers=(1, 1, 1, 1), heads=2)
    report = load_init(same, {"kind": "checkpoint", "path": str(path)}, classes=list(EMOTIONS))
    assert report["head"].startswith("carried over") and torch.equal(same.fc.bias, source.fc.bias)


def test_a_plain_state_dict_with_a_key_map(tmp_path):
    source = _checkpoint(tmp_path / "x.pt", EMOTIONS)
    wrapped = {"state_dict": {f"backbone.{k}": v for k, v in source.state_dict().items()}}
    path = tmp_path / "other.pth"
    torch.save(wrapped, path)
    model = create_model("res_att", 6, width=4, layers=(1, 1, 1, 1), heads=2)
    with pytest.raises(InitError, match="0%"):
        load_init(model, {"kind": "state_dict", "path": str(path)})
    report = load_init(model, {"kind": "state_dict", "path": str(path), "key_map": {"backbone.": "", "backbone.fc.":
                                                                                     None}})
    assert report["matched_share"] == 1.0 and report["head"].startswith("initialised afresh (the file has no")
    assert torch.equal(model.stem.conv.weight, source.stem.conv.weight)
    with pytest.raises(InitError, match="not found"):
        load_init(model, {"kind": "state_dict", "path": str(tmp_path / "nope.pth")})


def test_fine_tuning_groups_and_frozen_stages(tmp_path):
    path = tmp_path / "best.pt"
    _checkpoint(path, EMOTIONS)
    model = create_model("res_att", 6, width=4, layers=(1, 1, 1, 1), heads=2, mlp_ratio=2.0)
    report = load_init(model, {"kind": "checkpoint", "path": str(path), "min_matched": 0.5}, classes=list(EMOTIONS))
    groups = param_groups(model, report["loaded"], 0.05, 1e-3, 0.1)
    assert [(g["lr"], g["weight_decay"], g["pretrained"]) for g in groups] == [
        (1e-3, 0.05, False), (1e-3, 0.0, False), (1e-4, 0.05, True), (1e-4, 0.0, True)]
    fresh = {id(q) for g in groups[:2] for q in g["params"]}
    assert id(model.fc.weight) in fresh and id(model.mhsa.mlp[0].weight) in fresh  # head, new MLP: full rate
    assert id(model.stem.conv.weight) not in fresh
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    scratch = param_groups(model, [], 0.05, 1e-3, 0.1)
    assert len(scratch) == 2 and all(g["lr"] == 1e-3 for g in scratch)
    assert len(trunk_stages(model)) == 5 and len(trunk_stages(create_model("c3d", 6, width=4, fc_dim=8))) == 7
    frozen = set_frozen(model, 2, True)
    assert len(frozen) == 2 and not model.stem.conv.weight.requires_grad
    assert not model.stages[0][0].conv2.spatial.weight.requires_grad and model.stages[1][0].bn1.weight.requires_grad
    assert set_frozen(model, 2, False) == [] and model.stem.conv.weight.requires_grad


# ---- training from an init ------------------------------------------------------------------------------------------

TINY = {"width": 4, "layers": [1, 1, 1, 1], "heads": 2}


def _params(init: dict | None, epochs: int = 1, **train_kw) -> dict:
    p = {"train": {"epochs": epochs, "batch_size": 8, "lr": 3e-3, "seed": 0, "clips_per_video": 1, **train_kw},
         "arch": "res_att", "model_kwargs": TINY, "folds": {"val_subjects": 1, "seed": 0}, "faces": {"crop_size": 16}}
    return {**p, "init": init} if init else p


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from test_cache import make_cache

    return make_cache(tmp_path_factory.mktemp("cache"), clip_len=4, subjects=4, n_frames=8)


@pytest.fixture(scope="module")
def pretrained(cache, tmp_path_factory):
    from video_emotion.train import train

    out = tmp_path_factory.mktemp("pre") / "m"
    train(cache, "res_att", 0, out, _params(None, epochs=1))
    return out / "best.pt"


def test_training_from_a_checkpoint_records_the_init_and_resumes_only_with_the_same_file(cache, pretrained, tmp_path,
                                                                                         caplog):
    from video_emotion.io import read_parquet_metadata
    from video_emotion.train import train

    init = {"kind": "checkpoint", "path": str(pretrained), "min_matched": 1.0}
    out = tmp_path / "ft"
    with caplog.at_level("INFO"):
        train(cache, "res_att_ft", 1, out, _params(init))
    assert f"init checkpoint {pretrained}" in caplog.text and "head carried over (the same classes)" in caplog.text
    for name in ("best.pt", "last.pt"):
        report = torch.load(out / name, weights_only=True)["init"]
        assert report["kind"] == "checkpoint" and report["matched_share"] == 1.0 and report["missing"] == 0
    meta = read_parquet_metadata(out / "history.parquet")["init"]
    assert meta["path"] == str(pretrained) and len(meta["sha256"]) == 64 and "loaded" not in meta
    # The same file (another copy, same content): the run continues; another content: it starts afresh.
    copy = tmp_path / "copy.pt"
    copy.write_bytes(pretrained.read_bytes())
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cache, "res_att_ft", 1, out, _params({**init, "path": str(copy)}, epochs=2))
    assert "set aside" in caplog.text and "train.epochs" in caplog.text  # epochs changed: fresh, as ever
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cache, "res_att_ft", 1, out, _params({**init, "path": str(pretrained)}, epochs=2))
    assert "continuing" in caplog.text and "set aside" not in caplog.text
    ckpt = torch.load(pretrained, weights_only=True)
    ckpt["model"]["stem.conv.weight"] += 1.0
    torch.save(ckpt, copy)
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cache, "res_att_ft", 1, out, _params({**init, "path": str(copy)}, epochs=2))
    assert "init.weights_sha256" in caplog.text and "training starts at epoch 1" in caplog.text
    # The same weights saved again (other bytes: torch.save names the archive after the file): the run continues.
    torch.save(torch.load(pretrained, weights_only=True), tmp_path / "again.pt")
    assert (tmp_path / "again.pt").read_bytes() != pretrained.read_bytes()
    train(cache, "res_att_ft", 1, out, _params({**init, "path": str(pretrained)}, epochs=2))
    caplog.clear()
    with caplog.at_level("INFO"):
        train(cache, "res_att_ft", 1, out, _params({**init, "path": str(tmp_path / "again.pt")}, epochs=2))
    assert "continuing" in caplog.text and "set aside" not in caplog.text


def test_a_refused_init_stops_training_before_any_epoch(cache, tmp_path):
    from video_emotion.train import train

    path = tmp_path / "resnet18.pth"
    torch.save(resnet_state_dict("resnet18"), path)
    with pytest.raises(InitError, match="min_matched"):
        train(cache, "res_att_in", 1, tmp_path / "m", _params({"kind": "resnet2d", "path": str(path)}))
    assert not (tmp_path / "m" / "last.pt").exists()


def _bn_buffers(sd: dict, prefix: str = "") -> dict:
    return {k: v for k, v in sd.items() if k.startswith(prefix) and ("running_" in k)}


def test_frozen_stages_and_batch_norms_do_not_change(cache, pretrained, tmp_path):
    from video_emotion.train import train

    init = {"kind": "checkpoint", "path": str(pretrained)}
    start = torch.load(pretrained, weights_only=True)["model"]
    train(cache, "res_att_ft", 1, tmp_path / "f", _params(init, epochs=1, freeze_stages=2))
    after = torch.load(tmp_path / "f" / "last.pt", weights_only=True)["model"]
    frozen = [k for k in start if k.startswith(("stem.", "stages.0."))]
    assert frozen and all(torch.equal(start[k], after[k]) for k in frozen)  # weights and statistics
    assert not torch.equal(start["stages.1.0.conv2.spatial.weight"], after["stages.1.0.conv2.spatial.weight"])
    assert not torch.equal(start["stages.2.0.bn1.running_mean"], after["stages.2.0.bn1.running_mean"])
    # Thawed after the first epoch: the second changes them.
    train(cache, "res_att_ft", 1, tmp_path / "t", _params(init, epochs=2, freeze_stages=2, freeze_epochs=1))
    thawed = torch.load(tmp_path / "t" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(start["stem.conv.weight"], thawed["stem.conv.weight"])
    # freeze_bn: every statistic as loaded, the weights learn.
    train(cache, "res_att_ft", 1, tmp_path / "b", _params(init, epochs=1, freeze_bn=True))
    bn = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, bn[k]) for k, v in _bn_buffers(start).items())
    assert not torch.equal(start["stem.conv.weight"], bn["stem.conv.weight"])
    # A model from scratch ignores the fine-tuning keys (they act on loaded weights).
    train(cache, "res_att", 1, tmp_path / "s", _params(None, epochs=1, freeze_stages=2))
    scratch = torch.load(tmp_path / "s" / "last.pt", weights_only=True)
    assert "freeze_stages" not in scratch["fingerprint"]["train"] and scratch["init"] is None


def test_pretrained_weights_learn_at_the_multiplied_rate(cache, pretrained, tmp_path, monkeypatch):
    import video_emotion.train as train_module

    seen = {}
    original = train_module.make_optimizer

    def spy(model, p, loaded=None):
        opt = original(model, p, loaded)
        seen["groups"] = [(g["lr"], g.get("pretrained")) for g in opt.param_groups]
        return opt

    monkeypatch.setattr(train_module, "make_optimizer", spy)
    init = {"kind": "checkpoint", "path": str(pretrained)}
    train_module.train(cache, "res_att_ft", 1, tmp_path / "m", _params(init, pretrained_lr_mult=0.1))
    assert seen["groups"] == [(3e-3, False), (3e-3, False), (3e-3 * 0.1, True), (3e-3 * 0.1, True)]


DDP_RUN = """
import json, sys, torch
import video_emotion.models as models
from video_emotion.train import train
seen = []
original = models.optimize_for_device
def keep(model, *a, **kw):
    seen.append(model)
    return original(model, *a, **kw)
models.optimize_for_device = keep
summary = train(sys.argv[1], "res_att_ft", 1, sys.argv[2], json.loads(sys.argv[3]))
torch.save(seen[0].state_dict(), f"{sys.argv[2]}.rank{summary['rank']}.pt")
"""


def test_frozen_then_thawed_stages_stay_in_step_across_ddp_ranks(cache, pretrained, tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    if not Path(torchrun).exists():
        pytest.skip("torchrun not installed")
    script = tmp_path / "run.py"
    script.write_text(DDP_RUN)
    p = _params({"kind": "checkpoint", "path": str(pretrained)}, epochs=2, device="cpu", freeze_stages=2,
                freeze_epochs=1)
    out = tmp_path / "ddp"
    result = subprocess.run([torchrun, "--standalone", "--nproc-per-node", "2", str(script), str(cache), str(out),
                             json.dumps(p)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"ddp.rank{r}.pt", weights_only=True) for r in (0, 1)]
    start = torch.load(pretrained, weights_only=True)["model"]
    # The ranks' weights agree, the thawed stages' included (batch-norm statistics are each rank's own after its last
    # step, as with any DDP run: rank 0's are the ones saved).
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0] if "running_" not in k)
    assert not torch.equal(start["stem.conv.weight"], ranks[0]["stem.conv.weight"])  # thawed after epoch 1


# ---- the input convention of each init ---------------------------------------------------------------------------


def test_every_init_kind_brings_its_input_convention(tmp_path):
    from test_video_models import torchvision_video_state_dict

    from video_emotion.clips import InputNorm
    from video_emotion.models.pretrained import C3D_KEYS, INPUT_NORMS

    kinetics, imagenet, sports1m = (INPUT_NORMS[k].as_dict() for k in ("torchvision_video", "p3d199", "c3d"))
    assert kinetics["mean"] == [0.43216, 0.394666, 0.37645] and kinetics["std"] == [0.22803, 0.22145, 0.216989]
    assert imagenet == INPUT_NORMS["resnet2d"].as_dict() and imagenet["mean"] == [0.485, 0.456, 0.406]
    assert sports1m == {"mean": [90.25, 97.66, 101.41], "std": [1.0, 1.0, 1.0], "scale": 255.0, "order": "BGR"}

    def load(model, kind, sd, **init):
        path = tmp_path / f"{kind}.pth"
        torch.save(sd, path)
        return load_init(model, {"kind": kind, "path": str(path), **init}, classes=list(EMOTIONS))

    r3d = create_model("r3d_18", 400)
    assert load(r3d, "torchvision_video", torchvision_video_state_dict("r3d_18"))["input_norm"] == kinetics
    tiny = create_model("p3d199", 6, width=4, layers=(1, 1, 1, 1))
    assert load(tiny, "p3d199", {"state_dict": tiny.state_dict()})["input_norm"] == imagenet
    p3d = create_model("p3d", 6, block="basic", layers=(2, 2, 2, 2))
    assert load(p3d, "resnet2d", resnet_state_dict("resnet18"))["input_norm"] == imagenet
    c3d = create_model("c3d", 6, width=4, fc_dim=32)
    to_file = {v: k for k, v in C3D_KEYS.items()}
    pickle = {f"{to_file[k.rsplit('.', 1)[0]]}.{k.rsplit('.', 1)[1]}": v for k, v in c3d.state_dict().items()}
    report = load(c3d, "c3d", pickle)
    assert report["input_norm"] == sports1m and "BGR [0, 255], mean (90.25, 97.66, 101.41)" in summary(report)
    # A plain state dict: the default, unless the init says; a checkpoint of this pipeline: its own.
    small = create_model("res_att", 6, **TINY)
    assert load(small, "state_dict", small.state_dict())["input_norm"] == InputNorm().as_dict()
    assert load(small, "state_dict", small.state_dict(), input_norm=kinetics)["input_norm"] == kinetics
    ckpt = {"model": small.state_dict(), "classes": list(EMOTIONS), "input_norm": sports1m}
    assert load(small, "checkpoint", ckpt)["input_norm"] == sports1m
    assert load(small, "checkpoint", {**ckpt, "input_norm": None})["input_norm"] == InputNorm().as_dict()


def test_normalize_clip_follows_the_convention():
    from video_emotion.clips import MEAN, STD, InputNorm, normalize_clip
    from video_emotion.models.pretrained import INPUT_NORMS

    frames = torch.randint(0, 256, (2, 3, 4, 4, 3), dtype=torch.uint8)  # RGB
    raw = frames.permute(0, 4, 1, 2, 3).double()
    c3d = INPUT_NORMS["c3d"]  # 0-255 BGR minus the Sports-1M mean
    expected = raw.flip(1) - torch.tensor(c3d.mean, dtype=torch.float64).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(normalize_clip(frames, norm=c3d).double(), expected, rtol=0, atol=1e-4)
    kin = INPUT_NORMS["torchvision_video"]
    mean, std = (torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1, 1) for v in (kin.mean, kin.std))
    torch.testing.assert_close(normalize_clip(frames, norm=kin.as_dict()).double(), (raw / 255 - mean) / std,
                               rtol=0, atol=1e-5)
    # The default is the old normalisation, bit for bit, jitter included.
    gain, bias = torch.tensor([1.1, 0.9], dtype=torch.float64), torch.tensor([0.3, -0.2], dtype=torch.float64)
    assert torch.equal(normalize_clip(frames, gain, bias), normalize_clip(frames, gain, bias, InputNorm()))
    assert InputNorm() == InputNorm(MEAN, STD, 1, "RGB")
    # A jitter is the same brightness change in every convention: bias (in default-std units) * 0.225 of [0, 1].
    brighter = normalize_clip(frames, 1.0, torch.tensor([0.2, 0.2], dtype=torch.float64), c3d)
    torch.testing.assert_close((brighter - normalize_clip(frames, norm=c3d)).double(),
                               torch.full_like(expected, 0.2 * STD[0] * 255), rtol=0, atol=1e-3)
    with pytest.raises(ValueError, match="scale 1 or 255"):
        InputNorm(scale=2)


def test_the_init_convention_is_applied_in_training_and_evaluation_and_kept(cache, tmp_path, monkeypatch, caplog):
    import video_emotion.inference as inference
    from video_emotion.clips import InputNorm
    from video_emotion.evaluate import evaluate
    from video_emotion.io import read_parquet_metadata
    from video_emotion.models.pretrained import INPUT_NORMS
    from video_emotion.train import train

    seen = []
    original = inference.normalize_clip
    monkeypatch.setattr(inference, "normalize_clip", lambda *a: seen.append(InputNorm.of(a[3])) or original(*a))
    kw = {"width": 4, "layers": [1, 1, 1, 1]}
    torch.manual_seed(1)
    path = tmp_path / "r3d_18-b3b3357e.pth"  # torchvision's layout, at this test's size
    torch.save(create_model("r3d_18", 400, **kw).state_dict(), path)
    params = {**_params({"kind": "torchvision_video", "path": str(path)}), "arch": "r3d_18", "model_kwargs": kw}
    out = tmp_path / "r3d"
    train(cache, "r3d_18_k400", 1, out, params)
    kinetics = INPUT_NORMS["torchvision_video"]
    assert seen and set(seen) == {kinetics}  # every training and validation batch
    best, last = (torch.load(out / n, weights_only=True) for n in ("best.pt", "last.pt"))
    assert best["input_norm"] == last["input_norm"] == kinetics.as_dict() == last["fingerprint"]["input_norm"]
    assert read_parquet_metadata(out / "history.parquet")["input_norm"] == kinetics.describe()
    seen.clear()
    evaluate(cache, out / "best.pt", 1, tmp_path / "pred" / "predictions.parquet", {"clips_per_video": 1})
    assert seen and set(seen) == {kinetics}
    # The same weights read as a plain state dict (the default convention): the run trains afresh.
    with caplog.at_level("INFO"):
        train(cache, "r3d_18_k400", 1, out, {**params, "init": {"kind": "state_dict", "path": str(path)}})
    assert "set aside" in caplog.text and "input_norm" in caplog.text
    assert torch.load(out / "best.pt", weights_only=True)["input_norm"] == InputNorm().as_dict()
    # From scratch: the default, and the fingerprint of a run from scratch is what it was.
    train(cache, "r3d_18", 1, tmp_path / "scratch", {**params, "init": None})
    scratch = torch.load(tmp_path / "scratch" / "last.pt", weights_only=True)
    assert scratch["input_norm"] == InputNorm().as_dict() and "input_norm" not in scratch["fingerprint"]
