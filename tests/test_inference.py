"""facesr.inference: model sources, the Upscaler's input kinds, `facesr upscale` on crops and
photos, and every bad input of issue 7."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import facesr
from facesr.cli import main as cli_main
from facesr.inference import BadImageError, ModelSourceError, read_image, upscale_files
from facesr.models import build_model, save_generator

TINY_METHOD1 = dict(num_feat=8, num_block=1, reduction=4, prior_feat=8, prior_res_blocks=1, num_hourglass=1,
                    hourglass_depth=2)


def _mini_pairs(mini_dir: Path, ids) -> tuple[torch.Tensor, torch.Tensor]:
    hr, lr = [], []
    for i in ids:
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{i}.jpg") as im:
            h = im.convert("RGB").resize((128, 128), Image.BICUBIC)
        hr.append(np.asarray(h))
        lr.append(np.asarray(h.resize((16, 16), Image.BICUBIC)))
    as_t = lambda a: torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255  # noqa: E731
    return as_t(lr), as_t(hr)


@pytest.fixture(scope="module")
def trained_method1(mini_dir, tmp_path_factory) -> Path:
    """A tiny Method 1 trained for a few steps on real faces (the pipeline's own model is tested
    where models/train/method1.pt exists, see test_pipeline_model_upscales_five_faces)."""
    torch.manual_seed(0)
    model = build_model("method1", **TINY_METHOD1)
    lr, hr = _mini_pairs(mini_dir, range(100, 112))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for step in range(6):
        idx = torch.arange(4) + (step % 3) * 4
        out = model(lr[idx])
        loss = torch.nn.functional.mse_loss(out.coarse, hr[idx]) + torch.nn.functional.mse_loss(out.sr, hr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    path = tmp_path_factory.mktemp("models") / "method1.pt"
    save_generator(path, model, metrics={"steps": 6})
    return path


@pytest.fixture(scope="module")
def tiny_srresnet(tmp_path_factory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("models") / "srresnet.pt"
    save_generator(path, build_model("srresnet", num_feat=8, num_block=1))
    return path


def _five_faces(mini_dir: Path, dst: Path) -> list[Path]:
    dst.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(5):
        p = dst / f"face{i}.jpg"
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{i}.jpg") as im:
            # any size works; use a small one like a real blurry crop
            im.convert("RGB").resize((48, 48), Image.BICUBIC).save(p, quality=95)
        out.append(p)
    return out


# ---------------------------------------------------------------------------------------------- loading


def test_load_returns_same_kind_for_each_input_type(trained_method1, mini_dir):
    up = facesr.load(trained_method1, device="cpu")
    assert up.name == "method1" and up.hr_size == 128
    with Image.open(mini_dir / "CelebA-HQ-img" / "0.jpg") as im:
        pil = im.convert("RGB")
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


class _Marker:
    """Unpickling this creates `path`: proof that a loader ran code from a file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch '{self.path}'",))


def _pickled_pytorch_model(folder: Path, payload) -> Path:
    """An MLflow pytorch model folder as `mlflow.pytorch.save_model` writes it (pickle format)."""
    import mlflow.pytorch

    mlflow.pytorch.save_model(payload, str(folder), serialization_format="pickle", pip_requirements=[])
    return folder


def test_a_pickled_mlflow_model_folder_is_refused_and_runs_nothing(tmp_path, capsys):
    """Issue 15: a crafted MLflow pytorch model whose data/model.pth runs a command when unpickled."""
    marker = tmp_path / "marker"
    folder = _pickled_pytorch_model(tmp_path / "evil", build_model("srresnet", num_feat=8, num_block=1))
    torch.save(_Marker(marker), folder / "data" / "model.pth")
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (120, 100, 90)).save(face)
    out = tmp_path / "out"
    rc = cli_main(["upscale", str(face), "-o", str(out), "--model", str(folder), "--device", "cpu"])
    err = capsys.readouterr().err
    assert not marker.exists(), "loading the model ran the command in its pickle"
    assert rc == 2 and not out.exists()
    assert str(folder) in err and "refused" in err and "--allow-pickle" in err, err
    with pytest.raises(ModelSourceError, match="allow_pickle=True") as exc:
        facesr.load(folder, device="cpu")
    assert str(folder) in str(exc.value)
    assert not marker.exists()


def test_old_pickled_registry_models_load_only_with_allow_pickle(trained_method1, tmp_path, mini_dir, capsys):
    """Models registered before the weights-only format (mlflow.pytorch, pickle) need the opt-in,
    which warns; they then give the same output as the generator file."""
    import mlflow

    from facesr.inference import PickleLoadWarning
    from facesr.models import load_generator

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the session's tmp sqlite store
    exp = mlflow.create_experiment("facesr-inference-pickle-test", artifact_location=(tmp_path / "a").as_uri())
    model, _ = load_generator(trained_method1)
    # the way facesr.train.tracking.log_generator registered models before issue 15
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.pytorch.log_model(model, name="model", serialization_format="pickle",
                                 registered_model_name="facesr-method1-pickle-test", pip_requirements=[])
    lr, _ = _mini_pairs(mini_dir, range(5))
    from_path = facesr.load(trained_method1, device="cpu").predict(lr)
    for src in ("models:/facesr-method1-pickle-test/latest", f"runs:/{run.info.run_id}/model"):
        with pytest.raises(ModelSourceError, match="--allow-pickle") as exc:
            facesr.load(src, device="cpu")
        assert src in str(exc.value)
        with pytest.warns(PickleLoadWarning, match="unpickling"):
            up = facesr.load(src, device="cpu", allow_pickle=True)
        assert up.name == "method1"
        got = up.predict(lr)
        assert (got.sr - from_path.sr).abs().max().item() < 1e-5, src
        assert (got.parsing - from_path.parsing).abs().max().item() < 1e-5, src
    face = tmp_path / "face.png"
    Image.new("RGB", (16, 16), (120, 100, 90)).save(face)
    rc = cli_main(["upscale", str(face), "-o", str(tmp_path / "out"), "--model",
                   "models:/facesr-method1-pickle-test/1", "--allow-pickle", "--device", "cpu"])
    assert rc == 0
    assert "warning:" in capsys.readouterr().err and (tmp_path / "out" / "face.png").is_file()
    with pytest.raises(ModelSourceError, match="models:/no-such-model/latest"):
        facesr.load("models:/no-such-model/latest", device="cpu")


def test_bare_names_resolve_to_the_pipeline_files_of_the_nearest_project(tmp_path, monkeypatch, trained_method1,
                                                                         tiny_srresnet):
    """A name is its PIPELINE_MODEL_FILES entry (a variant: models/train/<name>.pt) under the folder of
    the nearest dvc.yaml, as dvc finds its project."""
    from facesr.inference import find_dvc_yaml

    project = tmp_path.resolve() / "project"
    (project / "models" / "train").mkdir(parents=True)
    (project / "models" / "gan").mkdir()
    (project / "dvc.yaml").write_text("stages: {}\n")
    (project / "models" / "train" / "method1.pt").write_bytes(trained_method1.read_bytes())
    (project / "models" / "train" / "srresnet_wide.pt").write_bytes(tiny_srresnet.read_bytes())
    (project / "models" / "gan" / "method2.pt").write_bytes(trained_method1.read_bytes())
    # method2 is train_gan's: a file of that name in models/train is not it
    (project / "models" / "train" / "method2.pt").write_bytes(tiny_srresnet.read_bytes())
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")  # dvc.yaml is found in a folder above, as dvc finds it
    assert find_dvc_yaml()[0] == project / "dvc.yaml"
    assert facesr.load("method1", device="cpu").source == str(project / "models" / "train" / "method1.pt")
    assert facesr.load("method2", device="cpu").source == str(project / "models" / "gan" / "method2.pt")
    assert facesr.load("srresnet_wide", device="cpu").name == "srresnet"
    assert facesr.load("bicubic", device="cpu").name == "bicubic"
    with pytest.raises(ModelSourceError, match="dvc repro") as exc:
        facesr.load("no_such_variant", device="cpu")
    assert str(project / "models" / "train" / "no_such_variant.pt") in str(exc.value)


def test_a_name_without_any_dvc_yaml_says_where_it_looked(tmp_path, monkeypatch):
    import facesr.inference.loading as loading

    monkeypatch.setattr(loading, "CHECKOUT", tmp_path / "installed")  # as for an installed facesr: no checkout
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelSourceError, match="no dvc.yaml in") as exc:
        facesr.load("method1", device="cpu")
    assert str(tmp_path) in str(exc.value) and "MLflow URI" in str(exc.value)
    (tmp_path / "dvc.yaml").write_text("stages: {prepare: {cmd: python prepare.py, outs: [data]}}\n")
    with pytest.raises(ModelSourceError, match="models/train/method1.pt"):
        facesr.load("method1", device="cpu")


def test_bad_model_sources_are_clear_errors(tmp_path):
    with pytest.raises(ModelSourceError, match="not found"):
        facesr.load(tmp_path / "missing.pt", device="cpu")
    bad = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelSourceError, match="not a facesr generator file"):
        facesr.load(bad, device="cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelSourceError, match="junk.pt"):
        facesr.load(junk, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ModelSourceError, match="no CUDA"):
            facesr.load("bicubic", device="cuda")


# ---------------------------------------------------------------------------------------------- the command


def _assert_image(path: Path, size: tuple[int, int]) -> None:
    with Image.open(path) as im:
        im.load()
        assert im.size == size and im.mode == "RGB", (path, im.size, im.mode)


def test_cli_upscales_five_mini_faces_with_compare_and_parsing(trained_method1, mini_dir, tmp_path, capsys):
    """Acceptance 1 with a tiny few-step model."""
    inputs = _five_faces(mini_dir, tmp_path / "in")
    out = tmp_path / "out"
    rc = cli_main(["upscale", str(tmp_path / "in"), "-o", str(out), "--model", str(trained_method1),
                   "--compare", "--save-parsing", "--batch", "2", "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    for p in inputs:
        _assert_image(out / f"{p.stem}.png", (128, 128))
        _assert_image(out / "compare" / f"{p.stem}.png", (3 * 128 + 8, 128))
        _assert_image(out / "parsing" / f"{p.stem}.png", (128, 128))
    # the output is this model's SR of the input, not a resize of it
    up = facesr.load(trained_method1, device="cpu")
    with Image.open(inputs[0]) as im:
        expected = np.asarray(up.upscale(im.convert("RGB")))
    with Image.open(out / "face0.png") as im:
        np.testing.assert_array_equal(np.asarray(im), expected)
    assert "wrote 5 image(s)" in capsys.readouterr().out

    rc = cli_main(["upscale", str(inputs[0]), "-o", str(tmp_path / "big"), "--model", str(trained_method1),
                   "--size", "256", "--compare", "--device", "cpu"])
    assert rc == 0
    _assert_image(tmp_path / "big" / "face0.png", (256, 256))
    _assert_image(tmp_path / "big" / "compare" / "face0.png", (3 * 256 + 8, 256))


def test_save_parsing_with_a_model_without_parsing_says_so(tiny_srresnet, mini_dir, tmp_path, capsys):
    _five_faces(mini_dir, tmp_path / "in")
    rc = cli_main(["upscale", str(tmp_path / "in" / "face1.jpg"), "-o", str(tmp_path / "out"),
                   "--model", str(tiny_srresnet), "--save-parsing", "--device", "cpu"])
    assert rc == 0
    assert "predicts no parsing maps" in capsys.readouterr().err
    assert (tmp_path / "out" / "face1.png").is_file()
    assert not (tmp_path / "out" / "parsing").exists()


def test_upscaling_runs_the_model_once_per_batch_and_no_more(tiny_srresnet, trained_method1, mini_dir, tmp_path):
    """Whether a model predicts parsing maps is what it declares, not learnt from a dummy forward pass."""
    _five_faces(mini_dir, tmp_path / "in")
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


# ---------------------------------------------------------------------------------------------- photos


@pytest.fixture(scope="module")
def two_face_photo(mini_dir, tmp_path_factory) -> Path:
    rng = np.random.default_rng(3)
    bg = (rng.integers(0, 85, (300, 420, 3)) + np.array([70, 100, 50])).astype(np.uint8)
    photo = Image.fromarray(bg)
    for x, y, size, face_id in [(30, 60, 140, 20), (250, 90, 120, 21)]:
        with Image.open(mini_dir / "CelebA-HQ-img" / f"{face_id}.jpg") as im:
            photo.paste(im.convert("RGB").resize((size, size), Image.BICUBIC), (x, y))
    path = tmp_path_factory.mktemp("photos") / "two_faces.png"
    photo.save(path)
    return path


def test_photo_with_two_faces_is_replaced_inside_masks_only(two_face_photo, trained_method1, tmp_path, capsys):
    """Acceptance 3."""
    up = facesr.load(trained_method1, device="cpu")
    with Image.open(two_face_photo) as im:
        photo = np.asarray(im.convert("RGB"))
    res = facesr.inference.upscale_photo(photo, up)
    assert len(res.faces) == 2
    assert res.image.shape == photo.shape and res.image.dtype == np.uint8
    outside = res.mask == 0
    np.testing.assert_array_equal(res.image[outside], photo[outside])
    for face in res.faces:
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        box_mask = np.zeros_like(res.mask, dtype=bool)
        box_mask[y0:y1, x0:x1] = True
        core = box_mask & (res.mask >= 0.999)
        assert core.sum() > 0.5 * (x1 - x0) * (y1 - y0), "the paste mask should cover the face"
        diff = np.abs(res.image[core].astype(int) - photo[core].astype(int)).mean()
        assert diff > 1.0, f"face at {face.box} was not replaced (mean change {diff:.2f})"

    out = tmp_path / "out"
    rc = cli_main(["upscale", str(two_face_photo), "-o", str(out), "--faces", "auto", "--model",
                   str(trained_method1), "--compare", "--save-parsing", "--device", "cpu"])
    assert rc == 0
    with Image.open(out / "two_faces.png") as im:
        np.testing.assert_array_equal(np.asarray(im), res.image)
    report = json.loads((out / "faces.json").read_text())
    assert len(report[str(two_face_photo)]) == 2
    assert "2 face(s)" in capsys.readouterr().out
    for k in range(2):
        _assert_image(out / "compare" / f"two_faces_face{k}.png", (3 * 128 + 8, 128))
        _assert_image(out / "parsing" / f"two_faces_face{k}.png", (128, 128))

    res4 = facesr.inference.upscale_photo(photo, up, photo_scale=4)
    assert res4.image.shape == (4 * photo.shape[0], 4 * photo.shape[1], 3)


# ---------------------------------------------------------------------------------------------- bad input


def _png_with_size(path: Path, width: int, height: int) -> Path:
    """A valid PNG header claiming width x height, with a tiny (truncated) body: a decompression bomb
    must be refused from the header alone."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)))
    return path


@pytest.fixture()
def bad_inputs(mini_dir, tmp_path) -> dict[str, Path]:
    d = tmp_path / "in"
    d.mkdir()
    with Image.open(mini_dir / "CelebA-HQ-img" / "7.jpg") as im:
        face = im.convert("RGB").resize((64, 64), Image.BICUBIC)
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
    files["bomb"] = _png_with_size(d / "bomb.png", 40000, 40000)
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


def test_read_image_policy_per_bad_input(bad_inputs):
    for key, words in [("text", "not an image"), ("empty", "empty file"), ("truncated", "truncated"),
                       ("bomb", "decompression bomb"), ("float", "32-bit float")]:
        with pytest.raises(BadImageError) as exc:
            read_image(bad_inputs[key])
        assert str(bad_inputs[key]) in str(exc.value) and words in str(exc.value), str(exc.value)
    sixteen = read_image(bad_inputs["sixteen"])
    assert sixteen.image.mode == "RGB" and any("16-bit" in n for n in sixteen.notes)
    # 16 -> 8 bits keeps the grey levels (x*257 / 257 = x), not a clipped or shifted copy
    with Image.open(bad_inputs["good"]) as im:
        grey = np.asarray(im.convert("L"))
    np.testing.assert_array_equal(np.asarray(sixteen.image)[..., 0], grey)
    assert any("CMYK" in n for n in read_image(bad_inputs["cmyk"]).notes)
    assert any("palette" in n for n in read_image(bad_inputs["palette"]).notes)
    with pytest.raises(BadImageError, match="decompression bomb"):
        read_image(bad_inputs["good"], max_pixels=32 * 32)


def test_bad_inputs_are_reported_and_the_others_complete(bad_inputs, trained_method1, tmp_path, capsys):
    """Acceptance 4: one call with every bad input; each named with its problem, the rest written."""
    out = tmp_path / "out"
    rc = cli_main(["upscale", *map(str, bad_inputs.values()), "-o", str(out), "--model", str(trained_method1),
                   "--device", "cpu", "--batch", "2"])
    err = capsys.readouterr().err
    assert rc == 1
    for key, words in [("text", "not an image"), ("empty", "empty file"), ("truncated", "truncated"),
                       ("bomb", "decompression bomb"), ("float", "32-bit float")]:
        line = next((ln for ln in err.splitlines() if str(bad_inputs[key]) in ln and words in ln), None)
        assert line is not None, f"{key}: no error line naming the file and '{words}' in:\n{err}"
        assert not (out / f"{bad_inputs[key].stem}.png").exists()
    for key, words in [("sixteen", "16-bit"), ("cmyk", "CMYK"), ("palette", "palette")]:
        assert any(str(bad_inputs[key]) in ln and words in ln for ln in err.splitlines()), f"{key} note:\n{err}"
        _assert_image(out / f"{bad_inputs[key].stem}.png", (128, 128))
    _assert_image(out / "good.png", (128, 128))


def test_no_face_in_auto_mode_names_the_file_and_others_complete(two_face_photo, trained_method1, tmp_path):
    blank = tmp_path / "wall.png"
    Image.new("RGB", (200, 150), (120, 110, 100)).save(blank)
    up = facesr.load(trained_method1, device="cpu")
    report = upscale_files([blank, two_face_photo], tmp_path / "out", upscaler=up, faces="auto")
    assert len(report.errors) == 1 and str(blank) in report.errors[0] and "no face found" in report.errors[0]
    assert (tmp_path / "out" / "two_faces.png").is_file()
    assert not (tmp_path / "out" / "wall.png").exists()


def test_missing_input_and_empty_folder(trained_method1, tmp_path, capsys):
    (tmp_path / "empty_dir").mkdir()
    rc = cli_main(["upscale", str(tmp_path / "nope.png"), str(tmp_path / "empty_dir"), "-o", str(tmp_path / "o"),
                   "--model", str(trained_method1), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "nope.png: no such file or folder" in err and "folder holds no image files" in err


# ---------------------------------------------------------------------------------------------- output names


def _face_file(path: Path, value: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (value, 100, 90)).save(path)
    return path


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_inputs_that_would_share_an_output_fail_before_anything_is_written(tmp_path, capsys):
    """x/a.jpg, y/a.jpg, z/a.jpg all mapped to a.png or a_jpg.png and overwrote each other silently."""
    files = [_face_file(tmp_path / d / "a.jpg", v) for d, v in (("x", 10), ("y", 60), ("z", 110))]
    out = tmp_path / "out"
    rc = cli_main(["upscale", *map(str, files), "-o", str(out), "--model", "bicubic", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "same output file" in err and all(str(f) in err for f in files), err
    assert not out.exists()
    # an input named like the renamed one (a.jpg beside a.png becomes a_jpg.png)
    _face_file(tmp_path / "x" / "a.png", 30)
    _face_file(tmp_path / "w" / "a_jpg.png", 40)
    with pytest.raises(facesr.inference.OutputClashError, match="a_jpg.png"):
        upscale_files([tmp_path / "x", tmp_path / "w"], out, upscaler=facesr.load("bicubic", device="cpu"))
    assert not out.exists()


def test_every_input_gets_its_own_output(tmp_path):
    _face_file(tmp_path / "in" / "a.jpg", 10)
    _face_file(tmp_path / "in" / "a.png", 60)
    _face_file(tmp_path / "in" / "sub" / "a.jpg", 110)
    _face_file(tmp_path / "in" / "b.jpg", 160)
    up = facesr.load("bicubic", device="cpu")
    out = tmp_path / "out"
    # the folder, plus one of its files again: that file is done once, under its folder name
    report = upscale_files([tmp_path / "in", tmp_path / "in" / "b.jpg"], out, upscaler=up)
    assert report.ok
    written = sorted(Path(p).relative_to(out).as_posix() for p in report.written)
    assert written == ["a.png", "a_jpg.png", "b.png", "sub/a.png"]
    for rel, src in [("a.png", "a.png"), ("a_jpg.png", "a.jpg"), ("sub/a.png", "sub/a.jpg"), ("b.png", "b.jpg")]:
        with Image.open(tmp_path / "in" / src) as im:
            np.testing.assert_array_equal(_png(out / rel), np.asarray(up.upscale(im.convert("RGB"))), err_msg=rel)


def test_an_input_folder_named_like_an_extras_folder_is_refused(tmp_path):
    _face_file(tmp_path / "in" / "a.jpg", 10)
    _face_file(tmp_path / "in" / "compare" / "a.jpg", 60)
    up = facesr.load("bicubic", device="cpu")
    with pytest.raises(facesr.inference.OutputClashError, match="--compare"):
        upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=up, compare=True)
    assert not (tmp_path / "out").exists()
    assert upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=up).ok  # without --compare: no clash


def test_outputs_are_as_readable_as_other_files(tmp_path):
    """Outputs get the umask's mode (0644 here), not mkstemp's private 0600."""
    _face_file(tmp_path / "in" / "a.jpg", 10)
    old = os.umask(0o022)
    try:
        report = upscale_files([tmp_path / "in"], tmp_path / "out", upscaler=facesr.load("bicubic", device="cpu"),
                               compare=True)
    finally:
        os.umask(old)
    assert report.ok and len(report.written) == len(report.extras) == 1
    for p in report.written + report.extras:
        assert Path(p).stat().st_mode & 0o777 == 0o644, p
    assert not [p for p in (tmp_path / "out").rglob(".*")], "no temp files left"


# ---------------------------------------------------------------------------------------------- output size


def test_photo_scale_is_capped_at_the_input_pixel_limit(tmp_path, capsys):
    """--photo-scale had no bound; the enlarged photo now has the limit inputs have (Pillow's
    MAX_IMAGE_PIXELS, about 89 M pixels), checked before any detection."""
    photo = tmp_path / "photo.png"
    Image.new("RGB", (420, 300), (90, 80, 70)).save(photo)
    out = tmp_path / "out"
    # 30x: 12600 x 9000 = 113 M pixels; the largest scale that fits is 26 (10920 x 7800 = 85 M)
    rc = cli_main(["upscale", str(photo), "-o", str(out), "--faces", "auto", "--photo-scale", "30",
                   "--model", "bicubic", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1
    line = next(ln for ln in err.splitlines() if str(photo) in ln)
    assert "12600x9000" in line and f"limit of {Image.MAX_IMAGE_PIXELS}" in line and "at most 26" in line, line
    assert not (out / "photo.png").exists()
    up = facesr.load("bicubic", device="cpu")
    with Image.open(photo) as im:
        with pytest.raises(facesr.inference.OutputTooLargeError, match="at most 2"):
            facesr.inference.upscale_photo(im, up, photo_scale=3, max_pixels=420 * 300 * 4)


def test_size_is_capped_at_the_input_pixel_limit(tmp_path, capsys):
    face = _face_file(tmp_path / "a.png", 10)
    rc = cli_main(["upscale", str(face), "-o", str(tmp_path / "out"), "--size", "10000", "--model", "bicubic",
                   "--device", "cpu"])
    assert rc == 2 and "--size 10000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # 6000 x 6000 fits alone (36 M pixels), but not in a --compare strip (18008 x 6000 = 108 M)
    with pytest.raises(facesr.inference.InferenceError, match="--size 6000"):
        upscale_files([face], tmp_path / "out", upscaler=facesr.load("bicubic", device="cpu"), size=6000,
                      compare=True)
