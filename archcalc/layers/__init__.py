"""Every layer kind, registered by importing its module here."""
from . import (  # noqa: F401  (registration side effects)
    activation,
    attention,
    channels,
    conv,
    dense,
    learned,
    merge,
    norm,
    opaque,
    pool,
    recurrent,
    resample,
    tokens,
)
from .base import ALIASES, REGISTRY, Layer, lookup, register, shape_text
from .shapes import FeatureMap, Outputs, Shape, Steps, Vector, parts, shape_of

__all__ = ["ALIASES", "REGISTRY", "FeatureMap", "Layer", "Outputs", "Shape", "Steps", "Vector", "lookup", "parts", "register",
           "shape_of", "shape_text"]
