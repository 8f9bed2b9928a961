"""download: produce `<out>/CelebAMask-HQ/` in the official layout from a URL, a zip, a folder, or the
synthetic generator.

URL: the zip is fetched to `<cache>/<name>.part` with HTTP Range resume (after a dropped connection
within a run, and across runs: a killed run's .part is continued), retries with exponential backoff,
a size check against Content-Length/Content-Range, and a sha256 check; a checksum mismatch deletes the
.part (its bytes are wrong, resuming it cannot help) and fails. The verified zip is kept in the cache
so a re-run does not fetch 3 GB again.

Extraction is safe: every member is checked before anything is written (no absolute paths, no `..`,
no symlinks, nothing that resolves outside the target), and a decompression-bomb guard limits the
total uncompressed size and each member's compression ratio, counting the bytes actually inflated
(a lying header does not get past it). The zip's top folder may be `CelebAMask-HQ/` or the layout's
folders directly; both end as `<out>/CelebAMask-HQ/`.
"""

from __future__ import annotations

import http.client
import os
import shutil
import stat
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from facesr.data.errors import BadFile, DataError, apply_policy, check_policy
from facesr.data.layout import IMG_DIR, MASK_DIR, TOP, find_root
from facesr.data.util import sha256_file
from facesr.fileio import atomic_dir

SOURCES = ("url", "archive", "folder", "synthetic")
MAX_TOTAL_BYTES = 16 << 30  # the release unpacks to about 3 GB
MAX_RATIO = 200  # JPEG/PNG members barely compress; 200:1 is only reached by padding
RATIO_MIN_BYTES = 1 << 20  # tiny members may have any ratio
CHUNK = 1 << 16


class DownloadError(DataError):
    """The URL could not be fetched completely and correctly."""


# ---------------------------------------------------------------------------------------------- URL
def _total_from(resp) -> int | None:
    cr = resp.headers.get("Content-Range")  # "bytes 100-199/1000"
    if cr and "/" in cr and cr.rsplit("/", 1)[1].strip().isdigit():
        return int(cr.rsplit("/", 1)[1])
    cl = resp.headers.get("Content-Length")
    return int(cl) if cl and cl.isdigit() else None


def fetch(url: str, dest: str | Path, *, sha256: str = "", retries: int = 5, backoff_s: float = 1.0,
          timeout_s: float = 60.0, progress: bool = True) -> dict:
    """Download `url` to `dest` (resuming `dest.part`), verify size and sha256, return what was seen."""
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total: int | None = None
    attempt = 0
    resumed = 0
    off = not progress or os.environ.get("FACESR_NO_PROGRESS") == "1"
    while True:
        have = part.stat().st_size if part.exists() else 0
        req = urllib.request.Request(url, headers={"User-Agent": "facesr-download"})
        if have:
            req.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp:
                if have and resp.status == 200:
                    have = 0  # the server ignored Range: start over rather than append a second copy
                elif have and resp.status == 206:
                    resumed += 1
                total = _total_from(resp) or total
                with open(part, "ab" if have else "wb") as f, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=off
                ) as bar:
                    while block := resp.read(CHUNK):
                        f.write(block)
                        bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise http.client.IncompleteRead(b"", total - size)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # asked past the end: the .part is already whole
                break
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            err: Exception = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            err = exc
        attempt += 1
        if attempt > retries:
            raise DownloadError(f"{url}: gave up after {retries} retries ({err}); "
                                f"{part} keeps the {part.stat().st_size if part.exists() else 0} bytes "
                                "fetched so far and the next run resumes it")
        time.sleep(backoff_s * 2 ** (attempt - 1))
    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{url}: got {size} bytes, the server announced {total}")
    digest = sha256_file(part)
    if sha256 and digest.lower() != sha256.lower():
        part.unlink()
        raise DownloadError(f"{url}: sha256 mismatch: expected {sha256}, got {digest} (deleted {part})")
    os.replace(part, dest)
    return {"bytes": size, "sha256": digest, "retries": attempt, "resumed": resumed}


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
        for info in zf.infolist():
            problem = _member_problem(info)
            dest = (target / info.filename.replace("\\", "/")).resolve()
            if problem is None and not dest.is_relative_to(target):
                problem = "resolves outside the target folder"
            if problem:
                bad.append(BadFile(f"{archive}!{info.filename}", problem))
            else:
                members.append((info, dest))
            declared += info.file_size
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
def download(out: str | Path, *, source: str, url: str = "", sha256: str = "", archive: str = "",
             folder: str = "", synthetic_count: int = 96, synthetic_size: int = 512, seed: int = 0,
             on_error: str = "fail", cache_dir: str | Path | None = None, retries: int = 5,
             backoff_s: float = 1.0, workers: int = 1) -> dict:
    """Make `out/CelebAMask-HQ` from `source` (replaced atomically). Returns a summary."""
    check_policy(on_error, "download.on_error")
    out = Path(out)
    summary: dict = {"source": source, "out": str(out)}
    if source not in SOURCES:
        raise DataError(f"download.source: {source!r} is not one of {', '.join(SOURCES)}")
    if source == "url":
        if not url:
            raise DataError("download.url: empty, but source is 'url'")
        cache = Path(cache_dir) if cache_dir else out.absolute().parent / ".download-cache"
        name = PurePosixPath(urllib.request.urlparse(url).path).name or "CelebAMask-HQ.zip"
        zpath = cache / name
        if zpath.is_file() and (not sha256 or sha256_file(zpath) == sha256.lower()):
            summary["fetch"] = {"cached": True, "sha256": sha256_file(zpath)}
        else:
            summary["fetch"] = fetch(url, zpath, sha256=sha256, retries=retries, backoff_s=backoff_s)
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
