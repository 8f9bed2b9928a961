"""download: produce `<out>/CelebAMask-HQ/` in the official layout from a URL, a zip, a folder, or the
synthetic generator.

URL: the zip is fetched to `<cache>/<name>.part` with HTTP Range resume (after a dropped connection
within a run, and across runs: a killed run's .part is continued), retries with exponential backoff,
a size check against Content-Length/Content-Range, and a sha256 check; a checksum mismatch deletes the
.part (its bytes are wrong, resuming it cannot help) and fails. Resuming is exact: the validator of
the first response (ETag or Last-Modified, kept in `<name>.part.json`) goes out as If-Range, a 206
must start at the bytes held, and a 416 is taken as "complete" only when the server's size is the
.part's; anything else starts over. The verified zip is kept in the cache so a re-run does not
fetch 3 GB again, and its sha256 beside it in `<name>.sha256`: with no pinned `download.sha256`, the
first download's digest is trusted and every later use of the cached zip must match it.

Extraction is safe: every member is checked before anything is written (no absolute paths, no `..`,
no symlinks, nothing that resolves outside the target, no name twice, no name that is both a file
and a folder), and a decompression-bomb guard limits the total uncompressed size and each member's
compression ratio, counting the bytes actually inflated (a lying header does not get past it). The zip's top folder may be `CelebAMask-HQ/` or the layout's
folders directly; both end as `<out>/CelebAMask-HQ/`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import stat
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from facesr.data.errors import BadFile, DataError, apply_policy, check_policy
from facesr.data.layout import IMG_DIR, MASK_DIR, TOP, find_root
from facesr.data.util import progress as progress_bar
from facesr.fileio import atomic_dir, atomic_write_text, sha256_file, sweep_stale

SOURCES = ("url", "archive", "folder", "synthetic")
MAX_TOTAL_BYTES = 16 << 30  # the release unpacks to about 3 GB
MAX_RATIO = 200  # JPEG/PNG members barely compress; 200:1 is only reached by padding
RATIO_MIN_BYTES = 1 << 20  # tiny members may have any ratio
CHUNK = 1 << 16


class DownloadError(DataError):
    """The URL could not be fetched completely and correctly."""


# ---------------------------------------------------------------------------------------------- URL
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


def _content_range(resp) -> tuple[int, int | None]:
    """(first byte, total or None) of a 206 answer; DownloadError when the header is missing or odd."""
    m = _CONTENT_RANGE.fullmatch((resp.headers.get("Content-Range") or "").strip())
    if not m:
        raise DownloadError(f"{resp.url}: 206 answer without a usable Content-Range "
                            f"({resp.headers.get('Content-Range')!r})")
    return int(m[1]), None if m[3] == "*" else int(m[3])


def _content_length(resp) -> int | None:
    cl = (resp.headers.get("Content-Length") or "").strip()
    return int(cl) if cl.isdigit() else None


def _validator(headers) -> str:
    """What If-Range may carry: a strong ETag, else Last-Modified, else "" (RFC 9110 13.1.5)."""
    etag = (headers.get("ETag") or "").strip()
    if etag and not etag.startswith("W/"):
        return etag
    return (headers.get("Last-Modified") or "").strip()


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _discard(*paths: Path) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


class _Restart(Exception):
    """The .part cannot be continued (another file version, a range that does not fit): start over."""


def read_digest_record(path: str | Path) -> str:
    """The sha256 in a `sha256sum`-style record (`<hex>  <name>`), or "" when there is none."""
    try:
        first = Path(path).read_text().split()
    except OSError:
        return ""
    return first[0].lower() if first and re.fullmatch(r"[0-9a-fA-F]{64}", first[0]) else ""


def fetch(url: str, dest: str | Path, *, sha256: str = "", expected_from: str = "sha256",
          retries: int = 5, backoff_s: float = 1.0, timeout_s: float = 60.0, progress: bool = True) -> dict:
    """Download `url` to `dest` (resuming `dest.part`), verify size and sha256, return what was seen.

    A .part is continued only when `dest.part.json` holds the validator (strong ETag or
    Last-Modified) of the response that started it: the Range request carries it as If-Range, so a
    server whose file changed answers 200 and the download starts over instead of splicing two
    versions. A 206 must start exactly at the bytes held, and a 416 (nothing left to send) is
    accepted only when the announced size equals the .part's. The finished file's sha256 is written
    to `dest.sha256` (sha256sum format) before `dest` appears. `expected_from` names where `sha256`
    came from, for the mismatch error.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta_path = dest.with_name(dest.name + ".part.json")
    record = dest.with_name(dest.name + ".sha256")
    for leftover in (meta_path, record):
        sweep_stale(leftover)  # atomic_open's temp files of a killed run
    total: int | None = None
    attempt = restarts = resumed = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        meta = _read_meta(meta_path) if have else {}
        validator = meta.get("validator", "") if meta.get("url") == url else ""
        if have and not validator:
            # nothing says which version of the file these bytes belong to: they cannot be continued
            print(f"download: {part} has no record of the file version it holds; starting over", file=sys.stderr)
            _discard(part, meta_path)
            have = 0
        req = urllib.request.Request(url, headers={"User-Agent": "facesr-download"})
        if have:
            req.add_header("Range", f"bytes={have}-")
            req.add_header("If-Range", validator)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if resp.status == 206 and have:
                    start, total = _content_range(resp)
                    if start != have:
                        raise _Restart(f"asked for bytes {have}- and got a range starting at {start}")
                    if meta.get("total") is not None and total is not None and total != meta["total"]:
                        raise _Restart(f"the file is now {total} bytes, the .part was of a {meta['total']}-byte one")
                    seen = _validator(resp.headers)
                    if seen and seen != validator and seen.startswith('"') == validator.startswith('"'):
                        # a server that ignores If-Range but honours Range would splice two versions
                        raise _Restart(f"the file changed (validator {validator} -> {seen})")
                    total = total if total is not None else meta.get("total")
                    resumed += 1
                    mode = "ab"
                elif resp.status == 200:
                    have, total, mode = 0, _content_length(resp), "wb"
                else:
                    raise DownloadError(f"{url}: unexpected HTTP {resp.status} to "
                                        f"{'Range bytes=' + str(have) + '-' if have else 'a plain GET'}")
                with open(part, mode) as f, progress_bar(total=total, initial=have, unit="B", unit_scale=True,
                                                          desc=dest.name, enabled=progress) as bar:
                    if mode == "wb":
                        # written after the truncation and before any byte: the .part and its record
                        # always describe the same version, whenever the run is killed
                        atomic_write_text(meta_path, json.dumps(
                            {"url": url, "validator": _validator(resp.headers), "total": total}) + "\n")
                    while block := resp.read(CHUNK):
                        f.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise http.client.IncompleteRead(b"", total - size)
            break
        except _Restart as exc:
            err: Exception = exc
            _discard(part, meta_path)
            restarts += 1
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:
                m = _UNSATISFIED_RANGE.fullmatch((exc.headers.get("Content-Range") or "").strip())
                if m and int(m[1]) == have:  # asked past the end of a file exactly this long
                    total = have
                    break
                # longer than the file, or a size the server does not say: these bytes are not that file
                err = DownloadError(f"HTTP 416 for bytes={have}- with Content-Range "
                                    f"{exc.headers.get('Content-Range')!r}: the {have}-byte .part is not the file")
                _discard(part, meta_path)
                restarts += 1
            elif 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            else:
                err = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            err = exc
        attempt += 1
        if attempt > retries:
            held = part.stat().st_size if part.exists() else 0
            kept = (f"{part} keeps the {held} bytes fetched so far and the next run resumes it" if held
                    else "nothing was kept")
            raise DownloadError(f"{url}: gave up after {retries} retries ({err}); {kept}")
        time.sleep(backoff_s * 2 ** (attempt - 1))
    size = part.stat().st_size
    if total is not None and size != total:
        _discard(part, meta_path)
        raise DownloadError(f"{url}: got {size} bytes, the server announced {total} (deleted {part})")
    digest = sha256_file(part)
    if sha256 and digest.lower() != sha256.lower():
        _discard(part, meta_path)
        raise DownloadError(f"{url}: sha256 mismatch: expected {sha256} ({expected_from}), got {digest} "
                            f"(deleted {part})")
    atomic_write_text(record, f"{digest}  {dest.name}\n")
    os.replace(part, dest)
    meta_path.unlink(missing_ok=True)
    return {"bytes": size, "sha256": digest, "retries": attempt, "resumed": resumed, "restarts": restarts}


# ------------------------------------------------------------------------------------------ extract
def _member_problem(info: zipfile.ZipInfo) -> str | None:
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return "symbolic link in the archive (refused)"
    if "\\" in name:
        name = name.replace("\\", "/")
    pure = PurePosixPath(name)
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path escapes the target folder"
    if ".." in pure.parts:
        return "path with '..' escapes the target folder"
    if info.file_size > RATIO_MIN_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        return (f"compression ratio {info.file_size / max(info.compress_size, 1):.0f}:1 over {MAX_RATIO}:1 "
                "(decompression bomb)")
    return None


def safe_extract(archive: str | Path, target: str | Path, *, on_error: str = "fail",
                 max_total_bytes: int = MAX_TOTAL_BYTES) -> list[BadFile]:
    """Extract `archive` inside `target`; returns the members left out under on_error=skip."""
    archive, target = Path(archive), Path(target).resolve()
    bad: list[BadFile] = []
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{archive}: not a readable zip ({exc})") from exc
    with zf:
        members = []
        declared = 0
        files: dict[Path, str] = {}  # where each file member lands -> its name in the archive
        dirs: dict[Path, str] = {}  # every folder the members need -> a member that needs it
        for info in zf.infolist():
            problem = _member_problem(info)
            dest = (target / info.filename.replace("\\", "/")).resolve()
            if problem is None and not dest.is_relative_to(target):
                problem = "resolves outside the target folder"
            if problem:
                bad.append(BadFile(f"{archive}!{info.filename}", problem))
            else:
                members.append((info, dest))
                if info.is_dir():
                    dirs.setdefault(dest, info.filename)
                elif dest in files:
                    # which copy would be meant is anybody's guess (extraction keeps the last)
                    raise DataError(f"{archive}!{info.filename}: the archive holds this name twice "
                                    f"(also as {files[dest]!r}); refused")
                else:
                    files[dest] = info.filename
                for parent in dest.parents:
                    if parent == target:
                        break
                    dirs.setdefault(parent, info.filename)
            declared += info.file_size
        for dest, name in files.items():
            if dest in dirs:
                raise DataError(f"{archive}!{name}: a file, and also a folder of {dirs[dest]!r} in the same "
                                "archive; refused")
        if declared > max_total_bytes:
            raise DataError(f"{archive}: would unpack to {declared} bytes, over the limit of "
                            f"{max_total_bytes} (decompression bomb?)")
        apply_policy(bad, on_error, None, stage="download")
        written = 0
        for info, dest in members:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            n = 0
            try:
                with zf.open(info) as src, open(dest, "wb") as out:
                    while block := src.read(CHUNK):
                        n += len(block)
                        written += len(block)
                        if n > info.file_size or written > max_total_bytes:
                            raise DataError(f"{archive}!{info.filename}: inflates past its declared size "
                                            "or the total limit (decompression bomb)")
                        out.write(block)
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise DataError(f"{archive}!{info.filename}: corrupt member ({exc})") from exc
    return bad


def _normalise(tmp: Path) -> Path:
    """Move whatever folder holds the layout to `tmp/CelebAMask-HQ`."""
    if (tmp / TOP / IMG_DIR).is_dir():
        return tmp / TOP
    candidates = sorted(p.parent for p in tmp.rglob(IMG_DIR) if p.is_dir())
    if not candidates:
        raise DataError(f"archive holds no {IMG_DIR}/ folder: not the CelebAMask-HQ release")
    src = candidates[0]
    if src == tmp:
        dst = tmp / TOP
        dst.mkdir()
        for entry in list(tmp.iterdir()):
            if entry != dst:
                os.replace(entry, dst / entry.name)
        return dst
    os.replace(src, tmp / TOP)
    return tmp / TOP


# ------------------------------------------------------------------------------------------- stage
def _cached_or_fetched(url: str, zpath: Path, pinned: str, *, retries: int, backoff_s: float) -> dict:
    """The cached zip when its sha256 is the expected one, else a fresh fetch; trust on first use.

    Expected is the pinned `download.sha256`, else the digest recorded in `<zip>.sha256` by the
    first complete download. A cached zip that matches neither fails (it changed or was damaged)
    instead of being used, or silently kept, for good.
    """
    record = zpath.with_name(zpath.name + ".sha256")
    recorded = read_digest_record(record)
    expected = pinned.lower() or recorded
    where = "download.sha256" if pinned else f"recorded in {record} at the first download"
    if zpath.is_file():
        digest = sha256_file(zpath)
        if expected and digest == expected:
            return {"cached": True, "sha256": digest}
        if expected and not pinned:
            raise DownloadError(
                f"{zpath}: sha256 is {digest}, but {record} recorded {recorded} when it was downloaded: "
                "the cached zip changed or is damaged. Delete both files to fetch it again, or pin "
                "download.sha256 in params.yaml")
        # pinned to another digest, or no digest known for it: fetch it again (and drop the stale copy
        # first, so that a run killed mid-fetch cannot leave it beside a newer record)
        print(f"download: {zpath} has sha256 {digest}, "
              + (f"not the pinned {expected}" if expected else f"and no {record}") + "; fetching it again",
              file=sys.stderr)
        zpath.unlink()
    got = fetch(url, zpath, sha256=expected, expected_from=where, retries=retries, backoff_s=backoff_s)
    if not expected:
        print(f"download: first download of {url}: sha256 {got['sha256']}, recorded in {record}; every later "
              f"use of the cached zip must match it. Pin it with `download.sha256: {got['sha256']}` in "
              "params.yaml to check it on other machines too.", file=sys.stderr)
    return got


def download(out: str | Path, *, source: str, url: str, sha256: str, archive: str, folder: str,
             synthetic_count: int, synthetic_size: int, seed: int, on_error: str, retries: int,
             backoff_s: float, workers: int, cache_dir: str | Path | None = None) -> dict:
    """Make `out/CelebAMask-HQ` from `source` (replaced atomically). Returns a summary.

    The settings are params.yaml's `download:` keys, all required (no default here to drift from it;
    "" is "not given" for url, sha256, archive and folder). `cache_dir` defaults to
    `<out>/../.download-cache`.
    """
    check_policy(on_error, "download.on_error")
    out = Path(out)
    sweep_stale(out)  # the temp/old folders of a killed run
    summary: dict = {"source": source, "out": str(out)}
    sha256 = sha256.strip().lower()
    if sha256 and not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise DataError(f"download.sha256: {sha256!r} is not a sha256 (64 hex digits, or \"\" to record the first download's)")
    if source not in SOURCES:
        raise DataError(f"download.source: {source!r} is not one of {', '.join(SOURCES)}")
    if source == "url":
        if not url:
            raise DataError("download.url: empty, but source is 'url'")
        cache = Path(cache_dir) if cache_dir else out.absolute().parent / ".download-cache"
        name = PurePosixPath(urllib.request.urlparse(url).path).name or "CelebAMask-HQ.zip"
        zpath = cache / name
        summary["fetch"] = _cached_or_fetched(url, zpath, sha256, retries=retries, backoff_s=backoff_s)
        archive, source = str(zpath), "archive"
    with atomic_dir(out) as tmp:
        if source == "archive":
            if not archive or not Path(archive).is_file():
                raise DataError(f"download.archive: {archive!r} is not a file")
            if sha256 and "fetch" not in summary:
                digest = sha256_file(archive)
                if digest != sha256.lower():
                    raise DataError(f"{archive}: sha256 mismatch: expected {sha256}, got {digest}")
            bad = safe_extract(archive, tmp / ".extract", on_error=on_error)
            root = _normalise(tmp / ".extract")
            os.replace(root, tmp / TOP)
            shutil.rmtree(tmp / ".extract")
            apply_policy(bad, on_error, tmp / "skipped.json", stage="download")
            summary["skipped"] = len(bad)
        elif source == "folder":
            if not folder:
                raise DataError("download.folder: empty, but source is 'folder'")
            src = find_root(folder)
            if not (src / MASK_DIR).is_dir():
                raise DataError(f"{src}: no {MASK_DIR}/ folder")
            # copy, not link: DVC may later move or protect its outs, which must not touch the source
            shutil.copytree(src, tmp / TOP, symlinks=False)
        else:
            from facesr.data.synthetic import generate

            generate(tmp, synthetic_count, seed=seed, size=synthetic_size, workers=workers)
        root = tmp / TOP
        summary["images"] = sum(1 for _ in os.scandir(root / IMG_DIR))
    return summary
