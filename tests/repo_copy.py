"""Copies of the working tree for end-to-end tests (tests/test_pipeline.py, tests/flows, tests/infra), and
the helpers around the tiny repro that tests/conftest.py's `tiny_repro` runs once per session.

`tests/` is on sys.path (pytest's rootdir-conftest insertion), so they import it by name.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the stages of dvc.yaml in the order `dvc repro` runs them
STAGES = ["download", "merge_masks", "downscale", "train", "train_gan", "evaluate", "report"]


def copy_repo(dest: Path) -> Path:
    """The working tree as a fresh clone would have it (tracked + new unignored files, no tests/),
    git-initialised with one commit (`dvc exp run` needs a baseline commit)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file() and not rel.startswith(("prompt", "tests/")):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-c", "user.name=facesr-test", "-c", "user.email=test@facesr.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "copy"], cwd=dest, check=True)
    return dest


def copy_reproduced(src: Path, dest: Path) -> Path:
    """A copy of a reproduced tree (`tiny_repro`) that DVC sees as up to date: everything, .git,
    .dvc/cache (its run cache too), dvc.lock and the outputs, mtimes kept (copy2). Outputs are plain
    copies (no cache links: .dvc/config keeps DVC's default reflink,copy), so a stage that reruns in the
    copy never writes through to the original. Fails if `dvc status` finds anything to do."""
    shutil.copytree(src, dest, symlinks=True)
    status = subprocess.run([str(BIN / "dvc"), "status", "--json"], cwd=dest, capture_output=True, text=True,
                            timeout=300)
    if status.returncode != 0 or json.loads(status.stdout or "{}") != {}:
        raise AssertionError(f"{dest}: the copy of {src} is not up to date for DVC:\n{status.stdout}{status.stderr}")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, wait: float = 20) -> None:
    """SIGINT to the process group of `proc` (started with start_new_session), SIGKILL after `wait` s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def ran_stages(output: str) -> list[str]:
    """The stages `dvc repro` (or a dry run of it) ran, in order, from its stdout."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
