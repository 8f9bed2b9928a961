"""facesr: 8x face super-resolution (16x16 -> 128x128) with a face-parsing prior.

The library behind the pipeline: models, data, losses, metrics, training and inference.
"""

__version__ = "0.1.0"


def load(source="method1", device=None, *, allow_pickle=False):  # lazy: `import facesr` must not pull in torch
    """An Upscaler for `source` (see facesr.inference.load; `allow_pickle` opts in to pickled MLflow models)."""
    from facesr.inference import load as _load
    return _load(source, device=device, allow_pickle=allow_pickle)
