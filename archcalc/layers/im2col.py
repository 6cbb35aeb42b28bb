"""Convolution as a matrix product (im2col), with the shapes the course draws.

Every window of the input is unrolled into one column of C/g * F^d values (d spatial axes, g
groups); the K filters are unrolled into the rows of a filter matrix; one matrix product then
gives every output at once:

    filters K x (C/g * F^d)  @  columns (C/g * F^d) x (positions * batch)  =  output K x (positions * batch)

With groups, each group of K/g filters multiplies its own C/g channels: g products of
(K/g x C/g*F^d) @ (C/g*F^d x N), so the column buffer holds g blocks.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unrolled:
    """One convolution as a matrix product, for one sample; ``batch`` multiplies the columns."""

    filters: int     # K
    groups: int      # g
    rows: int        # C/g * F^d: the values under one window of one group
    positions: int   # output positions per sample (the product of the output's spatial sizes)

    @property
    def filter_matrix(self) -> tuple[int, int]:
        """K x (C/g * F^d): one unrolled filter per row."""
        return self.filters, self.rows

    def column_matrix(self, batch: int = 1) -> tuple[int, int]:
        """(C/g * F^d) x (positions * batch): one unrolled window per column (per group)."""
        return self.rows, self.positions * batch

    def output_matrix(self, batch: int = 1) -> tuple[int, int]:
        """K x (positions * batch): reshaped, the K output maps."""
        return self.filters, self.positions * batch

    def column_elements(self, batch: int = 1) -> int:
        """Values in the column buffer: g blocks of (C/g * F^d) x (positions * batch)."""
        return self.groups * self.rows * self.positions * batch

    def column_bytes(self, batch: int, dtype_bytes: int) -> int:
        """The column buffer im2col allocates, in bytes."""
        return self.column_elements(batch) * dtype_bytes
