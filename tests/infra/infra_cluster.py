"""A real local cluster (infra/local/up) on free ports in a tmp state dir, always stopped after.

A module, not conftest, so tests can import it (`from infra_cluster import ...`)."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from repo_copy import copy_repo  # noqa: F401  (re-exported for test_repro_cluster)

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "infra" / "local"
BIN = Path(sys.executable).parent


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


def _ps() -> list[tuple[int, int, int, str, str]]:
    """(pid, ppid, pgid, start time, command line) of every live (non-zombie) process."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,pgid=,stat=,lstart=,args="], capture_output=True, text=True,
                         check=True).stdout
    procs = []
    for line in out.splitlines():
        pid, ppid, pgid, stat, *rest = line.split(None, 9)
        if not stat.startswith("Z"):
            procs.append((int(pid), int(ppid), int(pgid), " ".join(rest[:5]), rest[5] if len(rest) > 5 else ""))
    return procs


def node_processes(pgid: int) -> list[tuple[int, str, str]]:
    """(pid, start time, command line) of a service's process group and of every descendant.

    Ray's raylet starts its workers (the trials) in process groups of their own, so a node is
    its group plus the raylet's children."""
    procs = _ps()
    members = {p[0] for p in procs if p[2] == pgid}
    grew = True
    while grew:
        new = {p[0] for p in procs if p[1] in members} - members
        members |= new
        grew = bool(new)
    return [(p[0], p[3], p[4]) for p in procs if p[0] in members]


def ray_tasks(pgid: int) -> list[str]:
    """Command lines of the Ray workers of a node busy with a task or actor (a Tune trial is the
    actor `ray::ImplicitFunc`). Ray retitles its workers `ray::<what they run>`, `ray::IDLE`
    when pooled; the node's agents (`ray::DashboardAgent`, ...) are in its own group."""
    group = set(live_group_pids(pgid))
    return [args for pid, _, args in node_processes(pgid) if args.startswith("ray::")
            and not args.startswith("ray::IDLE") and pid not in group]


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


def _tcp_listeners() -> dict[int, tuple[str, int]]:
    """socket inode -> (address, port) of every listening TCP socket of this network namespace."""
    out = {}
    for name in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            hexaddr, hexport = fields[1].split(":")
            raw = bytes.fromhex(hexaddr)
            # the kernel prints the address as 32-bit words in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            addr = ipaddress.ip_address(raw)
            out[int(fields[9])] = (str(addr), int(hexport, 16))
    return out


def is_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def listening(pids: dict[int, str]) -> set[tuple[int, str, str, int]]:
    """(pid, command line, address, port) of the TCP sockets that processes `pids` listen on
    (read from /proc: a process's fds name the socket inodes, /proc/net/tcp{,6} their addresses)."""
    table = _tcp_listeners()
    found = set()
    for pid, args in pids.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except (FileNotFoundError, PermissionError):
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[len("socket:["):-1])
                if inode in table:
                    found.add((pid, args[:120], *table[inode]))
    return found


@dataclass
class LocalCluster:
    state: Path
    services: list[str]
    env: dict[str, str]
    ray_temp: Path
    pg_dir: Path
    groups: dict[str, int] = field(default_factory=dict)
    up_output: str = ""
    seen: set[tuple[int, str, str]] = field(default_factory=set)
    sockets: dict[str, set[tuple[int, str, str, int]]] = field(default_factory=dict)

    def track_sockets(self) -> None:
        """Remember, per service, every TCP socket its processes (Ray's workers included) listen on now."""
        for service, pgid in self.groups.items():
            procs = {pid: args for pid, _, args in node_processes(pgid)}
            self.sockets.setdefault(service, set()).update(listening(procs))

    def track(self) -> None:
        """Remember every process of the cluster now alive, Ray workers outside the services'
        groups included, so that `leftovers` can check each one is gone after `down`."""
        for pgid in self.groups.values():
            self.seen.update(node_processes(pgid))

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
        alive = {(pid, start) for pid, _, _, start, _ in _ps()}
        left += [f"pid {pid}: {args}" for pid, start, args in sorted(self.seen) if (pid, start) in alive]
        return left + pgrep(str(self.state)) + pgrep(str(self.ray_temp)) + pgrep(str(self.pg_dir))


# What a client of one cluster must not carry into another (a developer's shell may have sourced an env.sh).
CLIENT_VARS = ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME",
               "MLFLOW_TRACKING_PASSWORD", "RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")


def make_cluster(tmp_path: Path, services: list[str], **settings: str) -> LocalCluster:
    """A cluster's settings (free ports, its own dirs) for `infra/local/*`; `settings` are more
    FACESR_* variables (e.g. FACESR_RAY_HEAD_CPUS="2")."""
    ray_base = free_ray_base()
    state = tmp_path / "services"
    env = dict(os.environ)
    env.update({
        "FACESR_SERVICES_DIR": str(state),
        "FACESR_SERVICES": " ".join(services),
        "FACESR_PREFECT_PORT": str(free_port()),
        "FACESR_MLFLOW_PORT": str(free_port()),
        "FACESR_POSTGRES_PORT": str(free_port()),
        "FACESR_RAY_PORT": str(ray_base),
        "FACESR_RAY_TEMP_DIR": f"/tmp/fsr-t{ray_base}",
        # pytest's tmp dirs are 0700: as root, Postgres (run as the postgres user) could not reach
        # a data folder there
        "FACESR_POSTGRES_DIR": f"/tmp/fsr-pg{ray_base}",
        "FACESR_RAY_DASHBOARD": "false",  # two cores: the dashboard would compete with the trials
        "FACESR_STOP_TIMEOUT": "8",
    })
    env.update(settings)
    for var in CLIENT_VARS:
        env.pop(var, None)
    return LocalCluster(state=state, services=services, env=env, ray_temp=Path(env["FACESR_RAY_TEMP_DIR"]),
                        pg_dir=Path(env["FACESR_POSTGRES_DIR"]))


@contextmanager
def running_cluster(base: Path, services: list[str], **settings: str) -> Iterator[LocalCluster]:
    """`infra/local/up` the services; `down` runs on exit even when the body failed."""
    cl = make_cluster(base, services, **settings)
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
        # a test cluster's database goes with it (a user's stays in the state dir)
        shutil.rmtree(cl.pg_dir, ignore_errors=True)


NODE_IDS = """
import json, os, ray
ray.init(address=os.environ["RAY_ADDRESS"], logging_level="ERROR", log_to_driver=False)
out = {n["NodeID"]: [r for r in ("node_head", "node_worker") if r in n["Resources"]] for n in ray.nodes() if n["Alive"]}
print(json.dumps({roles[0]: node for node, roles in out.items() if roles}))
"""


def cluster_nodes(cl: LocalCluster) -> dict[str, str]:
    """node_head / node_worker -> Ray node id of the cluster's live nodes, asked by a fresh driver
    that joins through the exported variables (a new process reads the cluster's auth token)."""
    proc = subprocess.run([sys.executable, "-c", NODE_IDS], env=cl.env | cl.exports, cwd=cl.state,
                          capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise AssertionError(f"could not list the cluster's nodes:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextmanager
def session(cmd: list[str], *, log: Path, **kwargs) -> Iterator[subprocess.Popen]:
    """Popen `cmd` in a session of its own, output to `log`; on exit its whole group is SIGKILLed
    if anything of it is left (a failed or timed-out test must not leave a driver behind)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
        try:
            yield proc
        finally:
            if live_group_pids(proc.pid):
                os.killpg(proc.pid, signal.SIGKILL)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass


def wait_for(proc: subprocess.Popen, timeout: float, log: Path, every=None) -> int:
    """Wait for `proc`, calling `every()` each second; on timeout fail with the tail of its log
    (the group is killed by `session`)."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        if every is not None:
            every()
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.args} still running after {timeout:.0f} s:\n{log.read_text()[-6000:]}")
        time.sleep(1)
    return proc.returncode
