"""download: URL resume against a local server that drops the connection, checksum, zip safety."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import shutil
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from facesr.data import DataError
from facesr.data.download import DownloadError, download, fetch, safe_extract
from facesr.data.layout import scan


def _zip_tree(src: Path, top: str = "CelebAMask-HQ") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, f"{top}/{p.relative_to(src)}" if top else str(p.relative_to(src)))
    return buf.getvalue()


class _Server:
    """Serves one blob with Range support; the first full request is cut off halfway."""

    def __init__(self, blob: bytes, drop_first: bool = True):
        self.blob, self.requests = blob, []
        state = {"dropped": not drop_first}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                outer.requests.append(rng)
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                body = outer.blob[start:]
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.blob) - 1}/{len(outer.blob)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not state["dropped"]:
                    state["dropped"] = True
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-body
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/CelebAMask-HQ.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def release_zip(synthetic_raw_master) -> bytes:
    return _zip_tree(synthetic_raw_master / "CelebAMask-HQ")


def test_url_resumes_after_a_dropped_connection_and_verifies_sha(release_zip, tmp_path):
    digest = hashlib.sha256(release_zip).hexdigest()
    with _Server(release_zip) as srv:
        s = download(tmp_path / "raw", source="url", url=srv.url, sha256=digest, retries=3, backoff_s=0.01,
                     cache_dir=tmp_path / "cache")
    assert srv.requests[0] is None and srv.requests[1].startswith("bytes=") and srv.requests[1] != "bytes=0-"
    assert s["fetch"]["resumed"] == 1 and s["fetch"]["sha256"] == digest
    assert (tmp_path / "cache" / "CelebAMask-HQ.zip").read_bytes() == release_zip
    found = scan(tmp_path / "raw")
    assert found.ids == list(range(6)) and not found.bad


def test_url_rejects_a_wrong_checksum_and_leaves_no_output(release_zip, tmp_path):
    with _Server(release_zip, drop_first=False) as srv:
        with pytest.raises(DownloadError, match="sha256 mismatch") as exc:
            download(tmp_path / "raw", source="url", url=srv.url, sha256="0" * 64, retries=1,
                     backoff_s=0.01, cache_dir=tmp_path / "cache")
    assert srv.url in str(exc.value)
    assert not (tmp_path / "raw").exists() and not list((tmp_path / "cache").iterdir())


def test_a_part_file_from_an_earlier_run_is_continued(release_zip, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "CelebAMask-HQ.zip.part").write_bytes(release_zip[:1000])
    with _Server(release_zip, drop_first=False) as srv:
        out = fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False)
    assert srv.requests == ["bytes=1000-"] and out["bytes"] == len(release_zip)
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip


def test_archive_without_top_folder_is_normalised(synthetic_raw_master, tmp_path):
    zpath = tmp_path / "flat.zip"
    zpath.write_bytes(_zip_tree(synthetic_raw_master / "CelebAMask-HQ", top=""))
    download(tmp_path / "raw", source="archive", archive=str(zpath))
    assert scan(tmp_path / "raw" / "CelebAMask-HQ").ids == list(range(6))


def test_folder_source_copies_the_layout(synthetic_raw_master, tmp_path):
    s = download(tmp_path / "raw", source="folder", folder=str(synthetic_raw_master))
    assert s["images"] == 6 and scan(tmp_path / "raw").ids == list(range(6))


def _evil_zip(path: Path, member: str, *, symlink: bool = False) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("CelebAMask-HQ/CelebA-HQ-img/0.jpg", b"x")
        info = zipfile.ZipInfo(member)
        if symlink:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, b"/etc/passwd" if symlink else b"owned")


@pytest.mark.parametrize("member,problem", [
    ("../escape.txt", "'..' escapes"),
    ("CelebAMask-HQ/../../escape.txt", "'..' escapes"),
    ("/tmp/abs_escape.txt", "absolute path"),
])
def test_zip_entries_escaping_the_target_are_refused(tmp_path, member, problem):
    zpath = tmp_path / "evil.zip"
    _evil_zip(zpath, member)
    with pytest.raises(DataError, match=problem) as exc:
        download(tmp_path / "work" / "raw", source="archive", archive=str(zpath))
    assert f"evil.zip!{member}" in str(exc.value)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "work" / "raw").exists()
    assert not Path("/tmp/abs_escape.txt").exists()


def test_zip_symlink_is_refused_and_skip_policy_reports_it(tmp_path):
    zpath = tmp_path / "evil.zip"
    _evil_zip(zpath, "CelebAMask-HQ/link", symlink=True)
    target = tmp_path / "x"
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract(zpath, target)
    skipped = safe_extract(zpath, target, on_error="skip")
    assert [b.path for b in skipped] == [f"{zpath}!CelebAMask-HQ/link"]
    assert (target / "CelebAMask-HQ/CelebA-HQ-img/0.jpg").is_file() and not os.path.lexists(target / "CelebAMask-HQ/link")


def test_zip_bomb_is_refused(tmp_path):
    zpath = tmp_path / "bomb.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("CelebAMask-HQ/CelebA-HQ-img/0.jpg", b"\0" * (64 << 20))
    with pytest.raises(DataError, match="decompression bomb") as exc:
        download(tmp_path / "raw", source="archive", archive=str(zpath))
    assert "bomb.zip!CelebAMask-HQ/CelebA-HQ-img/0.jpg" in str(exc.value)
    with pytest.raises(DataError, match="over the limit"):
        safe_extract(zpath, tmp_path / "y", max_total_bytes=1 << 20)


def test_archive_checksum_mismatch_names_the_file(synthetic_raw_master, tmp_path):
    zpath = tmp_path / "rel.zip"
    zpath.write_bytes(_zip_tree(synthetic_raw_master / "CelebAMask-HQ"))
    with pytest.raises(DataError, match="rel.zip: sha256 mismatch"):
        download(tmp_path / "raw", source="archive", archive=str(zpath), sha256="ab" * 32)


def test_failed_run_keeps_the_previous_output(synthetic_raw_master, tmp_path):
    shutil.copytree(synthetic_raw_master, tmp_path / "raw")
    with pytest.raises(DataError):
        download(tmp_path / "raw", source="archive", archive=str(tmp_path / "absent.zip"))
    assert scan(tmp_path / "raw").ids == list(range(6))
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]
