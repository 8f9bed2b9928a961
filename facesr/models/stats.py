"""Measure the models (parameters, MACs, the prior branch layer by layer) and write docs/architecture.md.

    python -m facesr.models.stats --write docs/architecture.md [--params params.yaml]

Every number in the document comes from building the models and running one forward pass at batch 1:
parameter counts from ``parameters()``, output shapes from forward hooks, MACs from
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs / 2; it counts convolutions and matrix products,
not element-wise ops, pooling or interpolation). Without ``--write`` the markdown goes to stdout.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from facesr.models import build_model
from facesr.models.method1 import HourglassResidual

LR_SHAPE = (1, 3, 16, 16)
HR_SHAPE = (1, 3, 128, 128)


def count_params(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def measure_macs(model: nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """Total MACs of ``model(x)`` and MACs per module path (``Class.sub.path``), at x's batch size."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    per_module = {name: sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()}
    return counter.get_total_flops() // 2, per_module


def _module_macs(per_module: dict[str, int], root: str, path: str) -> int:
    return per_module.get(f"{root}.{path}" if path else root, 0)


def prior_layer_table(model: nn.Module) -> list[dict[str, Any]]:
    """One row per layer of method1's prior branch, in execution order, from forward hooks.

    A layer is a leaf module, or a whole Newell residual module (its 9 inner layers are one row).
    """
    branch = model.prior_branch
    rows: list[dict[str, Any]] = []
    hooks = []
    units = {name: m for name, m in branch.named_modules()
             if isinstance(m, HourglassResidual) or (len(list(m.children())) == 0 and name)}
    inside_unit = {name for name in units
                   if any(name.startswith(u + ".") for u, m in units.items() if isinstance(m, HourglassResidual))}
    for name, module in units.items():
        if name in inside_unit:
            continue

        def hook(mod, _inp, out, name=name):
            rows.append({"name": name, "type": type(mod).__name__, "shape": tuple(out.shape[1:]),
                         "params": count_params(mod)})

        hooks.append(module.register_forward_hook(hook))
    try:
        _, per_module = measure_macs(model, torch.rand(*LR_SHAPE))
    finally:
        for h in hooks:
            h.remove()
    root = type(model).__name__
    for row in rows:
        row["macs"] = _module_macs(per_module, root, f"prior_branch.{row['name']}")
    return rows


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def _fmt_macs(n: int) -> str:
    if n == 0:
        return "0"
    return f"{n / 1e9:.3f} G" if n >= 1e9 else f"{n / 1e6:.1f} M"


def _args_text(args: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in args.items()) if args else "(defaults)"


def demo_configs(params_path: Path | None) -> tuple[dict[str, dict], dict]:
    """The generator variants of params.yaml's `train` section and the discriminator args of `train_gan`."""
    if params_path is None or not params_path.is_file():
        return {}, {}
    from facesr.config import load_params

    params = load_params(params_path)
    variants = {}
    for key, spec in (params.get("train", {}).get("variants") or {}).items():
        if isinstance(spec, dict) and "model" in spec:
            variants[key] = {"model": spec["model"], "model_args": dict(spec.get("model_args") or {})}
    disc = dict(((params.get("train_gan") or {}).get("loop") or {}).get("discriminator_args") or {})
    return variants, disc


def model_rows(configs: list[tuple[str, str, dict]]) -> list[dict[str, Any]]:
    """Parameters and MACs of each (label, model name, model_args); method1 also per branch."""
    rows = []
    for label, name, args in configs:
        model = build_model(name, **args).eval()
        x = torch.rand(*(HR_SHAPE if name == "discriminator" else LR_SHAPE))
        total, per_module = measure_macs(model, x)
        row = {"label": label, "model": name, "args": args, "params": count_params(model), "macs": total,
               "parts": []}
        if name == "method1":
            root = type(model).__name__
            for part in ("sr_branch", "prior_branch", "fusing"):
                row["parts"].append({"part": part, "params": count_params(getattr(model, part)),
                                     "macs": _module_macs(per_module, root, part)})
        rows.append(row)
    return rows


THESIS_VS_SPEC = """\
| Part | Thesis | Here (SPEC.md and this code) |
|---|---|---|
| SR branch last conv | Table 3.1: 128x128x64 -> 128x128x**11** | -> **3** channels (the coarse SR image); the fusing module's input is 3 + 11 channels, so "11" is a typo |
| SR branch head/tail | "conv1", "conv2" (kernel unstated) | SRResNet's 9x9 convs; conv3x3 + BN + global skip after the blocks, as SRResNet |
| Upsampling | three PixelShuffle stages, 64 channels in and out | conv3x3 C -> 4C, PixelShuffle(2), PReLU per stage (SRResNet) |
| Basic block F5 | "5x5" via dilated convolution | conv3x3 with dilation 2 (a 5x5 field, 9 weights per channel pair) |
| Attention gate | softmax over channels (eq. 3.3) | softmax default; `attention: sigmoid` (SE-Net) and `none` (w = 1, no FC layers) for the ablation |
| Attention FC size | reduction unstated | C -> max(1, C // r) -> C, r = 16 (SE-Net's default): 4 hidden units at C = 64 |
| Prior branch | Table 3.2 missing from the source; "hourglass" | FSRNet's prior estimation network: bicubic x8 -> conv7x7/2 + BN + ReLU -> 3 Newell residual modules -> 2 stacked hourglasses (depth 4) -> conv1x1 -> 11 maps at 64x64 -> bilinear x2 -> sigmoid |
| Hourglass stacking | Newell et al. (intermediate supervision) | no intermediate supervision (the thesis has one prior loss): each stage is hourglass -> residual -> conv1x1-BN-ReLU, added to its input |
| Parsing maps | "jawline, eyebrows, eyes, nose, mouth and ears" | 11 channels: skin, l_brow, r_brow, l_eye, r_eye, nose, mouth, u_lip, l_lip, l_ear, r_ear; sigmoid outputs (multi-label, not a softmax) |
| Fusing module | concat -> conv1 -> residual block -> conv2 | the same, plus a PReLU after conv1 (SRResNet's head; else conv1 and the block's first conv compose linearly); residual block = SRResNet's |
| Without the prior | - | `prior: false` drops the branch; the output (an `SROutput`) has `parsing=None` and `predicts_parsing` is false, the fusing conv takes 3 channels, ContentLoss drops the parsing term |
| Discriminator output | Dense 1 + sigmoid | Dense 1 (logits); the sigmoid lives in BCE-with-logits |
| Losses | MSE terms summed (eq. 3.8); eq. 3.12 summed over N | means over all elements and over the batch; weights from params (1, 1, 1; GAN 1, 6e-3, 1e-3) |
| VGG loss layer | "i-th conv, before the j-th pooling" of VGG19 | relu5_4 of VGG19 (SRGAN's phi_5,4, after the activation); vgg16 -> relu5_3; ImageNet mean/std on [0, 1] input; features not rescaled (beta = 6e-3 = SRGAN's 1/12.75^2) |
| Bicubic | interpolation (kernel unstated) | torch bicubic (a = -0.75), align_corners False, no antialias (upsampling), output clamped to [0, 1] |
"""


def render(params_path: Path | None) -> str:
    variants, disc_demo = demo_configs(params_path)
    configs: list[tuple[str, str, dict]] = [("default", "bicubic", {}), ("default", "srresnet", {})]
    configs += [(f"params.yaml train.variants.{k}", v["model"], v["model_args"])
                for k, v in variants.items() if v["model"] == "srresnet"]
    configs += [("default (thesis)", "method1", {}),
                ("ablation", "method1", {"attention": "sigmoid"}),
                ("ablation", "method1", {"attention": "none"}),
                ("ablation", "method1", {"prior": False})]
    configs += [(f"params.yaml train.variants.{k}", v["model"], v["model_args"])
                for k, v in variants.items() if v["model"] == "method1"]
    configs += [("default (thesis)", "discriminator", {})]
    if disc_demo:
        configs.append(("params.yaml train_gan.loop.discriminator_args", "discriminator", disc_demo))
    rows = model_rows(configs)

    lines = [
        "# Architecture",
        "",
        "<!-- Generated by `python -m facesr.models.stats --write docs/architecture.md`; do not edit by hand. -->",
        "",
        f"Measured with torch {torch.__version__} on {platform.machine()} ({platform.system()}, "
        f"{os.cpu_count()} CPU cores, no GPU needed), one forward pass at batch 1 in eval mode. "
        "Parameters count every trainable tensor; MACs come from `torch.utils.flop_counter.FlopCounterMode` "
        "(FLOPs / 2), which counts convolutions and matrix products only (not element-wise ops, pooling, "
        "interpolation, BN in eval), so bicubic shows 0.",
        "",
        "Inputs: generators take LR `(1, 3, 16, 16)`, the discriminator `(1, 3, 128, 128)`. "
        "Configs: `default` = the constructor defaults (the thesis sizes); rows named after params.yaml "
        "use that file's demo profile (read by the script from `--params`).",
        "",
        "## Models",
        "",
        "| model | config | model_args | parameters | MACs / image |",
        "|---|---|---|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['model']} | {r['label']} | {_args_text(r['args'])} | {_fmt_int(r['params'])} | "
                     f"{_fmt_macs(r['macs'])} |")
    lines += ["", "### Method 1 by branch", "",
              "| config | model_args | branch | parameters | MACs / image |", "|---|---|---|---:|---:|"]
    for r in rows:
        if r["args"].get("attention", "softmax") != "softmax":
            continue  # the gate type changes a few FC weights only; the model table has their totals
        for p in r["parts"]:
            lines.append(f"| {r['label']} | {_args_text(r['args'])} | {p['part']} | {_fmt_int(p['params'])} | "
                         f"{_fmt_macs(p['macs'])} |")

    prior_configs = [("default (thesis)", {})] + [
        (f"params.yaml train.variants.{k}", v["model_args"]) for k, v in variants.items() if v["model"] == "method1"
    ]
    for label, args in prior_configs:
        model = build_model("method1", **args)
        table = prior_layer_table(model)
        lines += ["", f"## Prior branch layer by layer: {label}", "",
                  f"model_args: {_args_text(args)}. Input: LR `(1, 3, 16, 16)`. One row per module in "
                  "execution order; `HourglassResidual` is Newell's bottleneck residual module "
                  "(BN-ReLU-conv1x1 C/2, BN-ReLU-conv3x3 C/2, BN-ReLU-conv1x1 C, plus the identity) as one "
                  "row. An hourglass level adds its `skip` row to the `up` row (no module, so no row). "
                  f"Branch total: {_fmt_int(count_params(model.prior_branch))} parameters.",
                  "", "| # | layer | type | output (C, H, W) | parameters | MACs |", "|---:|---|---|---|---:|---:|"]
        for i, row in enumerate(table, 1):
            shape = "x".join(str(s) for s in row["shape"])
            lines.append(f"| {i} | `{row['name']}` | {row['type']} | {shape} | {_fmt_int(row['params'])} | "
                         f"{_fmt_macs(row['macs'])} |")
        listed = sum(row["params"] for row in table)
        lines.append(f"| | | | sum of rows | {_fmt_int(listed)} | |")

    lines += ["", "## The thesis' choices and SPEC.md's fixes", "", THESIS_VS_SPEC]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facesr.models.stats", description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the markdown here (default: print it)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params file whose train variants are measured too (skipped if absent)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    text = render(args.params)
    if args.write:
        from facesr.fileio import atomic_write_text

        atomic_write_text(args.write, text)
        print(f"wrote {args.write}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
