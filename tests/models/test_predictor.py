"""facesr.models.predictor: the one forward pass gives bitwise what each caller computed before it."""

from __future__ import annotations

import pytest
import torch

from facesr.device import resolve_precision
from facesr.models import build_model
from facesr.models.predictor import Prediction, Predictor, upscale_of

TINY_METHOD1 = dict(num_feat=8, num_block=1, reduction=4, prior_feat=8, prior_res_blocks=1, num_hourglass=1,
                    hourglass_depth=2)


def _method1(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("method1", **TINY_METHOD1)
    # the heads start near zero: scale the weights so outputs leave [0, 1] and the clamps matter
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


def _lr(n: int = 5) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_predictor_is_bitwise_the_old_upscaler_and_evaluate_forward(precision, channels_last):
    lr = _lr()
    # fast=True: bf16 without the slow-bf16 warning, whatever this CPU has
    prec = resolve_precision("cpu", precision, channels_last, fast=True)
    ref_model = prec.prepare(_method1().eval())
    # the code path evaluate() and Upscaler.predict had before the Predictor
    with torch.no_grad(), prec.autocast():
        out = ref_model(prec.inputs(lr))
    want_sr = out.sr.float().clamp(0, 1)
    want_parsing = out.parsing.float()
    assert want_parsing.min() < 0 or want_parsing.max() > 1 or (out.sr.min() < 0 or out.sr.max() > 1)

    for inference_mode in (True, False):
        got = Predictor(_method1(), device="cpu", precision=prec, inference_mode=inference_mode)(lr)
        assert isinstance(got, Prediction)
        assert got.sr.dtype == got.parsing.dtype == torch.float32
        assert torch.equal(got.sr, want_sr)
        assert torch.equal(got.parsing, want_parsing)  # not clamped: evaluate scores them as given


def test_for_training_is_bitwise_the_old_validator_and_keeps_the_model_as_the_loop_holds_it():
    lr = _lr(6)
    model = _method1().train()
    autocast = torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # the code path Validator.__call__ had: eval, the loop's autocast context, fp32 clamped, parsing clamped
    model.eval()
    with torch.no_grad(), autocast:
        out = model(lr)
    want_sr, want_parsing = out.sr.float().clamp(0, 1), out.parsing.float().clamp(0, 1)
    model.train()

    pred = Predictor.for_training(model, device=torch.device("cpu"), autocast=autocast)
    batches = list(pred.predict_batches(lr, 4))
    assert [start for start, _ in batches] == [0, 4]
    assert torch.equal(torch.cat([p.sr for _, p in batches]), want_sr)
    assert torch.equal(torch.cat([p.parsing for _, p in batches]), want_parsing)
    assert model.training, "the model must be back in train mode"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
                   for p in model.parameters()), "the training model's layout is the loop's"


def test_sizes_come_from_the_models_upscale():
    four = Predictor(build_model("srresnet", num_feat=8, num_block=1, upscale=4), device="cpu", precision="fp32")
    assert (four.scale, four.lr_size, four.hr_size) == (4, 16, 64)
    assert four(_lr(2)).sr.shape == (2, 3, 64, 64)
    assert upscale_of({"model_args": {"upscale": 2}}) == 2 and upscale_of(None) == 8


def test_a_resolved_precision_with_a_channels_last_setting_is_refused():
    prec = resolve_precision("cpu", "fp32", False, fast=False)
    with pytest.raises(ValueError, match="channels_last"):
        Predictor(_method1(), device="cpu", precision=prec, channels_last=True)
    with pytest.raises(ValueError, match="batch_size"):
        list(Predictor(_method1(), device="cpu", precision=prec).predict_batches(_lr(2), 0))
