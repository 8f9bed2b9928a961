"""Fixtures of the inference tests, all from synthetic prepared faces (tests/conftest.py's
`prepared_synthetic`): these tests need nothing of ../shared. Tests that need a real photo (MTCNN on
a real face) are in tests/test_faces_real.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from inference_helpers import as_tensor, png_with_size, train_tiny_method1
from PIL import Image

from facesr.data import load_split
from facesr.models import build_model, save_generator


@pytest.fixture(scope="session")
def synthetic_faces(prepared_synthetic) -> dict[str, np.ndarray]:
    """The train split of the synthetic prepared data, in memory: "hr" uint8 (22, 128, 128, 3), "lr"
    uint8 (22, 16, 16, 3)."""
    arrays = load_split(prepared_synthetic, "train")
    return {"hr": np.array(arrays["hr"]), "lr": np.array(arrays["lr"])}


@pytest.fixture(scope="session")
def trained_method1(synthetic_faces, tmp_path_factory) -> Path:
    """A tiny Method 1 trained for a few steps on synthetic faces (the pipeline's own model is tested
    where models/train/method1.pt exists, see test_pipeline_model_upscales_five_faces)."""
    lr, hr = as_tensor(synthetic_faces["lr"][:12]), as_tensor(synthetic_faces["hr"][:12])
    return train_tiny_method1(lr, hr, tmp_path_factory.mktemp("models") / "method1.pt")


@pytest.fixture(scope="session")
def tiny_srresnet(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("models") / "srresnet.pt"
    save_generator(path, build_model("srresnet", num_feat=8, num_block=1))
    return path


@pytest.fixture()
def bad_inputs(synthetic_faces, tmp_path) -> dict[str, Path]:
    """A folder with one good face and one file of each bad kind of issue 7 (unreadable, or converted
    with a note)."""
    d = tmp_path / "in"
    d.mkdir()
    face = Image.fromarray(synthetic_faces["hr"][7]).resize((64, 64), Image.BICUBIC)
    files = {}
    files["good"] = d / "good.png"
    face.save(files["good"])
    files["text"] = d / "notes.jpg"
    files["text"].write_text("this is not an image\n")
    files["empty"] = d / "empty.png"
    files["empty"].write_bytes(b"")
    full = d / "full.jpg"
    face.save(full, quality=95)
    files["truncated"] = d / "truncated.jpg"
    files["truncated"].write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    files["bomb"] = png_with_size(d / "bomb.png", 40000, 40000)
    files["sixteen"] = d / "sixteen.png"
    g16 = (np.asarray(face.convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(g16).save(files["sixteen"])
    files["cmyk"] = d / "cmyk.jpg"
    face.convert("CMYK").save(files["cmyk"])
    files["palette"] = d / "palette.png"
    face.convert("P", palette=Image.Palette.ADAPTIVE).save(files["palette"])
    files["float"] = d / "float.tif"
    Image.fromarray(np.asarray(face.convert("L"), dtype=np.float32) / 255).save(files["float"])
    return files

