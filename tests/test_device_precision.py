"""facesr.device.resolve_precision: the one rule for `precision` / `channels_last`, and the Upscaler's use of it."""

from __future__ import annotations

import warnings

import pytest
import torch

from facesr.device import PrecisionError, PrecisionWarning, cpu_flags, resolve_precision
from facesr.models import build_model

BF16 = torch.bfloat16


@pytest.mark.parametrize("device, precision, channels_last, fast, dtype, layout", [
    # auto: bf16 + channels_last where bf16 is fast, fp32 contiguous elsewhere
    ("cpu", "auto", "auto", False, None, False),     # this project's AVX2 CPU: today's fp32 path
    ("cpu", "auto", "auto", True, BF16, True),       # AVX512_BF16 / AMX
    ("cuda", "auto", "auto", True, BF16, True),
    ("cuda:1", "auto", "auto", True, BF16, True),
    ("cuda", "auto", "auto", False, None, False),    # a GPU without bf16 units
    # explicit settings are honoured as given
    ("cpu", "fp32", "auto", True, None, True),
    ("cuda", "fp32", False, True, None, False),
    ("cpu", "bf16", "auto", True, BF16, True),
    ("cpu", "fp32", True, False, None, True),
    ("cuda", "bf16", False, True, BF16, False),
])
def test_the_resolution_table(device, precision, channels_last, fast, dtype, layout):
    with warnings.catch_warnings():
        warnings.simplefilter("error", PrecisionWarning)
        p = resolve_precision(device, precision, channels_last, fast=fast)
    assert (p.dtype, p.channels_last, p.device_type) == (dtype, layout, device.split(":")[0])
    assert p.name == ("bf16" if dtype is BF16 else "fp32")
    assert p.name in p.reason and f"precision {precision}" in p.reason


def test_explicit_bf16_where_it_is_slow_is_honoured_with_a_warning():
    with pytest.warns(PrecisionWarning, match="loop: bf16 asked for on a CPU without AVX512_BF16/AMX"):
        p = resolve_precision("cpu", "bf16", "auto", fast=False, setting="loop")
    assert p.dtype is BF16 and p.channels_last is False


@pytest.mark.parametrize("precision, channels_last, message", [
    ("fp16", "auto", r"evaluate: precision 'fp16' is not one of auto, fp32, bf16"),
    ("auto", "yes", r"evaluate: channels_last 'yes' is not one of auto, true, false"),
    ("auto", 1, r"evaluate: channels_last 1 is not one of auto, true, false"),
])
def test_bad_settings_name_where_they_came_from(precision, channels_last, message):
    with pytest.raises(PrecisionError, match=message):
        resolve_precision("cpu", precision, channels_last, fast=False, setting="evaluate")


def test_auto_follows_what_torch_reports_for_this_cpu():
    flags = cpu_flags()
    fast = flags["avx512_bf16"] or flags["amx_tile"]
    p = resolve_precision("cpu")
    assert p.dtype == (BF16 if fast else None) and p.channels_last == fast
    assert {"cpu_capability", "avx512_bf16", "amx_tile", "threads", "torch"} <= set(flags)


def test_a_precision_runs_a_forward_pass_in_its_dtype_and_layout():
    seen = []
    for p in (resolve_precision("cpu", "bf16", True, fast=True), resolve_precision("cpu", "fp32", False, fast=True)):
        model = p.prepare(build_model("srresnet", num_feat=8, num_block=1))
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, o: seen.append((o.dtype, o.is_contiguous(
            memory_format=torch.channels_last))))
        with torch.no_grad(), p.autocast():
            model(p.inputs(torch.rand(2, 3, 16, 16)))
        assert all(t.dtype == torch.float32 for t in model.state_dict().values() if t.is_floating_point())
    assert seen == [(BF16, True), (torch.float32, False)]


def test_the_upscaler_runs_bf16_when_asked_and_gives_fp32_images():
    from facesr.inference.upscaler import Upscaler

    torch.manual_seed(0)
    model = build_model("method1", num_feat=8, num_block=1, prior_feat=8, prior_res_blocks=1, num_hourglass=1,
                        hourglass_depth=2)
    lr = torch.rand(2, 3, 16, 16)
    ref = Upscaler(model, device="cpu", name="method1", precision="fp32").predict(lr)
    dtypes = []
    hook = model.register_forward_hook(lambda m, i, o: dtypes.append(o.sr.dtype))
    with pytest.warns(PrecisionWarning) if not cpu_flags()["avx512_bf16"] else warnings.catch_warnings():
        up = Upscaler(model, device="cpu", name="method1", precision="bf16", channels_last=True)
    pred = up.predict(lr)
    hook.remove()
    assert dtypes == [BF16] and up.precision.name == "bf16" and "bf16" in repr(up)
    assert pred.sr.dtype == torch.float32 and pred.parsing.dtype == torch.float32
    assert 0 < (pred.sr - ref.sr).abs().max() < 0.05  # bf16 rounding, not another model
