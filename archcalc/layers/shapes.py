"""Shape types: what flows between layers, per sample (no batch axis)."""
from __future__ import annotations

Shape = tuple  # channels first, no batch: (F,) | (C, L) | (C, H, W) | (C, D, H, W) | Steps


class Steps(tuple):
    """The shape of a sequence, per sample: (T, F) = T steps of F features, or (T,) = T token ids.

    A distinct type so a [C, L] signal and a [T, F] sequence are never confused.
    """

    @property
    def steps(self) -> int:
        return self[0]

    def __repr__(self) -> str:
        return f"Steps({tuple(self)!r})"
