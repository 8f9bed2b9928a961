"""`facesr export MODEL -o FILE.onnx`: a generator as a self-describing ONNX file, checked against PyTorch.

MODEL is what `facesr upscale --model` takes (a generator file, a pipeline name such as method1, an
MLflow URI such as models:/facesr-method1@champion, or an MLflow model folder), resolved to its
weights-only generator file; the export itself is `facesr.inference.onnx_export.export_onnx`.
Exit codes: 0 written, 2 nothing written (bad model, or an export that does not match PyTorch).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from facesr.inference.errors import InferenceError, ModelSourceError
from facesr.inference.loading import DEFAULT_MODEL, URI_SCHEMES, resolve_name


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
    path = Path(source)
    if source.startswith(URI_SCHEMES) or (path.is_dir() and (path / "MLmodel").is_file()):
        return _export_mlflow(source, out)
    if not path.exists() and path.suffix == "" and "/" not in source:
        path = resolve_name(source)
    return export_onnx(path, out)


def _export_mlflow(source: str, out: str | Path):
    import mlflow

    from facesr.inference.onnx_export import export_onnx
    from facesr.mlflow_model import NotAFacesrModelError, generator_file
    from facesr.services import mlflow_tracking_uri

    mlflow.set_tracking_uri(mlflow_tracking_uri())
    with tempfile.TemporaryDirectory(prefix="facesr-export-") as tmp:
        try:
            path, _mlmodel = generator_file(source, Path(tmp))
        except NotAFacesrModelError as exc:
            raise ModelSourceError(str(exc)) from exc
        except Exception as exc:  # MlflowException, OSError, YAML errors: all mean "no model here"
            raise ModelSourceError(f"{source}: cannot read an MLflow model ({type(exc).__name__}: {exc})") from exc
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
