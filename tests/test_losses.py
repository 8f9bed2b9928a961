"""Content, perceptual and adversarial losses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.models.vgg import cfgs, make_layers

from facesr.losses import (
    ContentLoss,
    LossConfigError,
    PerceptualLoss,
    discriminator_loss,
    generator_adversarial_loss,
    vgg_layer_index,
)
from facesr.models import SROutput


def _method1_output(batch=2):
    g = torch.Generator().manual_seed(0)
    coarse, sr = torch.rand(batch, 3, 8, 8, generator=g), torch.rand(batch, 3, 8, 8, generator=g)
    parsing = torch.rand(batch, 11, 8, 8, generator=g)
    hr, target = torch.rand(batch, 3, 8, 8, generator=g), torch.rand(batch, 11, 8, 8, generator=g)
    return (coarse, parsing, sr), hr, target


def test_content_loss_is_the_weighted_mse_sum():
    (coarse, parsing, sr), hr, target = _method1_output()
    loss = ContentLoss(w_coarse=0.5, w_parsing=2.0, w_fine=3.0)
    total, terms = loss(SROutput(sr, coarse=coarse, parsing=parsing), hr, target)
    by_hand = {
        "coarse": ((coarse - hr) ** 2).sum() / coarse.numel(),
        "parsing": ((parsing - target) ** 2).sum() / parsing.numel(),
        "fine": ((sr - hr) ** 2).sum() / sr.numel(),
    }
    assert set(terms) == set(by_hand)
    for k in by_hand:
        torch.testing.assert_close(terms[k], by_hand[k])
    torch.testing.assert_close(total, 0.5 * by_hand["coarse"] + 2.0 * by_hand["parsing"] + 3.0 * by_hand["fine"])


def test_content_loss_of_sr_alone_is_fine_term_only():
    (_, _, sr), hr, target = _method1_output()
    total, terms = ContentLoss(w_fine=2.0)(SROutput(sr), hr, target)
    assert set(terms) == {"fine"}
    torch.testing.assert_close(total, 2.0 * ((sr - hr) ** 2).mean())


def test_content_loss_sums_the_terms_as_before():
    """Bitwise the value the loss had when outputs were tuples: the same ops in the same order."""
    (coarse, parsing, sr), hr, target = _method1_output()
    weights = dict(w_coarse=0.25, w_parsing=1.5, w_fine=0.75)
    c, p, f = F.mse_loss(coarse, hr), F.mse_loss(parsing, target), F.mse_loss(sr, hr)
    total, _ = ContentLoss(**weights)(SROutput(sr, coarse=coarse, parsing=parsing), hr, target)
    assert torch.equal(total, 0.25 * c + 1.5 * p + 0.75 * f)
    total, _ = ContentLoss(**weights)(SROutput(sr, coarse=coarse), hr, target)
    assert torch.equal(total, 0.25 * c + 0.75 * f)
    total, _ = ContentLoss(**weights)(SROutput(sr), hr, target)
    assert torch.equal(total, 0.75 * f)


def test_content_loss_without_prior_drops_parsing_term():
    (coarse, _, sr), hr, target = _method1_output()
    total, terms = ContentLoss()(SROutput(sr, coarse=coarse), hr, target)
    assert set(terms) == {"coarse", "fine"}
    torch.testing.assert_close(total, ((coarse - hr) ** 2).mean() + ((sr - hr) ** 2).mean())


def test_content_loss_errors():
    (coarse, parsing, sr), hr, target = _method1_output()
    out = SROutput(sr, coarse=coarse, parsing=parsing)
    with pytest.raises(LossConfigError, match="no target parsing"):
        ContentLoss()(out, hr, None)
    with pytest.raises(LossConfigError, match="does not match"):
        ContentLoss()(out, hr, target[:, :5])
    with pytest.raises(LossConfigError, match="expected a generator's SROutput, got tuple"):
        ContentLoss()((coarse, parsing, sr), hr, target)
    with pytest.raises(LossConfigError, match="w_fine must be a number >= 0"):
        ContentLoss(w_fine=-1.0)


def vgg_trunk(arch: str) -> torch.nn.Sequential:
    """torchvision's VGG `features` layout (random weights; no classifier to initialise)."""
    return make_layers(cfgs[{"vgg16": "D", "vgg19": "E"}[arch]])


def test_vgg_layer_indices_match_torchvision():
    # torchvision VGG19: conv5_4 is features[34], its ReLU [35], the 5th max-pool [36]
    f19 = vgg_trunk("vgg19")
    assert vgg_layer_index(f19, "relu5_4") == 35 and isinstance(f19[36], torch.nn.MaxPool2d)
    assert vgg_layer_index(f19, "conv5_4") == 34
    assert vgg_layer_index(f19, "relu2_2") == 8
    f16 = vgg_trunk("vgg16")
    assert vgg_layer_index(f16, "relu5_3") == 29 and isinstance(f16[30], torch.nn.MaxPool2d)
    with pytest.raises(LossConfigError, match="relu5_4.*not in this VGG"):
        vgg_layer_index(f16, "relu5_4")
    with pytest.raises(LossConfigError, match="look like"):
        vgg_layer_index(f16, "pool5")


@pytest.fixture(scope="module")
def random_vgg16_trunk():
    # the real VGG16 layout with random weights: enough to test the loss's mechanics
    torch.manual_seed(0)
    return vgg_trunk("vgg16")


def test_perceptual_loss_zero_for_same_image_positive_otherwise(random_vgg16_trunk):
    loss = PerceptualLoss("vgg16", layer="relu3_3", features=random_vgg16_trunk)
    x = torch.rand(2, 3, 32, 32)
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x.flip(-1), x).item() > 0


def test_perceptual_loss_gradient_reaches_input_only(random_vgg16_trunk):
    loss = PerceptualLoss("vgg16", layer="relu3_3", features=random_vgg16_trunk)
    loss.train()
    assert not loss.features.training
    sr = torch.rand(1, 3, 32, 32, requires_grad=True)
    hr = torch.rand(1, 3, 32, 32, requires_grad=True)
    loss(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())


def test_perceptual_loss_normalises_with_imagenet_stats(random_vgg16_trunk):
    loss = PerceptualLoss("vgg16", layer="conv1_1", features=random_vgg16_trunk)
    x, y = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    conv = random_vgg16_trunk[0]
    expected = F.mse_loss(conv((x - mean) / std), conv((y - mean) / std))
    torch.testing.assert_close(loss(x, y), expected)


def test_perceptual_loss_default_layers_and_bad_args(random_vgg16_trunk):
    assert PerceptualLoss(net="vgg16", features=random_vgg16_trunk).layer == "relu5_3"
    assert len(PerceptualLoss("vgg16", features=random_vgg16_trunk).features) == 30
    with pytest.raises(LossConfigError, match="net must be one of vgg19, vgg16"):
        PerceptualLoss("alex", features=random_vgg16_trunk)
    loss = PerceptualLoss("vgg16", layer="relu1_1", features=random_vgg16_trunk)
    with pytest.raises(LossConfigError, match="one shape"):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 16, 16))


@pytest.mark.mini
def test_perceptual_loss_with_real_vgg16_trunk(mini_dir):
    from PIL import Image

    from facesr.weights import MissingWeightsError

    try:
        loss = PerceptualLoss("vgg16")
    except MissingWeightsError as exc:
        pytest.fail(f"ImageNet VGG16 not fetched: run `facesr weights fetch` (`make test` does) ({exc})",
                    pytrace=False)
    face = next(iter(sorted((mini_dir / "CelebA-HQ-img").glob("*.jpg"))))
    img = Image.open(face).convert("RGB").resize((128, 128), Image.BICUBIC)
    hr = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].float() / 255
    lr = F.interpolate(hr, size=(16, 16), mode="bicubic", antialias=True, align_corners=False)
    bicubic = F.interpolate(lr, size=(128, 128), mode="bicubic", align_corners=False).clamp(0, 1)
    noisy = (hr + torch.randn(hr.shape, generator=torch.Generator().manual_seed(0)) / 255).clamp(0, 1)
    with torch.no_grad():
        assert loss(hr, hr).item() == 0.0
        # an 8x blur is far, in ImageNet-feature space, from the face; one grey level of noise is not
        assert loss(bicubic, hr).item() > 10 * loss(noisy, hr).item() > 0


def test_adversarial_losses_match_bce_formulas():
    real = torch.tensor([[2.0], [-1.0], [0.5]])
    fake = torch.tensor([[-3.0], [0.0], [1.5]])

    def sig(t):
        return 1 / (1 + math.exp(-t))

    expected_d = sum(-math.log(sig(r)) for r in real.flatten().tolist()) / 3 + sum(
        -math.log(1 - sig(f)) for f in fake.flatten().tolist()) / 3
    expected_g = sum(-math.log(sig(f)) for f in fake.flatten().tolist()) / 3
    assert discriminator_loss(real, fake).item() == pytest.approx(expected_d, rel=1e-6)
    assert generator_adversarial_loss(fake).item() == pytest.approx(expected_g, rel=1e-6)


def test_generator_loss_is_non_saturating():
    # where D confidently rejects the fake, -log D(G) still has a strong gradient (log(1 - D) would not)
    fake = torch.tensor([[-8.0]], requires_grad=True)
    generator_adversarial_loss(fake).backward()
    assert fake.grad.item() < -0.99
