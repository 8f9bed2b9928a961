"""Using a trained model: `facesr.load(...)` and the `facesr upscale` command.

`load(source)` accepts an exported generator file (`models/train/method1.pt`), an MLflow URI
(`models:/facesr-method1@champion`, `runs:/<id>/model`) or model folder, or a bare name (`method1`,
`method2`, `srresnet`, `bicubic`, a train variant) looked up where dvc.yaml's stages write models,
and returns an `Upscaler`. Whole photos (`--faces auto`) go through facesr.faces: detect, align,
SR, paste. One module per concern:

- `errors`: the error classes;
- `images`: the decoding policy (any input as 8-bit RGB with notes, or an error naming the file);
- `loading`: model sources (files, .onnx exports, MLflow, pipeline names) and runtimes -> `Upscaler`;
- `onnx_export`, `onnx_runtime`: `facesr export`'s ONNX file (written and checked against PyTorch;
  its metadata; run by ONNX Runtime);
- `upscaler`: `Upscaler` (a `facesr.models.predictor.Predictor` and the input kinds around it);
- `lowres`: the LR of a face crop, made the way training made it;
- `render`: SR tensors as images, parsing overlays, compare strips, PNG files;
- `photos`: the photo pipeline (`upscale_photo(photo, upscaler)`);
- `files`: the file runner (inputs -> output names -> outputs, one bad input never stops the others);
- `cli`: the `facesr upscale` parser and command.

Only the standard library, numpy, Pillow and light facesr modules are imported at module level
(`facesr.cli` imports this); torch, MLflow and the detector load when used.
"""

from facesr.inference.cli import add_parser, run_cli
from facesr.inference.errors import (
    BadImageError,
    InferenceError,
    ModelSourceError,
    OutputClashError,
    OutputTooLargeError,
)
from facesr.inference.files import IMAGE_SUFFIXES, RunReport, collect_inputs, upscale_files
from facesr.inference.images import LoadedImage, read_image
from facesr.inference.loading import (
    DEFAULT_MODEL,
    URI_SCHEMES,
    PickleLoadWarning,
    find_dvc_yaml,
    load,
    resolve_name,
)
from facesr.inference.lowres import LR_SIZE, to_lr
from facesr.inference.photos import PhotoResult, upscale_photo
from facesr.inference.render import (
    PARSING_COLOURS,
    compare_strip,
    parsing_overlay,
    save_atomic,
    tensor_to_pil,
)
from facesr.inference.upscaler import Upscaler

__all__ = [
    "DEFAULT_MODEL", "IMAGE_SUFFIXES", "LR_SIZE", "PARSING_COLOURS", "URI_SCHEMES",
    "BadImageError", "InferenceError", "LoadedImage", "ModelSourceError", "OutputClashError", "OutputTooLargeError",
    "PhotoResult", "PickleLoadWarning", "RunReport", "Upscaler",
    "add_parser", "collect_inputs", "compare_strip", "find_dvc_yaml", "load", "parsing_overlay",
    "read_image", "resolve_name", "run_cli", "save_atomic", "tensor_to_pil", "to_lr",
    "upscale_files", "upscale_photo",
]
