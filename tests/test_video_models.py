"""The video-pretrained baselines at their real size: torchvision's r3d_18, mc3_18, r2plus1d_18 and the P3D authors'
P3D-199. Each published file layout is built here with random values from the published description (key names and
shapes), loaded, and the model's output compared with a functional forward written from the same description."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from video_emotion.labels import EMOTIONS
from video_emotion.models import create_model, list_models
from video_emotion.models.pretrained import InitError, load_init, trunk_stages

pytestmark = pytest.mark.usefixtures("one_thread")

VIDEO_RESNETS = ("r3d_18", "mc3_18", "r2plus1d_18")
# torchvision.models.video's documented parameter counts (400 Kinetics classes).
TORCHVISION_PARAMS = {"r3d_18": 33_371_472, "mc3_18": 11_695_440, "r2plus1d_18": 31_505_325}
P3D199_LAYERS = (3, 8, 36, 3)


def _bn(sd: dict, prefix: str, c: int, gen: torch.Generator) -> None:
    sd[prefix + "weight"] = 0.5 + torch.rand(c, generator=gen)
    sd[prefix + "bias"] = 0.1 * torch.randn(c, generator=gen)
    sd[prefix + "running_mean"] = 0.1 * torch.randn(c, generator=gen)
    sd[prefix + "running_var"] = 0.5 + torch.rand(c, generator=gen)
    sd[prefix + "num_batches_tracked"] = torch.tensor(1000)


def _w(sd: dict, key: str, shape: tuple, gen: torch.Generator) -> None:
    fan_in = 1
    for s in shape[1:]:
        fan_in *= s
    sd[key] = torch.randn(*shape, generator=gen) * (1.0 / fan_in) ** 0.5


def torchvision_video_state_dict(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision.models.video.resnet's ``name`` (Kinetics-400 file layout), random values.

    VideoResNet(BasicBlock, [2, 2, 2, 2]): stem (R3D/MC3: 3x7x7 conv, BN; R(2+1)D: 1x7x7 conv to 45, BN, ReLU,
    3x1x1 conv to 64, BN), four stages of planes 64 * 2**i, each block conv1 = (conv, BN, ReLU), conv2 = (conv, BN);
    a (2+1)D conv is (1x3x3 conv to mid-planes, BN, ReLU, 3x1x1 conv), mid-planes = 27 c_in c_out // (9 c_in +
    3 c_out) from the block's input and output planes; downsample (1x1x1 conv, BN) in stages 2-4; fc 512 -> 400."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    if name == "r2plus1d_18":
        _w(sd, "stem.0.weight", (45, 3, 1, 7, 7), gen)
        _bn(sd, "stem.1.", 45, gen)
        _w(sd, "stem.3.weight", (64, 45, 3, 1, 1), gen)
        _bn(sd, "stem.4.", 64, gen)
    else:
        _w(sd, "stem.0.weight", (64, 3, 3, 7, 7), gen)
        _bn(sd, "stem.1.", 64, gen)
    inplanes = 64
    for i in range(4):
        planes = 64 * 2**i
        for j in range(2):
            p = f"layer{i + 1}.{j}."
            cin = inplanes if j == 0 else planes
            mid = (cin * planes * 27) // (cin * 9 + 3 * planes)
            for k, a in ((1, cin), (2, planes)):
                if name == "r2plus1d_18":
                    _w(sd, p + f"conv{k}.0.0.weight", (mid, a, 1, 3, 3), gen)
                    _bn(sd, p + f"conv{k}.0.1.", mid, gen)
                    _w(sd, p + f"conv{k}.0.3.weight", (planes, mid, 3, 1, 1), gen)
                else:
                    kt = 1 if name == "mc3_18" and i > 0 else 3
                    _w(sd, p + f"conv{k}.0.weight", (planes, a, kt, 3, 3), gen)
                _bn(sd, p + f"conv{k}.1.", planes, gen)
            if j == 0 and i > 0:
                _w(sd, p + "downsample.0.weight", (planes, cin, 1, 1, 1), gen)
                _bn(sd, p + "downsample.1.", planes, gen)
        inplanes = planes
    _w(sd, "fc.weight", (400, 512), gen)
    sd["fc.bias"] = 0.01 * torch.randn(400, generator=gen)
    return sd


def p3d199_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """p3d_rgb_199.checkpoint.pth.tar's ``state_dict`` (pseudo-3d-pytorch's P3D199), random values: conv1_custom
    (1x7x7, 64), bn1; bottlenecks of planes 64 * 2**i, layers (3, 8, 36, 3): conv1 (1x1x1), bn1, conv2 (S 1x3x3),
    bn2, conv3 (T 3x1x1), bn3 in layers 1-3, conv_normal (3x3 2D), bn_normal in layer 4, conv4 (1x1 to 4x), bn4;
    downsample (1x1 conv, BN) in every stage's first block; layer 4 in 2D shapes; fc 2048 -> 400."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _w(sd, "conv1_custom.weight", (64, 3, 1, 7, 7), gen)
    _bn(sd, "bn1.", 64, gen)
    inplanes = 64
    for i, n in enumerate(P3D199_LAYERS):
        planes, one = 64 * 2**i, () if i == 3 else (1,)  # one: the 3D kernels' temporal extent 1
        for j in range(n):
            p = f"layer{i + 1}.{j}."
            cin = inplanes if j == 0 else planes * 4
            _w(sd, p + "conv1.weight", (planes, cin, *one, 1, 1), gen)
            _bn(sd, p + "bn1.", planes, gen)
            if i == 3:
                _w(sd, p + "conv_normal.weight", (planes, planes, 3, 3), gen)
                _bn(sd, p + "bn_normal.", planes, gen)
            else:
                _w(sd, p + "conv2.weight", (planes, planes, 1, 3, 3), gen)
                _bn(sd, p + "bn2.", planes, gen)
                _w(sd, p + "conv3.weight", (planes, planes, 3, 1, 1), gen)
                _bn(sd, p + "bn3.", planes, gen)
            _w(sd, p + "conv4.weight", (planes * 4, planes, *one, 1, 1), gen)
            _bn(sd, p + "bn4.", planes * 4, gen)
            if j == 0:
                _w(sd, p + "downsample.0.weight", (planes * 4, cin, *one, 1, 1), gen)
                _bn(sd, p + "downsample.1.", planes * 4, gen)
        inplanes = planes * 4
    _w(sd, "fc.weight", (400, 2048), gen)
    sd["fc.bias"] = 0.01 * torch.randn(400, generator=gen)
    return sd


# ---- functional forwards, from the published descriptions ------------------------------------------------------------


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 summation order: relative L2 error under 1e-5 (P3D-199's 199 layers of random weights
    reach 9e-7; any other computation is off by order 1)."""
    return a.shape == b.shape and bool((a - b).norm() <= 1e-5 * b.norm())


def _norm(x: torch.Tensor, sd: dict, p: str) -> torch.Tensor:
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                        False, 0.0, 1e-5)


def video_resnet_forward(sd: dict, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled features, logits) of torchvision's ``name`` on ``x`` in eval mode."""
    if name == "r2plus1d_18":
        x = F.relu(_norm(F.conv3d(x, sd["stem.0.weight"], None, (1, 2, 2), (0, 3, 3)), sd, "stem.1."))
        x = F.relu(_norm(F.conv3d(x, sd["stem.3.weight"], None, 1, (1, 0, 0)), sd, "stem.4."))
    else:
        x = F.relu(_norm(F.conv3d(x, sd["stem.0.weight"], None, (1, 2, 2), (1, 3, 3)), sd, "stem.1."))

    def conv(h: torch.Tensor, p: str, s: int) -> torch.Tensor:
        if name == "r2plus1d_18":  # spatial conv (spatial stride), BN, ReLU, temporal conv (temporal stride)
            h = F.relu(_norm(F.conv3d(h, sd[p + "0.weight"], None, (1, s, s), (0, 1, 1)), sd, p + "1."))
            return F.conv3d(h, sd[p + "3.weight"], None, (s, 1, 1), (1, 0, 0))
        w = sd[p + "weight"]
        kt = w.shape[2]  # MC3's 1x3x3 convs keep time
        return F.conv3d(h, w, None, (s if kt == 3 else 1, s, s), (kt // 2, 1, 1))

    for i in range(4):
        for j in range(2):
            p, s = f"layer{i + 1}.{j}.", 2 if i > 0 and j == 0 else 1
            out = F.relu(_norm(conv(x, p + "conv1.0.", s), sd, p + "conv1.1."))
            out = _norm(conv(out, p + "conv2.0.", 1), sd, p + "conv2.1.")
            if p + "downsample.0.weight" in sd:
                st = 1 if name == "mc3_18" else s
                x = _norm(F.conv3d(x, sd[p + "downsample.0.weight"], None, (st, s, s)), sd, p + "downsample.1.")
            x = F.relu(out + x)
    feats = x.mean((2, 3, 4))
    return feats, F.linear(feats, sd["fc.weight"], sd["fc.bias"])


def _spatial(sd: dict, p: str, h: torch.Tensor) -> torch.Tensor:
    """P3D-199's S: 1x3x3 conv2, bn2, ReLU."""
    return F.relu(_norm(F.conv3d(h, sd[p + "conv2.weight"], None, 1, (0, 1, 1)), sd, p + "bn2."))


def _temporal(sd: dict, p: str, h: torch.Tensor) -> torch.Tensor:
    """P3D-199's T: 3x1x1 conv3, bn3, ReLU."""
    return F.relu(_norm(F.conv3d(h, sd[p + "conv3.weight"], None, 1, (1, 0, 0)), sd, p + "bn3."))


def p3d199_forward(sd: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pooled features, logits) of pseudo-3d-pytorch's P3D199 on a 16-frame ``x`` in eval mode (the conversion's
    forward: its 5x5 average pool is the global pool of a 160x160 clip's 5x5 map, global here too)."""
    x = F.relu(_norm(F.conv3d(x, sd["conv1_custom.weight"], None, (1, 2, 2), (0, 3, 3)), sd, "bn1."))
    x = F.max_pool3d(x, (2, 3, 3), 2, (0, 1, 1))
    n = 0
    for i in range(3):
        for j in range(P3D199_LAYERS[i]):
            p, s = f"layer{i + 1}.{j}.", 2 if i > 0 and j == 0 else 1
            out = F.relu(_norm(F.conv3d(x, sd[p + "conv1.weight"], None, (1, s, s)), sd, p + "bn1."))
            kind = "ABC"[n % 3]
            if kind == "A":
                out = _temporal(sd, p, _spatial(sd, p, out))
            elif kind == "B":
                out = _spatial(sd, p, out) + _temporal(sd, p, out)
            else:
                out = _spatial(sd, p, out)
                out = out + _temporal(sd, p, out)
            out = _norm(F.conv3d(out, sd[p + "conv4.weight"]), sd, p + "bn4.")
            if j == 0:
                x = _norm(F.conv3d(x, sd[p + "downsample.0.weight"], None, (1, s, s)), sd, p + "downsample.1.")
            x = F.relu(out + x)
            n += 1
        x = F.max_pool3d(x, (2, 1, 1), (2, 1, 1))
    b, c, t, h, w = x.shape
    assert t == 1
    x = x.view(-1, c, h, w)  # the conversion's reshape: one frame left
    for j in range(P3D199_LAYERS[3]):
        p, s = f"layer4.{j}.", 2 if j == 0 else 1
        out = F.relu(_norm(F.conv2d(x, sd[p + "conv1.weight"], None, s), sd, p + "bn1."))
        out = F.relu(_norm(F.conv2d(out, sd[p + "conv_normal.weight"], None, 1, 1), sd, p + "bn_normal."))
        out = _norm(F.conv2d(out, sd[p + "conv4.weight"]), sd, p + "bn4.")
        if j == 0:
            x = _norm(F.conv2d(x, sd[p + "downsample.0.weight"], None, s), sd, p + "downsample.1.")
        x = F.relu(out + x)
    feats = F.avg_pool2d(x, x.shape[-2:]).view(b, -1)
    return feats, F.linear(feats, sd["fc.weight"], sd["fc.bias"])


# ---- tests -------------------------------------------------------------------------------------------------------------


def test_the_new_architectures_are_registered():
    assert {*VIDEO_RESNETS, "p3d199"} <= set(list_models())


@pytest.mark.parametrize("name", VIDEO_RESNETS)
def test_video_resnet_parameter_counts_are_torchvisions(name):
    model = create_model(name, 400)
    assert sum(p.numel() for p in model.parameters()) == TORCHVISION_PARAMS[name]
    sd = torchvision_video_state_dict(name)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}


@pytest.mark.parametrize("name", VIDEO_RESNETS)
def test_video_resnet_computes_the_published_network(name):
    sd = torchvision_video_state_dict(name)
    model = create_model(name, 400).eval()
    model.load_state_dict(sd)  # strict: the same keys and shapes
    x = torch.randn(2, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    feats, logits = video_resnet_forward(sd, name, x)
    with torch.no_grad():
        assert close(model.forward_head(model.forward_features(x), pre_logits=True), feats)
        assert close(model(x), logits)


def test_p3d199_computes_the_published_network():
    sd = p3d199_state_dict()
    model = create_model("p3d199", 400).eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: tuple(v.shape) for k, v in sd.items()}
    model.load_state_dict(sd)
    x = torch.randn(1, 3, 16, 32, 32, generator=torch.Generator().manual_seed(1))  # 16 frames: one left at layer4
    feats, logits = p3d199_forward(sd, x)
    with torch.no_grad():
        assert close(model.forward_head(model.forward_features(x), pre_logits=True), feats)
        assert close(model(x), logits)
    # The name's 199 layers: conv1_custom, four convs in each of 47 3D blocks, three in each of 3 2D blocks, fc.
    assert len([k for k in sd if sd[k].ndim > 1 and "downsample" not in k]) == 199


@pytest.mark.parametrize("name", [*VIDEO_RESNETS, "p3d199"])
def test_the_published_file_loads_every_tensor_but_the_head(name, tmp_path):
    if name == "p3d199":
        sd, kind, file = p3d199_state_dict(), "p3d199", "p3d_rgb_199.checkpoint.pth.tar"
        torch.save({"state_dict": sd, "epoch": 60, "arch": "P3D199"}, tmp_path / file)
    else:
        sd, kind, file = torchvision_video_state_dict(name), "torchvision_video", f"{name}.pth"
        torch.save(sd, tmp_path / file)
    model = create_model(name, len(EMOTIONS)).eval()
    report = load_init(model, {"kind": kind, "path": str(tmp_path / file), "min_matched": 1.0},
                       classes=list(EMOTIONS))
    weights = [k for k in sd if not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    assert report["matched"] == len(weights) and report["matched_share"] == 1.0
    assert report["missing"] == report["unexpected"] == report["shape_mismatched"] == report["derived"] == 0
    assert report["head"].startswith("initialised afresh") and "400" in report["head"]
    assert model.fc.weight.shape == (len(EMOTIONS), model.num_features)
    x = torch.randn(1, 3, 16, 32, 32)
    reference = p3d199_forward(sd, x)[0] if name == "p3d199" else video_resnet_forward(sd, name, x)[0]
    with torch.no_grad():
        assert close(model.forward_head(model.forward_features(x), pre_logits=True), reference)


@pytest.mark.parametrize("name", VIDEO_RESNETS)
def test_a_file_of_another_architecture_is_refused_in_one_line(name, tmp_path):
    for other in VIDEO_RESNETS:
        if other == name:
            continue
        path = tmp_path / f"{other}.pth"
        torch.save(torchvision_video_state_dict(other), path)
        model = create_model(name, len(EMOTIONS))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(InitError, match=r"below init\.min_matched 90%") as err:
            load_init(model, {"kind": "torchvision_video", "path": str(path)})
        assert "\n" not in str(err.value) and f"{other}.pth" in str(err.value)
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing loaded
    # A kind for another family: refused before the file is read.
    with pytest.raises(InitError, match="init kind p3d199 loads into p3d199"):
        load_init(create_model(name, 6), {"kind": "p3d199", "path": str(tmp_path / "none.pth")})
    with pytest.raises(InitError, match="init kind torchvision_video loads into r3d_18"):
        load_init(create_model("p3d", 6, width=4, layers=(1, 1, 1, 1)),
                  {"kind": "torchvision_video", "path": str(tmp_path / "none.pth")})


def test_res_att_on_the_p3d199_trunk_loads_the_release_and_leaves_the_attention_new(tmp_path):
    path = tmp_path / "p3d_rgb_199.checkpoint.pth.tar"
    torch.save({"state_dict": p3d199_state_dict()}, path)
    model = create_model("res_att", len(EMOTIONS), trunk="p3d199")
    report = load_init(model, {"kind": "p3d199", "path": str(path)}, classes=list(EMOTIONS))
    assert report["unexpected"] == report["shape_mismatched"] == 0
    assert report["missing_keys"] and all(k.startswith(("layer2.8.", "layer3.36.", "mhsa.")) for k in
                                          report["missing_keys"])  # the attention after layers 2 and 3, and MHSA
    assert report["matched_share"] > 0.99
    assert [type(m).__name__ for m in trunk_stages(model)] == ["ModuleList", "Sequential", "Sequential", "Sequential",
                                                               "FrameByFrame"]
    with pytest.raises(ValueError, match="takes no temporal_strides"):
        create_model("res_att", 6, trunk="p3d199", temporal_strides=(1, 1, 2, 2))


@pytest.mark.parametrize("name", [*VIDEO_RESNETS, "p3d199", "res_att_p3d199"])
def test_real_size_forward_and_one_training_step_on_a_tiny_clip(name):
    torch.manual_seed(0)
    model = create_model("res_att", 6, trunk="p3d199") if name == "res_att_p3d199" else create_model(name, 6)
    x = torch.randn(2, 3, 8, 32, 32)  # 8 frames, 32x32: what every one of them takes at its real size
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = F.cross_entropy(model(x), torch.tensor([0, 1]))
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    opt.step()
    assert all(not torch.equal(before[n], p) for n, p in model.named_parameters())
    model.eval()
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.dim() == 5 and torch.allclose(model.forward_head(feats), model(x))


def test_the_config_names_each_kind_with_its_architectures():
    from video_emotion.config import ConfigError, model_specs

    def spec(variant: dict) -> dict:
        return model_specs({"models": ["m"], "model_variants": {"m": variant}})["m"]

    assert spec({"arch": "r2plus1d_18", "init": {"kind": "torchvision_video", "path": "r.pth"}})["arch"] == "r2plus1d_18"
    assert spec({"arch": "res_att", "trunk": "p3d199", "init": {"kind": "p3d199", "path": "p.tar"}})["kwargs"] == \
        {"trunk": "p3d199"}
    for variant, message in (({"arch": "res_att", "init": {"kind": "p3d199", "path": "p.tar"}}, "trunk: p3d199"),
                             ({"arch": "p3d", "init": {"kind": "torchvision_video", "path": "r.pth"}}, "r3d_18"),
                             ({"arch": "r3d_18", "heads": 2}, "takes no keyword 'heads'")):
        with pytest.raises(ConfigError, match=message):
            spec(variant)
