"""Every layer kind, registered by importing its module here."""
from . import activation, conv, dense, learned, merge, norm, pool, recurrent, resample  # noqa: F401  (registration side effects)
from .base import ALIASES, REGISTRY, Layer, lookup, register, shape_text
from .shapes import FeatureMap, Shape, Steps, Vector, shape_of

__all__ = ["ALIASES", "REGISTRY", "FeatureMap", "Layer", "Shape", "Steps", "Vector", "lookup", "register",
           "shape_of", "shape_text"]
