"""The errors of `facesr upscale` and `facesr.load`: ValueErrors whose message names the file or
source and the problem."""

from __future__ import annotations


class InferenceError(ValueError):
    """Base class of the errors of `facesr upscale` and `facesr.load`."""


class BadImageError(InferenceError):
    """An input file that is not a usable image; the message names the file and the problem."""


class ModelSourceError(InferenceError):
    """A model source (path, MLflow URI, name) that does not give a usable model."""


class OutputClashError(InferenceError):
    """Two inputs of one call would be written to the same output file."""


class OutputTooLargeError(InferenceError):
    """An output image would have more pixels than inputs may have."""
