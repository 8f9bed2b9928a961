"""facesr: 8x face super-resolution (16x16 -> 128x128) with a face-parsing prior.

The library behind the pipeline: models, data, losses, metrics, training and inference.
"""

__version__ = "0.1.0"


def load(source="method1", device=None, *, allow_pickle=False, runtime="auto", precision="auto"):
    """An Upscaler for `source` (see facesr.inference.load; `allow_pickle` opts in to pickled MLflow models;
    `runtime` "torch", "onnx" (an exported .onnx file in ONNX Runtime) or "auto")."""
    from facesr.inference import load as _load  # lazy: `import facesr` must not pull in torch
    return _load(source, device=device, allow_pickle=allow_pickle, runtime=runtime, precision=precision)
