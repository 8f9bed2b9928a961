"""A real local cluster (infra/local/up) on free ports in a tmp state dir, always stopped after.

A module, not conftest, so tests can import it (`from infra_cluster import ...`)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "infra" / "local"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ray_base() -> int:
    """A base port whose +0..+16 block is free and clear of Ray's worker range (10002-19999)."""
    for _ in range(200):
        base = random.randrange(20000, 30000, 20)
        if all(_free(base + i) for i in range(17)):
            return base
    raise RuntimeError("no free block of 17 ports in 20000-30000")


def live_group_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True, check=True).stdout
    return [int(p) for p, g, st in (line.split()[:3] for line in out.splitlines()) if int(g) == pgid and not st.startswith("Z")]


def pgrep(pattern: str) -> list[str]:
    """Live processes whose command line contains `pattern` (zombies excluded: they hold nothing)."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True, check=True).stdout
    hits = []
    for line in out.splitlines():
        pid, stat, args = line.strip().split(None, 2)
        if pattern in args and not stat.startswith("Z") and int(pid) != os.getpid() and "ps -eo" not in args:
            hits.append(line.strip())
    return hits


@dataclass
class LocalCluster:
    state: Path
    services: list[str]
    env: dict[str, str]
    ray_temp: Path
    groups: dict[str, int] = field(default_factory=dict)
    up_output: str = ""

    def script(self, name: str, *, check: bool = True, timeout: float = 300,
               services: list[str] | None = None) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if services is not None:
            env["FACESR_SERVICES"] = " ".join(services)
        proc = subprocess.run([str(LOCAL / name)], env=env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"infra/local/{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def pgid(self, service: str) -> int:
        return int((self.state / f"{service}.pid").read_text())

    @property
    def exports(self) -> dict[str, str]:
        """The variables of the env.sh that `up` writes (what a user sources)."""
        out = {}
        for line in (self.state / "env.sh").read_text().splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                out[k] = v
        return out

    def leftovers(self) -> list[str]:
        """Processes still alive from this cluster: its groups, its state dir, its Ray temp dir."""
        left = [f"{s}: pid {p}" for s, g in self.groups.items() for p in live_group_pids(g)]
        return left + pgrep(str(self.state)) + pgrep(str(self.ray_temp))


def make_cluster(tmp_path: Path, services: list[str]) -> LocalCluster:
    ray_base = free_ray_base()
    state = tmp_path / "services"
    env = dict(os.environ)
    env.update({
        "FACESR_SERVICES_DIR": str(state),
        "FACESR_SERVICES": " ".join(services),
        "FACESR_PREFECT_PORT": str(free_port()),
        "FACESR_MLFLOW_PORT": str(free_port()),
        "FACESR_RAY_PORT": str(ray_base),
        "FACESR_RAY_TEMP_DIR": f"/tmp/fsr-t{ray_base}",
        "FACESR_RAY_DASHBOARD": "false",  # two cores: the dashboard would compete with the trials
        "FACESR_STOP_TIMEOUT": "8",
    })
    for var in ("PREFECT_API_URL", "RAY_ADDRESS"):
        env.pop(var, None)
    return LocalCluster(state=state, services=services, env=env, ray_temp=Path(env["FACESR_RAY_TEMP_DIR"]))


@contextmanager
def running_cluster(base: Path, services: list[str]) -> Iterator[LocalCluster]:
    """`infra/local/up` the services; `down` runs on exit even when the body failed."""
    cl = make_cluster(base, services)
    try:
        proc = cl.script("up", check=False)
        for s in services:
            if (cl.state / f"{s}.pid").is_file():
                cl.groups[s] = cl.pgid(s)
        if proc.returncode != 0:
            raise AssertionError(f"infra/local/up exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        cl.up_output = proc.stdout
        yield cl
    finally:
        cl.script("down", check=False)
