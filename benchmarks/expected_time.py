"""Expected training time of a profile, from measured training throughput.

    .venv/bin/python benchmarks/expected_time.py [--profile thesis] [--throughput benchmarks/train_throughput.json]

Reads the profile's merged `train` and `train_gan` sections (params.yaml + profiles/<name>.yaml, as the
stages do) and the seconds per step that `benchmarks/train_throughput.py` measured for each device and
setting, and prints the train and train_gan stage times: on one device the train stage's trials run
one after another; on a Ray cluster with one device per trial they run side by side (the slowest trial
sets the time). A step measured at another batch size is scaled by images. The benchmark times the
models at their constructor defaults (the thesis' sizes), so the figures hold for the thesis profile;
the script says so when a profile's models differ. Validation, checkpoints and
data loading are not counted (a few percent at the thesis' val_every).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesr.config import load_section  # noqa: E402


def trial_steps(section: dict) -> dict[str, tuple[str, int, int]]:
    """variant -> (model, steps, batch) for every trial of one search point."""
    loop = section["loop"]
    out = {}
    for name, spec in section["variants"].items():
        lp = {**loop, **spec.get("loop", {})}
        out[name] = (spec.get("model", name), int(lp["steps"]), int(lp["batch_size"]))
    return out


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="thesis")
    ap.add_argument("--throughput", default=str(REPO / "benchmarks" / "train_throughput.json"))
    args = ap.parse_args(argv)
    bench = json.loads(Path(args.throughput).read_text())
    sections = {s: load_section(REPO / "params.yaml", s, profile=args.profile) for s in ("train", "train_gan")}
    train = trial_steps(sections["train"])
    gan_loop = sections["train_gan"]["loop"]
    settings: dict[tuple, dict[str, dict]] = {}
    for r in bench["results"]:
        key = (r["device"], r["precision"], r["channels_last"], r["compile"])
        settings.setdefault(key, {})[r["model"]] = r
    print(f"Profile `{args.profile}`; throughput from `{bench['command']}` on {bench['machine']} "
          f"(torch {bench['torch']}).\n")
    print("| device | precision | compile | train: one device | train: Ray, one device per trial "
          "| train_gan | total, one device |")
    print("|---|---|---|---|---|---|---|")
    for (device, precision, _cl, compile_), rows in settings.items():
        per_trial = {}
        for name, (model, steps, batch) in train.items():
            if model not in rows:
                break
            r = rows[model]
            per_trial[name] = steps * r["seconds_per_step"] * batch / r["batch"]
        if len(per_trial) != len(train) or "gan" not in rows:
            continue
        g = rows["gan"]
        gan = int(gan_loop["steps"]) * g["seconds_per_step"] * int(gan_loop["batch_size"]) / g["batch"]
        serial, parallel = sum(per_trial.values()), max(per_trial.values())
        print(f"| {device} | {precision} | {compile_} | {hours(serial)} | {hours(parallel)} | {hours(gan)} "
              f"| {hours(serial + gan)} |")
    import inspect

    from facesr.models import MODELS

    for name, spec in sections["train"]["variants"].items():
        defaults = {k: v.default for k, v in inspect.signature(MODELS[spec.get("model", name)]).parameters.items()}
        differ = {k: v for k, v in spec["model_args"].items() if defaults.get(k) != v}
        if differ:
            print(f"\nnote: {name} differs from the benchmark's thesis-size model ({differ}); its time is not "
                  "what this table says (measure that size with train_throughput.py)")
    print("\ntrials: " + ", ".join(f"{n} ({m}, {s:,} steps of batch {b})" for n, (m, s, b) in train.items())
          + f"; train_gan: {int(gan_loop['steps']):,} steps of batch {int(gan_loop['batch_size'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
