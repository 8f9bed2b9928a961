"""`facesr export MODEL -o FILE.onnx`: a generator as a self-describing ONNX file, checked against PyTorch.

MODEL is what `facesr upscale --model` takes (a generator file, a pipeline name such as method1, an
MLflow URI such as models:/facesr-method1@champion, or an MLflow model folder), resolved to its
weights-only generator file; the export itself is `facesr.inference.onnx_export.export_onnx`.
Exit codes: 0 written, 2 nothing written (bad model, or an export that does not match PyTorch).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from facesr.inference.errors import InferenceError, ModelSourceError
from facesr.inference.loading import DEFAULT_MODEL, is_mlflow_source, mlflow_generator_file, model_path


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a generator to ONNX (for facesr upscale --runtime onnx, or any ONNX runtime)",
        description="Export a generator to one ONNX file: dynamic batch axis, opset pinned, fp32, its spec, "
                    "the sha256 of its weights, scale and input/output description in the file's metadata. "
                    "The file is written only when ONNX Runtime matches PyTorch (fp32) on a few faces.",
    )
    p.add_argument("model", nargs="?", default=DEFAULT_MODEL,
                   help="generator file, pipeline name (srresnet, method1, method2, a train variant), MLflow URI "
                        f"(models:/facesr-method1@champion) or MLflow model folder (default {DEFAULT_MODEL})")
    p.add_argument("-o", "--out", required=True, help="the .onnx file to write")
    p.set_defaults(func=run_cli)


def export_source(source: str, out: str | Path):
    """Export the generator that `source` names (as `facesr upscale --model` takes it) to `out`; the
    `facesr.inference.onnx_export.ExportResult`."""
    from facesr.inference.onnx_export import ExportError, export_onnx

    if source == "bicubic":
        raise ExportError("bicubic has no weights to export; it is torch's F.interpolate")
    if not is_mlflow_source(source):
        return export_onnx(model_path(source), out)
    with mlflow_generator_file(source) as (path, _mlmodel):
        if path is None:
            raise ModelSourceError(f"{source}: holds no facesr generator file (a pickled pytorch model?); "
                                   "export needs the weights-only generator file")
        return export_onnx(path, out)


def run_cli(args: argparse.Namespace) -> int:
    try:
        result = export_source(args.model, args.out)
    except InferenceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = result.meta
    print(f"wrote {result.path}: {meta.model} x{meta.scale}, outputs {', '.join(meta.outputs['names'])}, "
          f"weights sha256 {meta.source_sha256[:12]}, ONNX Runtime vs PyTorch max abs diff "
          f"{result.max_abs_diff:.2e}")
    return 0
