"""unlearn-audit: does an "unlearned" model still know the samples it was asked to forget?"""

from __future__ import annotations

from .commitment import SecretSeed
from .errors import CheckpointError, ConfigError, InputError, ModelOutputError, SchemaError, UnlearnAuditError
from .info import ModelInfo, model_info
from .io.models import AuditableModel, ModelMeta, load_model, save_model, wrap_model
from .io.samples import Samples, load_samples, samples_from_tensors
from .version import __version__

__all__ = [
    "AuditableModel",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "ModelInfo",
    "ModelMeta",
    "ModelOutputError",
    "Samples",
    "SchemaError",
    "SecretSeed",
    "UnlearnAuditError",
    "__version__",
    "load_model",
    "load_samples",
    "model_info",
    "samples_from_tensors",
    "save_model",
    "wrap_model",
]
