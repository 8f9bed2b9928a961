"""facesr.fileio: atomic files and folders on real files, modes under real umasks, leftovers swept."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from facesr.fileio import (
    atomic_dir,
    atomic_open,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    replace_dir,
    sweep_stale,
    temp_dir_beside,
)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------ files
@pytest.mark.parametrize("how", ["open-wb", "open-w", "open-fsync", "bytes", "text"])
def test_new_files_get_the_mode_plain_open_would_give(tmp_path, umask, how):
    path = tmp_path / "sub" / "out.bin"  # the parent is made too
    if how == "bytes":
        assert atomic_write_bytes(path, b"\x00\x01") == path
    elif how == "text":
        assert atomic_write_text(path, "a,b\r\n") == path
    else:
        with atomic_open(path, "w" if how == "open-w" else "wb", fsync=how == "open-fsync") as fh:
            fh.write("x" if how == "open-w" else b"x")
    with open(tmp_path / "plain", "wb"):
        pass
    assert _mode(path) == _mode(tmp_path / "plain") == 0o666 & ~umask
    assert os.umask(umask) == umask  # and the process umask is what it was
    assert _names(path.parent) == ["out.bin"]


def test_text_is_written_as_given(tmp_path):
    # CSV writers choose "\r\n" themselves: no newline translation on top
    atomic_write_text(tmp_path / "t.csv", "a,b\r\nc\n")
    assert (tmp_path / "t.csv").read_bytes() == b"a,b\r\nc\n"


def test_text_is_utf8_whatever_the_locale(tmp_path):
    # a C locale without UTF-8 mode: open() would encode as ASCII and fail on the first accent
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0",
           "PYTHONPATH": os.pathsep.join(sys.path)}
    code = ("import sys; from facesr.fileio import atomic_write_text; "
            "atomic_write_text(sys.argv[1], '\\u00c5ngstr\\u00f6m, na\\u00efve')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "t.txt")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "t.txt").read_bytes() == "Ångström, naïve".encode()


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_an_exception_keeps_the_old_file_and_leaves_no_temp_file(tmp_path, exc):
    path = tmp_path / "state.json"
    path.write_text("old")
    with pytest.raises(exc):
        with atomic_open(path, "w") as fh:
            fh.write("half of the new")
            fh.flush()
            raise exc()
    assert path.read_text() == "old" and _names(tmp_path) == ["state.json"]


def test_a_finished_write_replaces_the_file_in_one_rename(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    before = path.stat().st_ino
    with atomic_open(path) as fh:
        fh.write(b"new")
        assert path.read_bytes() == b"old"  # readers see the old file until the rename
    assert path.read_bytes() == b"new" and path.stat().st_ino != before and _names(tmp_path) == ["f"]


@pytest.mark.parametrize("mode", ["a", "r+b", "x", "w+"])
def test_only_write_modes_are_accepted(tmp_path, mode):
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_open(tmp_path / "f", mode):
            pass
    assert _names(tmp_path) == []


def _process_umask() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_the_umask_never_changes_even_for_an_instant(tmp_path):
    """Another thread creating a file in that instant would get the wrong mode (os.umask sets to read)."""
    seen: set[int] = set()

    def after_every_c_call(frame, event, arg):
        if event == "c_return":
            seen.add(_process_umask())

    old = os.umask(0o077)
    sys.setprofile(after_every_c_call)
    try:
        atomic_write_bytes(tmp_path / "f", b"x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        sys.setprofile(None)
        os.umask(old)
    assert seen == {0o077}
    assert _mode(tmp_path / "f") == 0o600 and _mode(tmp_path / "d") == 0o700


# ---------------------------------------------------------------------------------------- folders
def test_atomic_dir_replaces_the_target_and_gets_the_umask_mode(tmp_path, umask):
    target = tmp_path / "out"
    (target / "stale").mkdir(parents=True)
    with atomic_dir(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.tmp-")
        (tmp / "new.txt").write_text("new")
        assert (target / "stale").is_dir()  # the old output stays until the new one is whole
    os.mkdir(tmp_path / "plain")
    assert _names(target) == ["new.txt"] and _mode(target) == _mode(tmp_path / "plain") == 0o777 & ~umask
    assert _names(tmp_path) == ["out", "plain"]


def test_a_failed_atomic_dir_keeps_the_old_target_and_no_temp_folder(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "good.txt").write_text("good")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("killed halfway")
    assert _names(target) == ["good.txt"] and _names(tmp_path) == ["out"]


def test_replace_dir_puts_a_new_folder_in_place_of_an_old_one(tmp_path):
    target, tmp = tmp_path / "out", temp_dir_beside(tmp_path / "out")
    target.mkdir()
    (target / "old.txt").write_text("old")
    (tmp / "new.txt").write_text("new")
    replace_dir(tmp, target)
    assert _names(target) == ["new.txt"] and _names(tmp_path) == ["out"]


def test_replace_dir_that_fails_leaves_the_old_target_where_it_was(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "good.txt").write_text("good")
    with pytest.raises(FileNotFoundError):
        replace_dir(tmp_path / ".out.tmp-gone", target)  # the new folder vanished (or never was)
    assert _names(target) == ["good.txt"] and _names(tmp_path) == ["out"]


def test_temp_dir_beside_is_hidden_empty_and_on_the_same_parent(tmp_path):
    tmp = temp_dir_beside(tmp_path / "deep" / "out")
    assert tmp.parent == tmp_path / "deep" and tmp.name.startswith(".out.tmp-") and _names(tmp) == []


# ------------------------------------------------------------------------------------------ sweep
def test_sweep_stale_removes_a_killed_writers_leftovers_and_nothing_else(tmp_path):
    outside = tmp_path / "elsewhere"
    (outside / "keep").mkdir(parents=True)
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    stale = [".out.tmp-abc", ".out.old-123", ".out.tmp-file", ".out.tmp-link"]
    (work / ".out.tmp-abc" / "deep").mkdir(parents=True)
    (work / ".out.old-123").mkdir()
    (work / ".out.tmp-file").write_bytes(b"x")
    (work / ".out.tmp-link").symlink_to(outside, target_is_directory=True)
    kept = ["out", ".outx.tmp-1", "out.tmp-1", ".out.tmpx", ".out.oldx", ".other.tmp-1", "x.out.tmp-1", ".out"]
    for name in kept[1:]:
        (work / name).mkdir()
    removed = sweep_stale(work / "out")
    assert sorted(p.name for p in removed) == sorted(stale)
    assert _names(work) == sorted(kept)
    assert _names(outside) == ["keep"]  # a link is removed, never followed


def test_sweep_stale_takes_a_name_with_glob_characters_literally(tmp_path):
    for name in (".run[1].tmp-a", ".run1.tmp-a", ".run*.old-b"):
        (tmp_path / name).mkdir()
    assert [p.name for p in sweep_stale(tmp_path / "run[1]")] == [".run[1].tmp-a"]
    assert _names(tmp_path) == [".run*.old-b", ".run1.tmp-a"]


def test_sweep_stale_of_a_target_in_a_missing_folder_is_a_no_op(tmp_path):
    assert sweep_stale(tmp_path / "no" / "out") == []


def test_what_a_killed_atomic_dir_leaves_is_what_sweep_stale_removes(tmp_path):
    target = tmp_path / "out"
    tmp = temp_dir_beside(target)  # a run killed here leaves this folder
    (tmp / "f").write_text("x")
    fd_path = tmp_path / ".out.tmp-half"  # and atomic_open's temp file of the same target
    fd_path.write_bytes(b"half")
    assert sorted(sweep_stale(target)) == sorted([tmp, fd_path]) and _names(tmp_path) == []


class _DocError(ValueError):
    pass


def test_read_json_names_the_file_in_the_callers_error_type(tmp_path):
    doc = tmp_path / "eval.json"
    with pytest.raises(_DocError, match=r"eval\.json: run it first"):
        read_json(doc, _DocError, missing="run it first")
    doc.write_text('{"psnr": 1')
    with pytest.raises(_DocError, match=r"eval\.json: not valid JSON"):
        read_json(doc, _DocError)
    doc.write_bytes(b"\xff\xfe")
    with pytest.raises(_DocError, match="not valid JSON"):
        read_json(doc, _DocError)
    doc.write_text('{"psnr": 1.5}')
    assert read_json(doc, _DocError) == {"psnr": 1.5}


@pytest.mark.parametrize("size", [0, 5, (1 << 20) + 3])
def test_sha256_file_is_hashlib_of_the_bytes(tmp_path, size):
    import hashlib

    from facesr.fileio import sha256_file

    data = os.urandom(size)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    # a small chunk reads the file in many blocks: the digest must not depend on the block size
    assert sha256_file(path) == sha256_file(path, chunk=7) == hashlib.sha256(data).hexdigest()
