"""The `pipeline` flow: run `dvc repro` (DVC decides which stages are stale), now or on a schedule.

    python -m flows.pipeline run  [--target report] [--force]      # one repro, as a flow run
    python -m flows.pipeline run --profile mini-cpu                 # = dvc exp run -S profile=mini-cpu
    python -m flows.pipeline serve --cron "0 3 * * *"               # deployment pipeline/nightly

Each stage's command is itself a flow (``python -m flows.<name>``), so with a Prefect
server set (PREFECT_API_URL) a scheduled run shows the `pipeline` flow run and one flow run per stage
that DVC reran. The subprocess inherits the environment, so the stages report to the same server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CRON = "0 3 * * *"
DEPLOYMENT = "nightly"


class PipelineError(RuntimeError):
    """`dvc repro` exited non-zero; the message holds its exit code and last output lines."""


def dvc_executable() -> str:
    """The dvc beside this interpreter (a venv), else the one on PATH."""
    local = Path(sys.executable).with_name("dvc")
    found = str(local) if local.is_file() else shutil.which("dvc")
    if found is None:
        raise PipelineError("dvc not found beside the interpreter or on PATH; install the project (make setup)")
    return found


def repro_command(target: str | None = None, force: bool = False, profile: str | None = None) -> list[str]:
    """`dvc repro`, or with a profile `dvc exp run -S profile=<name>` (a DVC experiment, see
    `dvc exp show`; the workspace keeps its results and params.yaml the profile key)."""
    cmd = [dvc_executable(), "repro"] if profile is None else [dvc_executable(), "exp", "run", "-S", f"profile={profile}"]
    if force:
        cmd.append("--force")
    if target:
        cmd.append(target)
    return cmd


def stage_api_url() -> str | None:
    """With no PREFECT_API_URL, the URL of this process's ephemeral server: the stages report there
    instead of each starting its own (20-40 s apiece on a busy 2-core machine, for 7 stages)."""
    if os.environ.get("PREFECT_API_URL"):
        return None  # inherited as is
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    return server.api_url if server.running else None


@task(name="run-dvc-repro", cache_policy=NO_CACHE)
def run_dvc_repro(repo: str, target: str | None = None, force: bool = False, profile: str | None = None) -> list[str]:
    """Stream `dvc repro` into the flow's log; return the names of the stages it ran."""
    logger = get_run_logger()
    env = dict(os.environ)
    # Stage commands are `python -m flows.<name> ...`: put this interpreter's bin first so they use it.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    shared = stage_api_url()
    if shared:
        env["PREFECT_API_URL"] = shared
    cmd = repro_command(target, force, profile)
    logger.info("%s (in %s)", " ".join(cmd), repo)
    ran: list[str] = []
    tail: list[str] = []
    with subprocess.Popen(
        cmd, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        for line in proc.stdout or ():
            line = line.rstrip("\n")
            print(line, flush=True)
            tail = (tail + [line])[-30:]
            if line.startswith("Running stage '"):
                ran.append(line.split("'")[1])
        code = proc.wait()
    if code != 0:
        raise PipelineError(f"dvc repro failed with exit code {code}; last output:\n" + "\n".join(tail))
    logger.info("stages run: %s", ", ".join(ran) or "none (everything up to date)")
    return ran


@flow(name="pipeline", log_prints=False)
def pipeline_flow(repo: str = str(REPO), target: str | None = None, force: bool = False,
                  profile: str | None = None) -> list[str]:
    return run_dvc_repro(repo, target, force, profile)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run `dvc repro` once, as a `pipeline` flow run")
    run.add_argument("--repo", default=str(REPO))
    run.add_argument("--target", default=None, help="a dvc.yaml stage to reproduce up to (default: all)")
    run.add_argument("--force", action="store_true", help="rerun stages even when up to date")
    run.add_argument("--profile", default=None,
                     help="run as `dvc exp run -S profile=<name>` (profiles/<name>.yaml over params.yaml)")
    serve = sub.add_parser("serve", help="serve the deployment pipeline/<name> on a cron schedule")
    serve.add_argument("--cron", default=DEFAULT_CRON, help=f"cron schedule (default {DEFAULT_CRON!r})")
    serve.add_argument("--name", default=DEPLOYMENT, help=f"deployment name (default {DEPLOYMENT!r})")
    serve.add_argument("--repo", default=str(REPO))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        try:
            pipeline_flow(repo=args.repo, target=args.target, force=args.force, profile=args.profile)
        except PipelineError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    # Blocks, polling the server for scheduled or triggered runs, until interrupted.
    pipeline_flow.serve(name=args.name, cron=args.cron, parameters={"repo": args.repo})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
