"""Tests of the model zoo: every registered model at small sizes, C3D's published size, attention maps."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from video_emotion.models import create_model, list_models, optimize_for_device
from video_emotion.models.attention import ResidualMHSA, SpatialAttention3d, sincos_position_3d
from video_emotion.models.blocks import P3DConv
from video_emotion.models.device import uses_channels_last
from video_emotion.models.explain import attention_map

NUM_CLASSES = 6
SMALL = {"width": 4, "layers": (1, 1, 1, 1), "heads": 2}
SMALL_C3D = {"width": 4, "fc_dim": 32}
SMALL_VIDEO = {"width": 4, "layers": (1, 1, 1, 1)}  # r3d_18, mc3_18, r2plus1d_18 (tests/test_video_models.py: real size)
CLIP_SIZES = [(8, 64, 64), (4, 32, 32), (16, 40, 48), (16, 112, 112)]

pytestmark = pytest.mark.usefixtures("one_thread")


def small_kwargs(name: str) -> dict:
    return SMALL_C3D if name == "c3d" else SMALL_VIDEO if name in ("r3d_18", "mc3_18", "r2plus1d_18") else SMALL


def small_model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, NUM_CLASSES, **{**small_kwargs(name), **kw})


def test_registry_names_and_unknown_name():
    assert set(list_models()) == {"c3d", "p3d", "p3d_sa", "p3d_mhsa", "res_att", "res_att2", "p3d199", "r3d_18",
                                  "mc3_18", "r2plus1d_18"}
    with pytest.raises(ValueError, match="unknown model"):
        create_model("resnet9000", NUM_CLASSES)
    with pytest.raises(ValueError, match="sa_stages"):
        create_model("res_att", NUM_CLASSES, layers=(1, 1), temporal_strides=(1, 2))  # default sa_stages (2, 3)
    # keyword values as a YAML config gives them (lists) are accepted
    model = create_model("res_att", NUM_CLASSES, width=4, layers=[1, 1, 1, 1], sa_kernel=[1, 3, 3], heads=2)
    assert model(torch.randn(2, 3, 4, 32, 32)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("size", CLIP_SIZES, ids=lambda s: "x".join(map(str, s)))
def test_forward_shape_and_finite(name, size):
    model = small_model(name)
    x = torch.randn(2, 3, *size)
    out = model(x)
    assert out.shape == (2, NUM_CLASSES)
    assert torch.isfinite(out).all()
    model.eval()
    feats = model.forward_features(x)
    assert feats.dim() == 5
    assert torch.allclose(model.forward_head(feats), model(x))


@pytest.mark.parametrize("name", list_models())
def test_every_parameter_gets_a_gradient(name):
    model = small_model(name)
    x = torch.randn(2, 3, 8, 32, 32)
    torch.nn.functional.cross_entropy(model(x), torch.tensor([0, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing
    zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
    assert not zero
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_seeded_build_and_eval_are_deterministic(name):
    a, b = small_model(name), small_model(name)
    x = torch.randn(2, 3, 8, 32, 32)
    a.eval()
    b.eval()
    with torch.no_grad():
        assert torch.equal(a(x), a(x))
        assert torch.equal(a(x), b(x))


@pytest.mark.parametrize("name", list_models())
def test_state_dict_round_trips_weights_only(name):
    model = small_model(name).eval()
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "model_name": name}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    torch.manual_seed(123)  # a differently initialised twin
    twin = create_model(name, NUM_CLASSES, **small_kwargs(name)).eval()
    x = torch.randn(1, 3, 8, 32, 32)
    assert not torch.equal(twin(x), model(x))
    twin.load_state_dict(ckpt["model"])
    assert torch.equal(twin(x), model(x))


def c3d_param_count(num_classes: int) -> int:
    """Tran et al. 2015, by layer: a 3x3x3 conv has 27*c_in*c_out weights + c_out biases; fc6 sees 512x1x4x4."""
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    fcs = [(512 * 1 * 4 * 4, 4096), (4096, 4096), (4096, num_classes)]
    return sum(27 * i * o + o for i, o in convs) + sum(i * o + o for i, o in fcs)


def test_c3d_parameter_count_is_the_published_one():
    # 27,655,936 conv + 50,339,840 fc6/fc7 + fc8; Sports-1M's 487 classes give 79,991,015.
    assert c3d_param_count(487) == 79_991_015
    for n in (487, NUM_CLASSES):
        model = create_model("c3d", n)
        assert sum(p.numel() for p in model.parameters()) == c3d_param_count(n)


def test_c3d_pool5_is_1x4x4_on_the_published_clip_without_adaptive_pooling():
    model = small_model("c3d").eval()
    feats = model.forward_features(torch.randn(1, 3, 16, 112, 112))
    assert feats.shape[2:] == (2, 7, 7)
    assert model.pool5(feats).shape[2:] == (1, 4, 4)  # Caffe's ceil-mode pooling, no adaptive step needed


def test_p3d_blocks_cycle_a_b_c_across_the_network():
    model = small_model("p3d", layers=(2, 2, 1, 1))
    kinds = "".join(m.kind for m in model.modules() if isinstance(m, P3DConv))
    # bottleneck blocks: one P3D conv each, so the blocks read A B C A B C.
    assert kinds == "ABCABC"
    basic = small_model("p3d", layers=(2, 1, 1, 1), block="basic")
    kinds = "".join(m.kind for m in basic.modules() if isinstance(m, P3DConv))
    assert kinds == "AABBCCAABB"  # two convs per basic block, one kind per block


@pytest.mark.parametrize("kind", ["A", "B", "C"])
@pytest.mark.parametrize("t", [1, 4, 5])
def test_p3d_conv_kinds_agree_on_output_shape(kind, t):
    conv = P3DConv(4, 6, kind, stride=(2, 2))
    ref = torch.nn.Conv3d(4, 6, 3, stride=2, padding=1)  # the 3x3x3 conv it stands for
    x = torch.randn(1, 4, t, 9, 10)
    assert conv(x).shape == ref(x).shape


def test_variants_differ_only_where_documented():
    sa = [m for m in small_model("res_att").modules() if isinstance(m, SpatialAttention3d)]
    assert len(sa) == 2
    assert not any(isinstance(m, SpatialAttention3d) for m in small_model("p3d_mhsa").modules())
    assert not any(isinstance(m, ResidualMHSA) for m in small_model("p3d_sa").modules())
    assert small_model("res_att").mhsa.residual and not small_model("res_att2").mhsa.residual
    assert small_model("res_att").state_dict().keys() == small_model("res_att2").state_dict().keys()


def test_residual_mhsa_is_identity_when_its_branch_is_zero():
    mhsa = ResidualMHSA(8, 2, pos="none").eval()
    torch.nn.init.zeros_(mhsa.proj.weight)
    torch.nn.init.zeros_(mhsa.proj.bias)
    x = torch.randn(2, 8, 2, 3, 3)
    assert torch.allclose(mhsa(x), x)
    mhsa.residual = False
    assert torch.allclose(mhsa(x), torch.zeros_like(x))


def test_sincos_positions_are_distinct_per_token():
    pos = sincos_position_3d(2, 3, 4, 16)
    assert pos.shape == (24, 16)
    assert torch.unique(pos, dim=0).shape[0] == 24


@pytest.mark.parametrize("name", ["res_att", "p3d", "c3d", "p3d199", "r2plus1d_18"])
def test_attention_map_is_a_clip_sized_map_in_unit_range(name):
    model = small_model(name).train()
    clip = torch.randn(3, 8, 64, 64)
    m = attention_map(model, clip)
    assert m.shape == (8, 64, 64) and m.dtype == np.float32
    assert m.min() >= 0 and m.max() <= 1 and m.max() > m.min()
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # grad-CAM leaves no gradients behind


def test_optimize_for_device_keeps_the_numbers():
    model = small_model("res_att").eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        ref = model(x)
        fast = optimize_for_device(model, "cpu", channels_last=True)
        conv = fast.stem.conv.weight
        assert conv.is_contiguous(memory_format=torch.channels_last_3d)
        assert torch.allclose(fast(x), ref, atol=1e-5)
    # By default channels_last_3d on CUDA only: on the CPU the plain layout runs faster.
    assert uses_channels_last("cuda:0") and not uses_channels_last("cpu")
    plain = optimize_for_device(small_model("res_att"), "cpu")
    assert plain.stem.conv.weight.is_contiguous()


def test_tiny_demo_model_learns():
    torch.manual_seed(0)
    model = create_model("res_att", NUM_CLASSES, width=8, layers=(1, 1, 1, 1))
    x = torch.randn(12, 3, 8, 32, 32)
    y = torch.arange(12) % NUM_CLASSES
    x[:, 0] += y.view(-1, 1, 1, 1).float()  # a class signal in the red channel
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
