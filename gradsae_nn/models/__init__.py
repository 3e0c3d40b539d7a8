"""Model loading: embedded offline models, local directories and hub ids, as nnsight models."""

from .embedded import EMBEDDED_MODELS, EmbeddedModel, ensure_converted
from .families import ModelFamily, family_for
from .registry import DEFAULT_MODEL, LoadedModel, known_model_names, load_model, resolve_device

__all__ = ["DEFAULT_MODEL", "EMBEDDED_MODELS", "EmbeddedModel", "LoadedModel", "ModelFamily",
           "ensure_converted", "family_for", "known_model_names", "load_model", "resolve_device"]
