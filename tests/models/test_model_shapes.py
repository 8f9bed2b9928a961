"""Shapes, value ranges, gradients and attention of every model (tiny configs on CPU)."""

from __future__ import annotations

import pytest
import torch

from facesr.models import SROutput, build_model

# reduction 4 keeps 4 hidden attention units at 16 channels (r=16 would leave one)
SMALL = {
    "bicubic": {},
    "srresnet": {"num_feat": 16, "num_block": 2},
    "method1": {"num_feat": 16, "num_block": 2, "reduction": 4, "prior_feat": 16, "prior_res_blocks": 1, "num_hourglass": 1,
                "hourglass_depth": 2},
}


def _lift_attention_units(model):
    """The channel means an SE gate sees barely depend on the input at init, so all hidden ReLU units of
    a block can start dead (an SE property, not a wiring fault); a positive bias keeps them alive."""
    for block in getattr(model, "attention_blocks", []):
        torch.nn.init.constant_(block.attention.fc[0].bias, 1.0)


@pytest.mark.parametrize("name", ["bicubic", "srresnet", "method1"])
@pytest.mark.parametrize("batch", [1, 3])
def test_generator_maps_16_to_128(name, batch):
    model = build_model(name, **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.rand(batch, 3, 16, 16))
    assert isinstance(out, SROutput)
    assert out.sr.shape == (batch, 3, 128, 128)
    assert torch.isfinite(out.sr).all()
    assert model.predicts_parsing == (name == "method1") == (out.parsing is not None)
    if name == "method1":
        assert out.coarse.shape == (batch, 3, 128, 128)
        assert out.parsing.shape == (batch, 11, 128, 128)
        assert out.parsing.min() >= 0 and out.parsing.max() <= 1
    else:
        assert out.coarse is None


def test_outputs_are_named_not_positional():
    """An SROutput has no order to get wrong: unpacking it as the old (coarse, parsing, sr) fails."""
    out = build_model("method1", **SMALL["method1"]).eval()(torch.rand(1, 3, 16, 16))
    with pytest.raises(TypeError):
        coarse, parsing, sr = out
    with pytest.raises(TypeError):
        out[2]


def test_bicubic_matches_torch_interpolate_and_is_clamped():
    lr = torch.rand(2, 3, 16, 16)
    expected = torch.nn.functional.interpolate(lr, scale_factor=8, mode="bicubic", align_corners=False)
    assert expected.min() < 0 or expected.max() > 1, "random LR should overshoot, else the clamp is untested"
    sr = build_model("bicubic")(lr).sr
    torch.testing.assert_close(sr, expected.clamp(0, 1))
    assert len(list(build_model("bicubic").parameters())) == 0


def test_default_method1_shapes_and_softmax_attention_sums_to_one_per_sample():
    model = build_model("method1").eval()
    assert model.spec["model_args"]["attention"] == "softmax"
    with torch.no_grad():
        out = model(torch.rand(2, 3, 16, 16))
    assert out.parsing.shape == (2, 11, 128, 128)
    assert out.coarse.shape == out.sr.shape == (2, 3, 128, 128)
    blocks = model.attention_blocks
    assert len(blocks) == 16
    for i, block in enumerate(blocks):
        w = block.last_attention
        assert w.shape == (2, 64), f"block {i}"
        assert (w > 0).all(), f"block {i}"
        torch.testing.assert_close(w.sum(dim=1), torch.ones(2), msg=f"block {i}")


def test_attention_depends_on_input():
    torch.manual_seed(0)
    model = build_model("method1", **SMALL["method1"]).eval()
    _lift_attention_units(model)
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
        w1 = model.attention_blocks[0].last_attention.clone()
        model(torch.rand(1, 3, 16, 16) * 0.1)
        w2 = model.attention_blocks[0].last_attention
    assert not torch.allclose(w1, w2)


def test_sigmoid_and_none_attention():
    x = torch.rand(2, 3, 16, 16)
    sig = build_model("method1", **SMALL["method1"], attention="sigmoid").eval()
    none = build_model("method1", **SMALL["method1"], attention="none").eval()
    with torch.no_grad():
        assert sig(x).sr.shape == (2, 3, 128, 128)
        assert none(x).sr.shape == (2, 3, 128, 128)
    w = sig.attention_blocks[0].last_attention
    assert (w > 0).all() and (w < 1).all()
    assert not torch.allclose(w.sum(1), torch.ones(2))
    assert torch.equal(none.attention_blocks[0].last_attention, torch.ones(2, 16))
    # "none" has no FC layers at all
    assert sum(p.numel() for p in none.attention_blocks[0].attention.parameters()) == 0


def test_method1_without_prior():
    model = build_model("method1", **SMALL["method1"], prior=False)
    assert model.prior_branch is None and not model.predicts_parsing
    out = model(torch.rand(2, 3, 16, 16))
    assert out.parsing is None
    assert out.coarse.shape == out.sr.shape == (2, 3, 128, 128)
    assert model.fusing.conv_in[0].in_channels == 3


@pytest.mark.parametrize("name", ["srresnet", "method1"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build_model(name, **SMALL[name]).train()
    _lift_attention_units(model)
    out = model(torch.rand(2, 3, 16, 16))
    terms = [o for o in (out.sr, out.coarse, out.parsing) if o is not None]
    loss = sum((t - 0.5).pow(2).mean() for t in terms)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches: {missing}"


def test_discriminator_shapes_and_gradients():
    torch.manual_seed(0)
    disc = build_model("discriminator", num_feat=8).train()
    for batch in (2, 3):
        assert disc(torch.rand(batch, 3, 128, 128)).shape == (batch, 1)
    disc.zero_grad()
    disc(torch.rand(2, 3, 128, 128)).sum().backward()
    missing = [n for n, p in disc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches: {missing}"


def test_discriminator_default_layout_matches_table_3_4():
    disc = build_model("discriminator")
    shapes = []
    hooks = [m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape)))
             for m in disc.features if isinstance(m, torch.nn.LeakyReLU)]
    disc.eval()
    with torch.no_grad():
        assert disc(torch.rand(1, 3, 128, 128)).shape == (1, 1)
    for h in hooks:
        h.remove()
    assert shapes == [(1, 64, 128, 128), (1, 64, 64, 64), (1, 128, 64, 64), (1, 128, 32, 32),
                      (1, 256, 32, 32), (1, 256, 16, 16), (1, 512, 16, 16), (1, 512, 8, 8)]
    assert disc.classifier[1].in_features == 8 * 8 * 512 and disc.classifier[1].out_features == 1024


def test_discriminator_rejects_wrong_size():
    disc = build_model("discriminator", num_feat=8).eval()
    with pytest.raises(ValueError, match="expected input"):
        disc(torch.rand(1, 3, 64, 64))


def test_srresnet_default_size_is_ledig():
    model = build_model("srresnet")
    # SRResNet-16 with 64 channels and three x2 stages: about 1.70 M parameters (STACK.md)
    assert 1.69e6 < sum(p.numel() for p in model.parameters()) < 1.71e6
    assert len(model.trunk.body) == 16
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in model.modules()) == 3


@pytest.mark.parametrize("name,args", [
    ("srresnet", {"num_feat": 8, "num_block": 1}),
    ("method1", {"num_feat": 8, "num_block": 1, "reduction": 4, "prior_feat": 8, "prior_res_blocks": 0,
                 "num_hourglass": 1, "hourglass_depth": 2}),
])
def test_image_residual_starts_from_bicubic(name, args):
    """With the last convs zeroed, an image-residual model outputs exactly the bicubic upsampling."""
    from facesr.models.bicubic import bicubic_upsample

    torch.manual_seed(0)
    model = build_model(name, image_residual=True, **args).eval()
    trunk = model.trunk if name == "srresnet" else model.sr_branch
    tails = [trunk.tail] + ([model.fusing.conv_out] if name == "method1" else [])
    with torch.no_grad():
        for conv in tails:
            conv.weight.zero_()
            conv.bias.zero_()
        lr = torch.rand(2, 3, 16, 16)
        sr = model(lr).sr
    torch.testing.assert_close(sr, bicubic_upsample(lr, 8))
    plain = build_model(name, **args).eval()
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        plain_out = plain(lr)
    assert not torch.allclose(plain_out.sr, sr)
