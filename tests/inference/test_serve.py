"""facesr.inference.serve: `facesr serve` end to end on 127.0.0.1 (a face in, a 128x128 PNG out; a non-image,
a 50 MP image and a request without the token refused with a 4xx; the server stays up and leaves no Ray
process behind), and its request checks and options without a server."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from inference_helpers import png_with_size
from PIL import Image

import facesr
from facesr.data.synthetic import draw_params, render
from facesr.inference.serve import (
    RequestRejected,
    ServeOptionError,
    check_auth,
    check_headers,
    check_options,
    decode_face,
    server_token,
)

REPO = Path(__file__).resolve().parents[2]


def face_png(idx: int, size: int = 48) -> bytes:
    """A synthetic face crop (facesr.data.synthetic) as PNG bytes."""
    image, _ = render(draw_params(0, idx), 128)
    buf = io.BytesIO()
    Image.fromarray(image).resize((size, size), Image.BICUBIC).save(buf, format="PNG")
    return buf.getvalue()


def solid_png(width: int, height: int) -> bytes:
    """A real, complete one-colour PNG of width x height, compressed row by row: 7100x7100 is about 160 KB
    made in well under a second, and decodes to 151 MB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\0" + bytes([90, 120, 200]) * width
    data = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def post(url: str, body: bytes, *, token: str | None, content_type: str = "image/png"):
    """(status, headers (case-insensitive), body) of a POST, 4xx included."""
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def session_processes(sid: int) -> list[str]:
    """The live processes of session `sid` (the server was started as its leader: Ray's daemons and workers
    take process groups of their own, but stay in its session)."""
    out = subprocess.run(["ps", "-eo", "pid=,sid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    rows = [line.split(None, 3) for line in out.splitlines()]
    return [" ".join(r) for r in rows if len(r) >= 3 and int(r[1]) == sid and not r[2].startswith("Z")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_upscales_a_face_refuses_bad_input_and_stops_cleanly(tiny_srresnet, tmp_path):
    """Acceptance 3 of issue 25, and the token made at start, batching and a clean SIGTERM."""
    port = free_port()
    token_file = tmp_path / "token"
    env = {k: v for k, v in os.environ.items() if k != "FACESR_SERVE_TOKEN"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "facesr.cli", "serve", str(tiny_srresnet), "--port", str(port), "--device", "cpu",
         "--num-cpus", "1", "--token-file", str(token_file), "--max-batch-size", "4", "--batch-wait-ms", "300"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as resp:
                    assert json.loads(resp.read()) == {"status": "ok", "model": "srresnet"}
                    break
            except OSError:  # refused, reset, timed out, or 404/503 before the app is routed
                assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.5)
        token = token_file.read_text().strip()
        assert len(token) >= 32 and stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert token in (tmp_path / "serve.log").read_text()  # printed for the user

        face = face_png(0)
        status, headers, body = post(url, face, token=token)
        assert status == 200 and headers["Content-Type"] == "image/png", body[:300]
        with Image.open(io.BytesIO(body)) as im:
            assert im.format == "PNG" and im.size == (128, 128) and im.mode == "RGB"
            served = np.asarray(im, dtype=np.int16)
        # the model's SR of this face (up to rounding: the replica runs torch on another thread count)
        with Image.open(io.BytesIO(face)) as im:
            expected = np.asarray(facesr.load(tiny_srresnet, device="cpu").upscale(im.convert("RGB")), dtype=np.int16)
        assert np.abs(served - expected).max() <= 1

        status, _, body = post(url, b"this is not an image\n", token=token)
        assert status == 400 and "not a PNG or JPEG" in json.loads(body)["error"]
        status, _, body = post(url, solid_png(7100, 7100), token=token)
        assert status == 413 and "7100x7100" in json.loads(body)["error"]
        status, headers, body = post(url, face, token=None)
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer" and "token" in json.loads(body)["error"]
        status, _, _ = post(url, face, token=token + "x")
        assert status == 401
        status, _, body = post(url, face, token=token, content_type="text/plain")
        assert status == 415 and "image/png" in json.loads(body)["error"]

        # still up: four faces at once are answered, in batches of more than one (300 ms to gather them)
        faces = [face_png(i) for i in range(1, 5)]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda b: post(url, b, token=token), faces))
        assert [a[0] for a in answers] == [200] * 4
        assert max(int(a[1]["X-Facesr-Batch"]) for a in answers) > 1
        for _, _, body in answers:
            with Image.open(io.BytesIO(body)) as im:
                assert im.size == (128, 128)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            log.close()
    assert rc == 0, (tmp_path / "serve.log").read_text()
    deadline = time.monotonic() + 10
    while session_processes(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert session_processes(proc.pid) == []


def test_auth_needs_the_exact_bearer_token():
    check_auth("Bearer s3cret", "s3cret")
    check_auth("bearer s3cret", "s3cret")
    check_auth(None, None)  # --no-auth
    for header in (None, "", "Bearer", "Bearer s3cre", "Bearer s3crett", "Basic s3cret", "s3cret"):
        with pytest.raises(RequestRejected) as exc:
            check_auth(header, "s3cret")
        assert exc.value.status == 401


def test_headers_type_and_declared_length():
    check_headers("image/png", "100", 100)
    check_headers("image/jpeg; charset=binary", None, 100)
    for ctype, length, status in [("text/plain", "10", 415), (None, "10", 415), ("multipart/form-data", "10", 415),
                                  ("image/png", "101", 413), ("image/png", "ten", 400)]:
        with pytest.raises(RequestRejected) as exc:
            check_headers(ctype, length, 100)
        assert exc.value.status == status, (ctype, length)


def test_decode_face_statuses_and_conversions(tmp_path):
    im, notes = decode_face(face_png(0, size=40), 10_000)
    assert im.mode == "RGB" and im.size == (40, 40) and notes == []
    # a header claiming more pixels than the limit: 413 before any pixel is decoded
    bomb = png_with_size(tmp_path / "bomb.png", 40000, 40000).read_bytes()
    for body, limit in [(bomb, 10_000), (face_png(0, size=101), 10_000)]:
        with pytest.raises(RequestRejected) as exc:
            decode_face(body, limit)
        assert exc.value.status == 413 and "decompression bomb refused" in str(exc.value)
    truncated = face_png(0)[:200]
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, format="GIF")
    for body, words in [(b"", "empty"), (b"GIF89a...", "not a PNG or JPEG"), (gif.getvalue(), "not a PNG or JPEG"),
                        (truncated, "truncated"), (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a readable image")]:
        with pytest.raises(RequestRejected) as exc:
            decode_face(body, 10_000)
        assert exc.value.status == 400 and words in str(exc.value), str(exc.value)
        assert str(tmp_path) not in str(exc.value) and "/tmp" not in str(exc.value)  # no server path in answers
    cmyk = io.BytesIO()
    Image.new("CMYK", (16, 16), (0, 50, 100, 0)).save(cmyk, format="JPEG")
    im, notes = decode_face(cmyk.getvalue(), 10_000)
    assert im.mode == "RGB" and any("CMYK" in n for n in notes)
    wide = io.BytesIO()
    Image.new("L", (32, 16)).save(wide, format="PNG")
    im, notes = decode_face(wide.getvalue(), 10_000)
    assert im.mode == "RGB" and im.size == (32, 16) and "32x16 is not square; resized to a square crop" in notes


def _args(**over) -> argparse.Namespace:
    base = dict(host="127.0.0.1", port=8000, no_auth=False, insecure=False, num_cpus=2, max_batch_size=16,
                batch_wait_ms=10.0, max_bytes=100, max_pixels=100)
    return argparse.Namespace(**(base | over))


def test_options_keep_an_open_server_explicit():
    check_options(_args())
    check_options(_args(no_auth=True))                     # loopback without a token
    check_options(_args(no_auth=True, host="::1"))
    check_options(_args(host="0.0.0.0"))                   # a network address with a token
    check_options(_args(host="0.0.0.0", no_auth=True, insecure=True))
    for bad in [dict(host="0.0.0.0", no_auth=True), dict(host="192.168.1.5", no_auth=True), dict(insecure=True),
                dict(port=0), dict(max_bytes=0), dict(max_batch_size=0), dict(batch_wait_ms=-1)]:
        with pytest.raises(ServeOptionError):
            check_options(_args(**bad))


def test_token_from_env_or_made_and_written_private(tmp_path, monkeypatch):
    monkeypatch.setenv("FACESR_SERVE_TOKEN", "from-env")
    assert server_token(tmp_path / "t") == ("from-env", None)
    assert not (tmp_path / "t").exists()
    monkeypatch.delenv("FACESR_SERVE_TOKEN")
    token, where = server_token(tmp_path / "t")
    assert where == str(tmp_path / "t") and (tmp_path / "t").read_text() == token + "\n"
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o600
    assert server_token(tmp_path / "t")[0] != token  # a new one each start


def test_runtime_and_precision_reach_the_model_before_a_server_starts(tiny_srresnet, capsys):
    """`--runtime`/`--precision` are `facesr upscale`'s and load gets them: a generator file with no
    export beside it cannot be served with --runtime onnx; with --runtime torch it loads."""
    from facesr.cli import build_parser

    # the port is taken: had the options been dropped, the model would load and the port be the error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = str(taken.getsockname()[1])
        for extra, expected in [(["--runtime", "onnx"], "no export of these weights beside it"),
                                (["--runtime", "torch", "--precision", "fp32"], f"cannot listen on 127.0.0.1:{port}")]:
            args = build_parser().parse_args(["serve", str(tiny_srresnet), "--port", port, "--device", "cpu", *extra])
            assert args.func(args) == 2
            assert expected in capsys.readouterr().err
