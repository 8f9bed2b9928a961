"""download: URL resume against a local server that drops the connection, checksum, zip safety."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import re
import shutil
import stat
import threading
import warnings
import zipfile
from pathlib import Path

import pytest
from demo_params import demo_download

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
    """Serves one blob like a real file server: ETag, Range, If-Range, 416 past the end.

    The first full request is cut off halfway (`drop_first`). Misbehaviours for the tests:
    `honour_if_range=False` serves the range whatever If-Range says; `range_from_zero` answers any
    Range with a 206 of the whole file; `range_size_header=False` sends a 416 without Content-Range.
    `blob` and `etag` may be changed between requests (a new version of the file); an `etag` that is
    not a quoted string goes out as Last-Modified instead.
    """

    def __init__(self, blob: bytes, drop_first: bool = True, *, etag: str = '"v1"', honour_if_range: bool = True,
                 range_from_zero: bool = False):
        self.blob, self.etag, self.requests, self.if_ranges = blob, etag, [], []
        state = {"dropped": not drop_first}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                rng, if_range = self.headers.get("Range"), self.headers.get("If-Range")
                outer.requests.append(rng)
                outer.if_ranges.append(if_range)
                blob = outer.blob
                if rng and outer.honour_if_range and if_range is not None and if_range != outer.etag:
                    rng = None  # RFC 9110 13.1.5: the file changed, send all of it
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                if rng and start >= len(blob):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(blob)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if rng and outer.range_from_zero:
                    start = 0
                body = blob[start:]
                self.send_response(206 if rng else 200)
                if outer.etag.startswith('"'):
                    self.send_header("ETag", outer.etag)
                else:  # a date: the server only knows when the file last changed
                    self.send_header("Last-Modified", outer.etag)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(blob) - 1}/{len(blob)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not state["dropped"]:
                    state["dropped"] = True
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops mid-body
                    return
                self.wfile.write(body)

        self.honour_if_range, self.range_from_zero = honour_if_range, range_from_zero
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/CelebAMask-HQ.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _part(cache: Path, data: bytes, url: str | None, validator: str = '"v1"', total: int | None = None) -> Path:
    """A .part left by an earlier run, with the record fetch keeps beside it (url None: no record)."""
    cache.mkdir(parents=True, exist_ok=True)
    part = cache / "CelebAMask-HQ.zip.part"
    part.write_bytes(data)
    if url is not None:
        (cache / "CelebAMask-HQ.zip.part.json").write_text(
            json.dumps({"url": url, "validator": validator, "total": total}))
    return part


@pytest.fixture
def release_zip(synthetic_raw_master) -> bytes:
    return _zip_tree(synthetic_raw_master / "CelebAMask-HQ")


def test_url_resumes_after_a_dropped_connection_and_verifies_sha(release_zip, tmp_path):
    digest = hashlib.sha256(release_zip).hexdigest()
    with _Server(release_zip) as srv:
        s = download(tmp_path / "raw", cache_dir=tmp_path / "cache", **demo_download(source="url", url=srv.url, sha256=digest, retries=3, backoff_s=0.01))
    assert srv.requests[0] is None and srv.requests[1].startswith("bytes=") and srv.requests[1] != "bytes=0-"
    assert s["fetch"]["resumed"] == 1 and s["fetch"]["sha256"] == digest
    assert (tmp_path / "cache" / "CelebAMask-HQ.zip").read_bytes() == release_zip
    found = scan(tmp_path / "raw")
    assert found.ids == list(range(6)) and not found.bad


def test_url_rejects_a_wrong_checksum_and_leaves_no_output(release_zip, tmp_path):
    with _Server(release_zip, drop_first=False) as srv:
        with pytest.raises(DownloadError, match="sha256 mismatch") as exc:
            download(tmp_path / "raw", cache_dir=tmp_path / "cache", **demo_download(source="url", url=srv.url, sha256="0" * 64, retries=1, backoff_s=0.01))
    assert srv.url in str(exc.value)
    assert not (tmp_path / "raw").exists() and not list((tmp_path / "cache").iterdir())


def test_a_part_file_from_an_earlier_run_is_continued(release_zip, tmp_path):
    with _Server(release_zip, drop_first=False) as srv:
        _part(tmp_path / "c", release_zip[:1000], srv.url, total=len(release_zip))
        out = fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False)
    assert srv.requests == ["bytes=1000-"] and srv.if_ranges == ['"v1"'] and out["bytes"] == len(release_zip)
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip
    digest = hashlib.sha256(release_zip).hexdigest()
    assert (tmp_path / "c" / "CelebAMask-HQ.zip.sha256").read_text() == f"{digest}  CelebAMask-HQ.zip\n"
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["CelebAMask-HQ.zip", "CelebAMask-HQ.zip.sha256"]


def test_last_modified_serves_as_the_validator_without_an_etag(release_zip, tmp_path):
    date = "Tue, 01 Dec 2026 10:00:00 GMT"
    with _Server(release_zip, etag=date) as srv:  # the first GET drops halfway, then a kill
        with pytest.raises(DownloadError, match="gave up after 0 retries"):
            fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False, retries=0)
        assert json.loads((tmp_path / "c" / "CelebAMask-HQ.zip.part.json").read_text())["validator"] == date
        out = fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False)
    assert srv.if_ranges == [None, date] and srv.requests[1] == f"bytes={len(release_zip) // 2}-"
    assert out["resumed"] == 1 and (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip


def test_a_part_without_a_version_record_is_not_continued(release_zip, tmp_path):
    # bytes of unknown origin (or of another URL) may belong to any version of the file
    with _Server(release_zip, drop_first=False) as srv:
        _part(tmp_path / "c", b"x" * 1000, None)
        fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False)
        _part(tmp_path / "d", b"x" * 1000, "http://127.0.0.1:1/other.zip")
        fetch(srv.url, tmp_path / "d" / "CelebAMask-HQ.zip", progress=False)
    assert srv.requests == [None, None]
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip
    assert (tmp_path / "d" / "CelebAMask-HQ.zip").read_bytes() == release_zip


@pytest.mark.parametrize("extra", [0, 7], ids=["whole", "longer-than-the-file"])
def test_416_accepts_the_part_only_when_it_is_exactly_the_file(release_zip, tmp_path, extra):
    with _Server(release_zip, drop_first=False) as srv:
        _part(tmp_path / "c", release_zip + b"garbage"[:extra], srv.url)
        out = fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False, backoff_s=0.01)
    n = len(release_zip)
    # complete: the 416 is the answer; longer: the .part is thrown away and the file fetched whole
    assert srv.requests == [f"bytes={n + extra}-"] + ([None] if extra else [])
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip
    assert out["bytes"] == n and out["restarts"] == (1 if extra else 0)


def test_a_206_that_does_not_start_at_the_held_bytes_is_not_appended(release_zip, tmp_path):
    with _Server(release_zip, drop_first=False, range_from_zero=True) as srv:
        _part(tmp_path / "c", release_zip[:1000], srv.url)
        out = fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False, backoff_s=0.01)
    assert srv.requests == ["bytes=1000-", None] and out["restarts"] == 1
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip


@pytest.mark.parametrize("honour_if_range", [True, False], ids=["server-honours-if-range", "server-ignores-it"])
def test_a_part_of_another_file_version_is_not_resumed(release_zip, tmp_path, honour_if_range):
    old = bytes(b ^ 0xFF for b in release_zip[:1000])  # the first 1000 bytes of an earlier version
    with _Server(release_zip, drop_first=False, etag='"v2"', honour_if_range=honour_if_range) as srv:
        _part(tmp_path / "c", old, srv.url, validator='"v1"')
        fetch(srv.url, tmp_path / "c" / "CelebAMask-HQ.zip", progress=False, backoff_s=0.01)
    assert srv.if_ranges[0] == '"v1"'
    assert srv.requests == ["bytes=1000-"] + ([] if honour_if_range else [None])
    assert (tmp_path / "c" / "CelebAMask-HQ.zip").read_bytes() == release_zip


def test_first_download_is_recorded_and_every_later_use_must_match(release_zip, synthetic_raw_master, tmp_path,
                                                                  capsys):
    digest = hashlib.sha256(release_zip).hexdigest()
    cache = tmp_path / "cache"
    zpath, record = cache / "CelebAMask-HQ.zip", cache / "CelebAMask-HQ.zip.sha256"
    kw = dict(source="url", retries=1, backoff_s=0.01, cache_dir=cache)
    with _Server(release_zip, drop_first=False) as srv:
        s = download(tmp_path / "raw", **demo_download(url=srv.url, **kw))
        assert s["fetch"]["sha256"] == digest and record.read_text().split()[0] == digest
        assert digest in capsys.readouterr().err  # printed so that it can be pinned
        assert download(tmp_path / "raw", **demo_download(url=srv.url, **kw))["fetch"] == {"cached": True, "sha256": digest}
        assert srv.requests == [None]
        # the cached zip changes (another valid zip, here): refused, not used, not kept quietly
        other = _zip_tree(synthetic_raw_master / "CelebAMask-HQ", top="")
        zpath.write_bytes(other)
        with pytest.raises(DownloadError) as exc:
            download(tmp_path / "raw", **demo_download(url=srv.url, **kw))
        msg = str(exc.value)
        assert str(zpath) in msg and digest in msg and hashlib.sha256(other).hexdigest() in msg
        assert srv.requests == [None]
        # deleting only the zip: the new download must still match what was recorded
        zpath.unlink()
        srv.blob = other
        with pytest.raises(DownloadError, match=f"expected {digest} \\(recorded in .*CelebAMask-HQ.zip.sha256"):
            download(tmp_path / "raw", **demo_download(url=srv.url, **kw))
        # a pinned sha256 wins over the record: the new version is fetched and recorded
        zpath.write_bytes(release_zip)
        pinned = hashlib.sha256(other).hexdigest()
        s = download(tmp_path / "raw", **demo_download(url=srv.url, sha256=pinned, **kw))
        assert s["fetch"]["sha256"] == pinned and zpath.read_bytes() == other
        assert record.read_text().split()[0] == pinned
    assert scan(tmp_path / "raw").ids == list(range(6))


def test_a_malformed_pin_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="download.sha256: 'abc' is not a sha256"):
        download(tmp_path / "raw", **demo_download(source="url", url="http://127.0.0.1:1/x.zip", sha256="abc"))


def test_archive_without_top_folder_is_normalised(synthetic_raw_master, tmp_path):
    zpath = tmp_path / "flat.zip"
    zpath.write_bytes(_zip_tree(synthetic_raw_master / "CelebAMask-HQ", top=""))
    download(tmp_path / "raw", **demo_download(source="archive", archive=str(zpath)))
    assert scan(tmp_path / "raw" / "CelebAMask-HQ").ids == list(range(6))


def test_folder_source_copies_the_layout(synthetic_raw_master, tmp_path):
    s = download(tmp_path / "raw", **demo_download(source="folder", folder=str(synthetic_raw_master)))
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
        download(tmp_path / "work" / "raw", **demo_download(source="archive", archive=str(zpath)))
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
        download(tmp_path / "raw", **demo_download(source="archive", archive=str(zpath)))
    assert "bomb.zip!CelebAMask-HQ/CelebA-HQ-img/0.jpg" in str(exc.value)
    with pytest.raises(DataError, match="over the limit"):
        safe_extract(zpath, tmp_path / "y", max_total_bytes=1 << 20)


def test_archive_checksum_mismatch_names_the_file(synthetic_raw_master, tmp_path):
    zpath = tmp_path / "rel.zip"
    zpath.write_bytes(_zip_tree(synthetic_raw_master / "CelebAMask-HQ"))
    with pytest.raises(DataError, match="rel.zip: sha256 mismatch"):
        download(tmp_path / "raw", **demo_download(source="archive", archive=str(zpath), sha256="ab" * 32))


def test_failed_run_keeps_the_previous_output(synthetic_raw_master, tmp_path):
    shutil.copytree(synthetic_raw_master, tmp_path / "raw")
    with pytest.raises(DataError):
        download(tmp_path / "raw", **demo_download(source="archive", archive=str(tmp_path / "absent.zip")))
    assert scan(tmp_path / "raw").ids == list(range(6))
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]


def _zip_of(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    """A zip of (name, data) members in that order; data None makes a folder entry."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns on a duplicate name, and writes it
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members:
                if data is None:
                    zf.mkdir(name)
                else:
                    zf.writestr(name, data)
    return path


@pytest.mark.parametrize("members,culprit,problem", [
    ([("T/a/b", b"file"), ("T/a/b/c.jpg", b"inside")], "T/a/b", "also a folder of 'T/a/b/c.jpg'"),
    ([("T/a/b/c.jpg", b"inside"), ("T/a/b", b"file")], "T/a/b", "also a folder of 'T/a/b/c.jpg'"),
    ([("T/a/", None), ("T/a", b"file")], "T/a", "also a folder of 'T/a/'"),
    ([("T/x.jpg", b"one"), ("T/y.jpg", b"y"), ("T/x.jpg", b"two")], "T/x.jpg", "holds this name twice"),
    ([("T/x.jpg", b"one"), ("T/./x.jpg", b"two")], "T/./x.jpg", "holds this name twice"),
], ids=["file-then-folder", "folder-then-file", "folder-entry", "duplicate", "duplicate-spelled-apart"])
def test_ambiguous_zip_members_are_refused_before_anything_is_written(tmp_path, members, culprit, problem):
    zpath = _zip_of(tmp_path / "odd.zip", members)
    for on_error in ("fail", "skip"):  # no member can be left out to resolve it: always an error
        with pytest.raises(DataError, match=re.escape(problem)) as exc:
            safe_extract(zpath, tmp_path / "x", on_error=on_error)
        assert f"odd.zip!{culprit}:" in str(exc.value)
        assert not (tmp_path / "x").exists()


def test_a_zip_folder_entry_repeated_is_harmless(tmp_path):
    zpath = _zip_of(tmp_path / "ok.zip", [("T/a/", None), ("T/a/", None), ("T/a/b.jpg", b"b")])
    assert safe_extract(zpath, tmp_path / "x") == []
    assert (tmp_path / "x" / "T/a/b.jpg").read_bytes() == b"b"


@pytest.mark.parametrize("source", ["folder", "archive"])
def test_leftovers_of_a_killed_run_are_swept_at_the_start(synthetic_raw_master, tmp_path, source):
    zpath = tmp_path / "rel.zip"
    zpath.write_bytes(_zip_tree(synthetic_raw_master / "CelebAMask-HQ"))
    work = tmp_path / "work"
    stale = [work / ".raw.tmp-abc123" / "CelebAMask-HQ", work / ".raw.old-4242" / "x"]
    kept = [work / ".rawer.tmp-1", work / "raw.tmp-1", work / ".raw.tmpfile", work / "other"]
    for p in stale + kept:
        p.mkdir(parents=True)
    download(work / "raw", **demo_download(source=source, folder=str(synthetic_raw_master), archive=str(zpath)))
    assert sorted(p.name for p in work.iterdir()) == sorted(["raw"] + [p.name for p in kept])
