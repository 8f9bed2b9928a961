"""facesr.inference.upscaler: the Upscaler's input kinds (PIL, numpy, tensors, batches) and its
one forward pass per batch."""

from __future__ import annotations

import numpy as np
import torch
from inference_helpers import write_crops
from PIL import Image

import facesr
from facesr.inference import upscale_files


def test_load_returns_same_kind_for_each_input_type(trained_method1, synthetic_faces):
    up = facesr.load(trained_method1, device="cpu")
    assert up.name == "method1" and up.hr_size == 128
    # a crop larger than the model's HR size, as a real one would be
    pil = Image.fromarray(synthetic_faces["hr"][0]).resize((200, 200), Image.BICUBIC)
    out = up.upscale(pil)
    assert isinstance(out, Image.Image) and out.size == (128, 128) and out.mode == "RGB"
    arr = up.upscale(np.asarray(pil))
    assert isinstance(arr, np.ndarray) and arr.shape == (128, 128, 3) and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, np.asarray(out))
    assert np.asarray(up.upscale(pil, size=256)).shape == (256, 256, 3)
    t = torch.from_numpy(np.array(pil.resize((16, 16), Image.BICUBIC))).permute(2, 0, 1).float() / 255
    sr_t = up.upscale(t)
    assert sr_t.shape == (3, 128, 128) and sr_t.dtype == torch.float32
    assert float(sr_t.min()) >= 0 and float(sr_t.max()) <= 1
    # the tensor route and the PIL route see the same LR here (a 16x16 input is used as is)
    pil_sr = np.asarray(up.upscale(pil.resize((16, 16), Image.BICUBIC)), dtype=float) / 255
    assert np.abs(sr_t.permute(1, 2, 0).numpy() - pil_sr).max() <= 0.5 / 255 + 1e-6
    batch = up.upscale(torch.stack([t, t]))
    assert batch.shape == (2, 3, 128, 128)
    torch.testing.assert_close(batch[0], sr_t, atol=1e-5, rtol=0)
    many = up.upscale_batch([pil, np.asarray(pil), t], batch_size=2)
    assert isinstance(many[0], Image.Image) and isinstance(many[1], np.ndarray) and many[2].shape == (3, 128, 128)


def test_upscaling_runs_the_model_once_per_batch_and_no_more(tiny_srresnet, trained_method1, synthetic_faces,
                                                             tmp_path):
    """Whether a model predicts parsing maps is what it declares, not learnt from a dummy forward pass."""
    write_crops(synthetic_faces["hr"][:5], tmp_path / "in")
    for path in (tiny_srresnet, trained_method1):
        up = facesr.load(path, device="cpu")
        assert up.predicts_parsing == (up.name == "method1")
        calls = []
        up.model.register_forward_pre_hook(lambda _module, args, calls=calls: calls.append(args[0].shape[0]))
        report = upscale_files([tmp_path / "in"], tmp_path / f"out_{up.name}", upscaler=up, save_parsing=True,
                               batch=5)
        assert report.ok and len(report.written) == 5
        assert calls == [5], calls
        assert len(report.extras) == (5 if up.predicts_parsing else 0)
