"""Every layer kind, registered by importing its module here."""
from . import activation, conv, dense, learned, merge, norm, pool, recurrent, resample  # noqa: F401  (registration side effects)
from .base import ALIASES, REGISTRY, Layer, lookup, register, shape_text
from .shapes import Steps

__all__ = ["ALIASES", "REGISTRY", "Layer", "Steps", "lookup", "register", "shape_text"]
