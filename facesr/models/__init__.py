"""Models: the registry and the four networks of the thesis.

``MODELS`` maps a name to its class; ``build_model(name, **model_args)`` builds one with the
params.yaml `model_args` and attaches ``model.spec``. Names: bicubic, srresnet, method1, discriminator.
Every generator returns an `SROutput` and declares `predicts_parsing`.
"""

from __future__ import annotations

# Explicit imports fill MODELS (each model module registers its class on import); no folder scanning.
from facesr.models.bicubic import Bicubic
from facesr.models.discriminator import Discriminator
from facesr.models.method1 import PriorGuidedSR
from facesr.models.output import SROutput
from facesr.models.registry import (
    GENERATOR_FORMAT,
    MODELS,
    TRIALS_DIR,
    GeneratorFileError,
    GeneratorFileNotFoundError,
    ModelConfigError,
    build_model,
    load_generator,
    model_arg_names,
    register_model,
    save_generator,
)
from facesr.models.srresnet import SRResNet

__all__ = [
    "GENERATOR_FORMAT",
    "MODELS",
    "Bicubic",
    "Discriminator",
    "GeneratorFileError",
    "GeneratorFileNotFoundError",
    "ModelConfigError",
    "PriorGuidedSR",
    "SROutput",
    "SRResNet",
    "build_model",
    "load_generator",
    "model_arg_names",
    "register_model",
    "save_generator",
    "TRIALS_DIR",
]
