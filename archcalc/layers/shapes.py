"""Shape types: what flows between layers, per sample (no batch axis).

Three layouts, each its own type, so that the same numbers in two layouts never pass for one
another (a [3, 4] signal is not a 3-step sequence of 4 features):
- ``FeatureMap``: channels first, [C, L] | [C, H, W] | [C, D, H, W] (PyTorch's (N, C, ...));
- ``Steps``: a sequence, [T, F] = T steps of F features, or [T] = T token ids (batch-first (N, T, F));
- ``Vector``: a flat feature vector [F].

A shape equals only a shape of the same type and sizes (never a plain tuple). They stay tuple
subclasses: indexing, slicing (which gives plain tuples of sizes), ``len`` and ``prod`` cost
what a tuple's do. A layer builds its output with ``x.like(sizes)``
when the output keeps the input's layout; kinds that change the layout (flatten, a global
pool, a recurrent layer's last state, repeatvector) name the type they produce.
"""
from __future__ import annotations

from typing import ClassVar


class Shape(tuple):
    """Base of the shape types: sizes per sample, equal only within one type."""

    __slots__ = ()
    layout: ClassVar[str]  # "feature map", "sequence", "flat vector": for messages

    def like(self, sizes) -> Shape:
        """A shape of this one's type (layout) with other sizes."""
        return type(self)(sizes)

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and tuple.__eq__(self, other)

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    # the tuple's own hash, computed in C: a sequence and a map of the same sizes share it and
    # still never compare equal (a harmless collision); a Python-level hash that mixed in the
    # type cost 5% more of the analysis of a 100,000-layer chain (windows are cached by input shape)
    __hash__ = tuple.__hash__

    def __repr__(self) -> str:
        return f"{type(self).__name__}({tuple(self)!r})"


class FeatureMap(Shape):
    """Channels first: [C, L], [C, H, W] or [C, D, H, W]."""

    __slots__ = ()
    layout = "feature map"


class Steps(Shape):
    """The shape of a sequence, per sample: (T, F) = T steps of F features, or (T,) = T token ids."""

    __slots__ = ()
    layout = "sequence"

    @property
    def steps(self) -> int:
        return self[0]


class Vector(Shape):
    """A flat feature vector [F] (after flatten, a global pool or a dense layer)."""

    __slots__ = ()
    layout = "flat vector"


class Outputs(tuple):
    """The shapes of a layer with several outputs (split, chunk), one per output in order; a
    spec reads output i of layer 'split1' as 'split1.i'. Not a Shape: no layer reads it whole."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Outputs({tuple(self)!r})"


def parts(shape) -> tuple:
    """Each output's shape: those of an Outputs, or the one ``shape``."""
    return tuple(shape) if isinstance(shape, Outputs) else (shape,)


def shape_of(sizes) -> Shape:
    """An untyped list of sizes, as a spec or --input writes a non-sequence: one size is a flat
    vector [F], more are a channels-first feature map."""
    sizes = tuple(sizes)
    return Vector(sizes) if len(sizes) == 1 else FeatureMap(sizes)
