"""Running an exported generator (`facesr export`, facesr.inference.onnx_export) with ONNX Runtime.

The file format: an ONNX graph `lr (B,3,16,16) float32 RGB in [0,1] -> sr (B,3,128,128) clamped to
[0,1]` (plus `parsing (B,P,128,128)` for a model with a prior branch), the batch axis dynamic, and
its description in the model's `metadata_props`, each value a JSON string (`METADATA_KEYS`): the
format, the model spec (name and every constructor argument, as in a generator file), the sha256 of
the generator file the weights came from, the scale, the input (name, size, channels, range) and the
outputs (names, clamp), and the export's own check against PyTorch. A file without that metadata is
refused: a facesr ONNX file says what it computes.

Nothing but the graph is run: the file is read as bytes, its metadata checked, and ONNX Runtime
gets the bytes (so a graph whose weights live in an external data file finds none, and is refused).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facesr.data.layout import LR_SIZE
from facesr.inference.errors import ModelSourceError

if TYPE_CHECKING:  # torch and onnxruntime load when a file is opened
    import torch

    from facesr.models.predictor import Prediction

ONNX_FORMAT = "facesr-onnx/1"
ONNX_SUFFIX = ".onnx"
INPUT_NAME = "lr"
SR_OUTPUT = "sr"
PARSING_OUTPUT = "parsing"
# metadata_props keys; every value is JSON text
METADATA_KEYS = ("facesr.format", "facesr.spec", "facesr.source_sha256", "facesr.scale", "facesr.input",
                 "facesr.outputs", "facesr.check")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


class OnnxModelError(ModelSourceError):
    """An .onnx file that is not a facesr export, or that ONNX Runtime cannot run; the message names the file."""


@dataclass(frozen=True)
class OnnxMetadata:
    """What a facesr ONNX file says about itself (its `metadata_props`, parsed)."""

    spec: dict[str, Any]
    source_sha256: str
    scale: int
    input: dict[str, Any]
    outputs: dict[str, Any]
    check: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.spec["model"])

    def as_props(self) -> dict[str, str]:
        """The `metadata_props` entries of this metadata (JSON text per key)."""
        values = (ONNX_FORMAT, self.spec, self.source_sha256, self.scale, self.input, self.outputs, self.check)
        return {k: json.dumps(v, sort_keys=True) for k, v in zip(METADATA_KEYS, values)}

    def as_meta(self) -> dict[str, Any]:
        """The Upscaler's `meta` (a generator file's keys where they mean the same)."""
        return {"format": ONNX_FORMAT, "model": self.model, "model_args": dict(self.spec["model_args"]),
                "source_sha256": self.source_sha256, "scale": self.scale, "input": dict(self.input),
                "outputs": dict(self.outputs), "check": dict(self.check)}


def parse_metadata(props: Mapping[str, str], where: str) -> OnnxMetadata:
    """`OnnxMetadata` from a file's metadata_props; `where` (the file) names it in errors."""
    if props.get("facesr.format") is None:
        raise OnnxModelError(f"{where}: not a facesr ONNX export (no facesr.format in its metadata); export a "
                             "generator with `facesr export MODEL -o FILE.onnx`")
    values = {}
    for key in METADATA_KEYS:
        if key not in props:
            raise OnnxModelError(f"{where}: facesr ONNX metadata lacks {key}; export it again with `facesr export`")
        try:
            values[key] = json.loads(props[key])
        except json.JSONDecodeError as exc:
            raise OnnxModelError(f"{where}: metadata {key} is not JSON ({exc})") from exc
    if values["facesr.format"] != ONNX_FORMAT:
        raise OnnxModelError(f"{where}: format {values['facesr.format']!r}, expected {ONNX_FORMAT!r}")
    spec, outputs, inp = values["facesr.spec"], values["facesr.outputs"], values["facesr.input"]
    if not (isinstance(spec, dict) and isinstance(spec.get("model"), str) and isinstance(spec.get("model_args"), dict)):
        raise OnnxModelError(f"{where}: metadata facesr.spec is not {{'model': name, 'model_args': {{...}}}}")
    if not (isinstance(outputs, dict) and isinstance(outputs.get("names"), list)
            and outputs["names"][:1] == [SR_OUTPUT] and set(outputs["names"]) <= {SR_OUTPUT, PARSING_OUTPUT}):
        raise OnnxModelError(f"{where}: metadata facesr.outputs names {outputs!r}, expected "
                             f"['{SR_OUTPUT}'] or ['{SR_OUTPUT}', '{PARSING_OUTPUT}']")
    if not (isinstance(inp, dict) and inp.get("name") == INPUT_NAME and inp.get("size") == LR_SIZE):
        raise OnnxModelError(f"{where}: metadata facesr.input {inp!r} is not the {LR_SIZE}x{LR_SIZE} '{INPUT_NAME}'")
    scale = values["facesr.scale"]
    if not isinstance(scale, int) or scale < 1:
        raise OnnxModelError(f"{where}: metadata facesr.scale {scale!r} is not a positive integer")
    return OnnxMetadata(spec=spec, source_sha256=str(values["facesr.source_sha256"]), scale=scale, input=inp,
                        outputs=outputs, check=dict(values["facesr.check"] or {}))


def read_onnx(path: str | Path) -> tuple[bytes, OnnxMetadata]:
    """The bytes and metadata of a facesr ONNX file; anything else is an `OnnxModelError` naming it."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    if not path.is_file():
        raise OnnxModelError(f"{path}: ONNX file not found")
    data = path.read_bytes()
    try:
        proto = onnx.ModelProto.FromString(data)
    except DecodeError as exc:
        raise OnnxModelError(f"{path}: not an ONNX file ({exc})") from exc
    meta = parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path))
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise OnnxModelError(f"{path}: its weights are in an external data file; facesr exports one "
                             "self-contained file (export it again with `facesr export`)")
    return data, meta


def providers_for(device: str) -> list[str]:
    """ONNX Runtime's execution providers for a resolved facesr device: CUDA first on a cuda device
    (an `OnnxModelError` where this onnxruntime has no CUDA provider), else the CPU alone."""
    import onnxruntime as ort

    if not device.startswith("cuda"):
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in ort.get_available_providers():
        raise OnnxModelError(f"device {device}: this onnxruntime has no {CUDA_PROVIDER} (it has "
                             f"{', '.join(ort.get_available_providers())}); install onnxruntime-gpu, or run on cpu")
    return [CUDA_PROVIDER, CPU_PROVIDER]


def cuda_provider_available() -> bool:
    """Whether this onnxruntime can run on a GPU (the auto device of an ONNX model)."""
    import onnxruntime as ort

    return CUDA_PROVIDER in ort.get_available_providers()


def open_session(data: bytes, device: str, where: str):
    """An ONNX Runtime session over the graph `data` on `device`'s providers; errors name `where`."""
    import onnxruntime as ort

    providers = providers_for(device)
    try:
        return ort.InferenceSession(data, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/... classes, all "cannot run"
        raise OnnxModelError(f"{where}: ONNX Runtime cannot load the graph ({type(exc).__name__}: {exc})") from exc


class OnnxPredictor:
    """An exported generator run by ONNX Runtime, with a `facesr.models.predictor.Predictor`'s face:
    `predictor(lr)` gives the `Prediction` (sr fp32 clamped to [0,1] by the graph, parsing as the
    model gives it) of a float LR batch (B,3,16,16) in [0,1], as torch tensors on `device`.

    `precision` is fp32 (the graph is the fp32 export); `model` is the ONNX Runtime session."""

    def __init__(self, session, meta: OnnxMetadata, *, device: str, where: str):
        from facesr.device import Precision

        self.model = session
        self.meta = meta
        self.device = device
        self.where = where
        self.precision = Precision(device_type=device.split(":")[0], dtype=None, channels_last=False,
                                   reason="ONNX Runtime runs the fp32 graph of the export")
        self.output_names = list(meta.outputs["names"])
        self.scale = meta.scale
        self.lr_size = LR_SIZE
        self.hr_size = LR_SIZE * meta.scale

    @classmethod
    def from_file(cls, path: str | Path, device: str) -> OnnxPredictor:
        """The predictor of a facesr ONNX file on `device` (resolved: cpu, cuda, cuda:N)."""
        data, meta = read_onnx(path)
        return cls(open_session(data, device, str(path)), meta, device=device, where=str(path))

    @property
    def predicts_parsing(self) -> bool:
        """Whether the graph gives parsing maps (its second output)."""
        return PARSING_OUTPUT in self.output_names

    def __call__(self, lr: torch.Tensor) -> Prediction:
        import numpy as np
        import torch

        from facesr.models.predictor import Prediction

        x = np.ascontiguousarray(lr.detach().to("cpu", torch.float32).numpy())
        outs = self.model.run(self.output_names, {INPUT_NAME: x})
        tensors = [torch.from_numpy(o).to(self.device) for o in outs]
        return Prediction(tensors[0], tensors[1] if len(tensors) > 1 else None)

    def predict_batches(self, lr: torch.Tensor, batch_size: int) -> Iterator[tuple[int, Prediction]]:
        """`(start, prediction)` of `lr[start:start + batch_size]` for each batch of `lr`, in order."""
        if batch_size < 1:
            raise ValueError(f"predict_batches: batch_size must be >= 1, got {batch_size}")
        for start in range(0, lr.shape[0], batch_size):
            yield start, self(lr[start:start + batch_size])
