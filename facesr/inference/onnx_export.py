"""Exporting a generator file to ONNX (`facesr export`): the graph, its metadata, and its check.

`export_onnx(generator_file, out)` rebuilds the generator from its file (weights-only), exports it in
fp32 on the CPU with a dynamic batch axis, writes the metadata of `facesr.inference.onnx_runtime`
(the format every reader checks), runs the graph in ONNX Runtime against PyTorch on the same LR
faces, and writes the file only when they agree within `CHECK_TOLERANCE`.

The exporter is torch.export's (`dynamo=True`, the default since torch 2.9): the TorchScript one
(`dynamo=False`) also exports these models, but it is deprecated, and it names the outputs and the
batch axis after internal nodes unless told; both give the same numbers here.

torch is imported at module level: nothing that `facesr --help` loads imports this module (the
`facesr export` command and `facesr.load(..., runtime="onnx")` import it when they run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from facesr.data.layout import LR_SIZE
from facesr.inference.errors import InferenceError
from facesr.inference.onnx_runtime import (
    INPUT_NAME,
    PARSING_OUTPUT,
    SR_OUTPUT,
    OnnxMetadata,
    open_session,
)

# Pinned so that a file exported today opens in the same runtimes tomorrow: opset 18 is the
# exporter's own and every onnxruntime since 1.14 runs it.
OPSET = 18
# The export is refused when ONNX Runtime and PyTorch (fp32) differ by more than this on any value.
CHECK_TOLERANCE = 1e-4
CHECK_FACES = 4
CHECK_SEED = 0


class ExportError(InferenceError):
    """A generator that cannot be exported, or whose export does not compute what PyTorch does."""


class ExportGraph(nn.Module):
    """The exported computation: a generator's forward as plain tensors, sr as fp32 clamped to [0, 1]
    as `facesr.models.predictor.Predictor` gives it, parsing maps (for a model that predicts them)
    as the model gives them."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.parsing = bool(getattr(generator, "predicts_parsing", False))

    def forward(self, lr: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.generator(lr)
        sr = out.sr.float().clamp(0, 1)
        return (sr, out.parsing.float()) if self.parsing else (sr,)


@dataclass(frozen=True)
class ExportResult:
    """What `export_onnx` wrote: the file, its metadata, and the check's largest difference."""

    path: Path
    meta: OnnxMetadata
    max_abs_diff: float


def check_inputs(n: int = CHECK_FACES, seed: int = CHECK_SEED) -> torch.Tensor:
    """`n` random LR faces (B,3,16,16) in [0,1] from a fixed seed, the export's check inputs."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, LR_SIZE, LR_SIZE, generator=gen)


def torch_outputs(model: nn.Module, lr: torch.Tensor) -> list[torch.Tensor]:
    """The fp32 PyTorch outputs of the exported computation on `lr` (CPU), in the graph's order."""
    with torch.inference_mode():
        return [t.clone() for t in ExportGraph(model).eval()(lr)]


def max_abs_difference(session, model: nn.Module, lr: torch.Tensor) -> float:
    """The largest |ONNX Runtime - PyTorch fp32| over every output value on the LR batch `lr`."""
    import numpy as np

    expected = torch_outputs(model, lr)
    got = session.run(None, {INPUT_NAME: np.ascontiguousarray(lr.numpy())})
    if len(got) != len(expected):
        raise ExportError(f"the graph gives {len(got)} outputs, PyTorch {len(expected)}")
    return max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))


def export_onnx(generator: str | Path, out: str | Path, *, tolerance: float = CHECK_TOLERANCE) -> ExportResult:
    """Export the generator file `generator` to the ONNX file `out` (written atomically, and only when
    ONNX Runtime matches PyTorch fp32 within `tolerance` on `CHECK_FACES` faces)."""
    import onnxruntime

    from facesr.fileio import atomic_write_bytes, sha256_file
    from facesr.models import GeneratorFileError, load_generator

    generator, out = Path(generator), Path(out)
    try:
        model, meta = load_generator(generator, map_location="cpu")
    except GeneratorFileError as exc:
        raise ExportError(str(exc)) from exc
    model = model.float().eval()
    outputs = [SR_OUTPUT, PARSING_OUTPUT] if getattr(model, "predicts_parsing", False) else [SR_OUTPUT]
    lr = check_inputs()
    proto = _export_proto(model, lr, outputs, str(generator))
    session = open_session(proto.SerializeToString(), "cpu", f"{out} (exported from {generator})")
    diff = max_abs_difference(session, model, lr)
    if not diff <= tolerance:  # NaN fails too
        raise ExportError(f"{generator}: ONNX Runtime differs from PyTorch by {diff:.3g} (max abs) on "
                          f"{CHECK_FACES} faces, over the tolerance {tolerance:g}; {out} is not written")
    scale = int(meta["model_args"].get("upscale", 8))
    info = OnnxMetadata(
        spec={"model": meta["model"], "model_args": dict(meta["model_args"])},
        source_sha256=sha256_file(generator),
        scale=scale,
        input={"name": INPUT_NAME, "size": LR_SIZE, "layout": "NCHW", "dtype": "float32", "channels": "RGB",
               "range": [0.0, 1.0]},
        outputs={"names": outputs, "size": LR_SIZE * scale, "sr_clamp": [0.0, 1.0],
                 "parsing": "as the model gives it (sigmoid, in [0, 1])" if PARSING_OUTPUT in outputs else None},
        check={"max_abs_diff": diff, "tolerance": tolerance, "faces": CHECK_FACES, "seed": CHECK_SEED,
               "torch": torch.__version__, "onnxruntime": onnxruntime.__version__, "opset": OPSET},
    )
    del proto.metadata_props[:]
    for key, value in info.as_props().items():
        proto.metadata_props.add(key=key, value=value)
    atomic_write_bytes(out, proto.SerializeToString())
    return ExportResult(path=out, meta=info, max_abs_diff=diff)


def _export_proto(model: nn.Module, lr: torch.Tensor, outputs: list[str], where: str) -> Any:
    """The ONNX ModelProto of `model`'s graph, batch axis dynamic, weights inside."""
    import contextlib
    import sys
    import warnings

    batch = torch.export.Dim("batch")
    try:
        # the exporter prints its progress on stdout, which is the command's own output
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            # Method 1 keeps its last attention weights on the module for inspection: harmless here
            warnings.filterwarnings("ignore", message=".*assigned during export.*")
            program = torch.onnx.export(ExportGraph(model).eval(), (lr,), None, dynamo=True, opset_version=OPSET,
                                        input_names=[INPUT_NAME], output_names=outputs,
                                        dynamic_shapes=({0: batch},), external_data=False, verbose=False)
    except Exception as exc:  # torch.export raises many classes, all meaning "this cannot be exported"
        raise ExportError(f"{where}: cannot export to ONNX ({type(exc).__name__}: {exc})") from exc
    return program.model_proto
