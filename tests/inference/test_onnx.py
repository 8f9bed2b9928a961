"""`facesr export` and the ONNX Runtime path (issue 25): each generator exported from a tiny trained
checkpoint computes what PyTorch fp32 computes, the file describes itself, files without that
description are refused, and `facesr upscale --runtime onnx` writes what the torch path writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from inference_helpers import TINY_METHOD1, as_tensor, write_crops
from PIL import Image

import facesr
from facesr.cli import main as cli_main
from facesr.fileio import sha256_file
from facesr.inference.errors import ModelSourceError
from facesr.inference.onnx_export import OPSET
from facesr.inference.onnx_runtime import OnnxModelError
from facesr.metrics import psnr
from facesr.models import build_model, load_generator, save_generator

GENERATORS = {  # name -> (registered model, its tiny args); method2 is Method 1's network (GAN-trained)
    "srresnet": ("srresnet", dict(num_feat=8, num_block=1, image_residual=True)),
    "method1": ("method1", TINY_METHOD1),
    "method2": ("method1", dict(TINY_METHOD1, image_residual=True)),
}


def train_tiny(model_name: str, args: dict, lr: torch.Tensor, hr: torch.Tensor, path: Path, seed: int) -> Path:
    """A tiny generator trained for 4 steps on LR/HR pairs (its output is its own, not its init's)."""
    torch.manual_seed(seed)
    model = build_model(model_name, **args)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(4):
        idx = torch.arange(4) + (step % 3) * 4
        out = model(lr[idx])
        loss = torch.nn.functional.mse_loss(out.sr, hr[idx])
        if out.coarse is not None:
            loss = loss + torch.nn.functional.mse_loss(out.coarse, hr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_generator(path, model.eval(), metrics={"steps": 4})
    return path


@pytest.fixture(scope="module")
def exported(synthetic_faces, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """{name: (generator .pt, its export .onnx)} for srresnet, method1 and method2, exported by the CLI."""
    root = tmp_path_factory.mktemp("onnx")
    lr, hr = as_tensor(synthetic_faces["lr"][:12]), as_tensor(synthetic_faces["hr"][:12])
    out = {}
    for seed, (name, (model_name, args)) in enumerate(GENERATORS.items()):
        pt = train_tiny(model_name, args, lr, hr, root / "pt" / f"{name}.pt", seed)
        onnx_path = root / "onnx" / f"{name}.onnx"
        assert cli_main(["export", str(pt), "-o", str(onnx_path)]) == 0
        out[name] = (pt, onnx_path)
    return out


@pytest.mark.parametrize("name", list(GENERATORS))
def test_onnx_runtime_equals_pytorch_on_16_faces(name, exported, synthetic_faces):
    """Acceptance 1: max abs difference <= 1e-4 on 16 faces (a batch the export never saw: the batch
    axis is dynamic), PSNR against HR equal within 0.01 dB; PyTorch at fp32 (auto is bf16 on a CPU
    with fast bf16)."""
    pt, onnx_path = exported[name]
    lr, hr = as_tensor(synthetic_faces["lr"][:16]), as_tensor(synthetic_faces["hr"][:16])
    ref = facesr.load(pt, device="cpu", runtime="torch", precision="fp32").predict(lr)
    ort = facesr.load(onnx_path, device="cpu", runtime="onnx")
    assert ort.runtime == "onnx" and ort.precision.name == "fp32"
    got = ort.predict(lr)
    assert got.sr.shape == (16, 3, 128, 128)
    assert float((got.sr - ref.sr).abs().max()) <= 1e-4
    assert abs(float(psnr(got.sr, hr).mean()) - float(psnr(ref.sr, hr).mean())) <= 0.01
    assert (got.parsing is None) == (name == "srresnet") == (not ort.predicts_parsing)
    if got.parsing is not None:
        assert got.parsing.shape == (16, 11, 128, 128)
        assert float((got.parsing - ref.parsing).abs().max()) <= 1e-4
    # trained: the SR is not the bicubic upsampling its residual starts from, nor its init's
    assert float((ref.sr - facesr.load("bicubic", device="cpu").predict(lr).sr).abs().max()) > 1e-3
    assert ort.predict(lr[:1]).sr.shape == (1, 3, 128, 128)


def test_the_file_describes_itself(exported):
    pt, onnx_path = exported["method1"]
    model = onnx.load(str(onnx_path))
    props = {p.key: p.value for p in model.metadata_props}
    up = facesr.load(onnx_path, device="cpu")
    _, meta = load_generator(pt)
    assert up.meta["model"] == "method1" and up.meta["model_args"] == meta["model_args"]
    assert up.meta["source_sha256"] == sha256_file(pt)
    assert up.meta["scale"] == 8 == up.scale and up.hr_size == 128
    assert up.meta["input"]["size"] == 16 and up.meta["input"]["range"] == [0.0, 1.0]
    assert up.meta["outputs"]["names"] == ["sr", "parsing"] and up.meta["outputs"]["sr_clamp"] == [0.0, 1.0]
    assert up.meta["check"]["max_abs_diff"] <= 1e-4 and '"facesr-onnx/1"' == props["facesr.format"]
    assert [o.name for o in model.graph.output] == ["sr", "parsing"]
    assert [i.name for i in model.graph.input] == ["lr"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # the batch axis is symbolic
    assert {o.domain: o.version for o in model.opset_import}[""] == OPSET
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def test_a_file_without_facesr_metadata_is_refused(exported, tmp_path, synthetic_faces, capsys):
    _, onnx_path = exported["srresnet"]
    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(OnnxModelError, match=f"{bare}: not a facesr ONNX export"):
        facesr.load(bare, device="cpu")
    (tmp_path / "junk.onnx").write_bytes(b"\x00not a protobuf at all" * 10)
    with pytest.raises(OnnxModelError, match="junk.onnx"):
        facesr.load(tmp_path / "junk.onnx", device="cpu")
    write_crops(synthetic_faces["hr"][:1], tmp_path / "in")
    rc = cli_main(["upscale", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(bare),
                   "--runtime", "onnx", "--device", "cpu"])
    assert rc == 2 and f"{bare}: not a facesr ONNX export" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_runtime_rules(exported, tmp_path):
    pt, onnx_path = exported["srresnet"]
    with pytest.raises(ModelSourceError, match="runs with runtime onnx"):
        facesr.load(onnx_path, device="cpu", runtime="torch")
    with pytest.raises(ModelSourceError, match="precision 'bf16' needs runtime torch"):
        facesr.load(onnx_path, device="cpu", precision="bf16")
    with pytest.raises(ModelSourceError, match="runtime onnx runs an exported .onnx file"):
        facesr.load("bicubic", device="cpu", runtime="onnx")
    # a generator file alone: onnx asks for its export, auto runs torch
    alone = tmp_path / "alone" / "srresnet.pt"
    alone.parent.mkdir()
    shutil.copy(pt, alone)
    with pytest.raises(ModelSourceError, match=f"facesr export {alone} -o {alone.with_suffix('.onnx')}"):
        facesr.load(alone, device="cpu", runtime="onnx")
    assert facesr.load(alone, device="cpu").runtime == "torch"
    # its export beside it: onnx runs it; auto and torch run the generator (torch is not the slower)
    shutil.copy(onnx_path, alone.with_suffix(".onnx"))
    assert facesr.load(alone, device="cpu", runtime="onnx").source == str(alone.with_suffix(".onnx"))
    assert facesr.load(alone, device="cpu").runtime == "torch"
    assert facesr.load(alone, device="cpu", runtime="torch").runtime == "torch"
    # an export of other weights beside it is not this file's: onnx refuses it
    shutil.copy(exported["method2"][1], alone.with_suffix(".onnx"))
    with pytest.raises(ModelSourceError, match="no export of these weights"):
        facesr.load(alone, device="cpu", runtime="onnx")


def test_export_cli_errors_write_nothing(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert cli_main(["export", str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    assert "missing.pt: model file not found" in capsys.readouterr().err
    assert cli_main(["export", "bicubic", "-o", str(out)]) == 2
    assert "bicubic has no weights" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.mini
def test_upscale_runtime_onnx_writes_what_torch_fp32_writes(exported, mini_dir, tmp_path, capsys):
    """Acceptance 2 on real faces of the demo's data: the same files, each within 1/255 of the torch
    path at fp32, from crops of any size and with the parsing extra."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(8):
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{i}.jpg") as im:
            im.convert("RGB").resize((128 if i % 2 else 96,) * 2, Image.BICUBIC).save(src / f"face{i}.png")
    pt, onnx_path = exported["method1"]
    outs = {}
    for runtime, model in (("torch", pt), ("onnx", onnx_path)):
        outs[runtime] = tmp_path / runtime
        rc = cli_main(["upscale", str(src), "-o", str(outs[runtime]), "--model", str(model), "--runtime", runtime,
                       "--precision", "fp32", "--save-parsing", "--compare", "--batch", "3", "--device", "cpu"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        assert f"({runtime}, fp32)" in captured.err and "wrote 8 image(s)" in captured.out
    files = sorted(p.relative_to(outs["torch"]) for p in outs["torch"].rglob("*.png"))
    assert len(files) == 24 and files == sorted(p.relative_to(outs["onnx"]) for p in outs["onnx"].rglob("*.png"))
    for rel in files:
        with Image.open(outs["torch"] / rel) as a, Image.open(outs["onnx"] / rel) as b:
            diff = np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16))
        assert diff.max() <= 1, rel
