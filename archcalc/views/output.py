"""What every view's output shares: the JSON schema version, and the one choice of rich or plain
text for the tables of inspect, diff and run.

A view describes its tables (``Table``) and lines; ``write`` lays them out. A terminal (or
FORCE_COLOR, as rich reads it) gets rich's colours and wrapping; a pipe, a file, and any output of more than RICH_TABLE_ROWS rows get the
same tables laid out plain (rich's SIMPLE_HEAD layout, unwrapped, for grep and scripts), without
rich's import (40 ms of a 160 ms start) or its cost per row (~0.4 ms). Every cell, title and
line is written through views/escape: names show literally, never as markup or controls.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from . import escape

JSON_SCHEMA_VERSION = 1  # every JSON document archcalc writes (inspect, solve, diff, run)
RICH_TABLE_ROWS = 500


@dataclass
class Table:
    """Columns (``right``: the right-aligned ones; ``wrap``: those rich may fold on a narrow
    terminal) and rows. A cell is a text, or (text, style) to colour it on a terminal."""

    columns: tuple
    right: tuple = ()
    title: str = ""
    wrap: tuple = ()
    rows: list = field(default_factory=list)

    def add_row(self, *cells, style: str | None = None) -> None:
        self.rows.append((cells, style))


def write(blocks: list, file=None) -> None:
    """Print ``blocks`` (Tables, and lines: a text or (text, style); a text may hold several
    lines), rich or plain as above."""
    out = file or sys.stdout
    rows = sum(len(block.rows) for block in blocks if isinstance(block, Table))
    terminal = getattr(out, "isatty", lambda: False)() or bool(os.environ.get("FORCE_COLOR"))
    if rows > RICH_TABLE_ROWS or not terminal:
        out.write(plain_text(blocks))
    else:
        from rich.console import Console
        write_rich(blocks, Console(file=out, highlight=False))


def _lines(block) -> tuple[list, str]:
    """A line block's lines and style."""
    text, style = (block, "") if isinstance(block, str) else block
    return text.split("\n"), style


def _text(cell) -> str:
    return escape.visible(cell if isinstance(cell, str) else cell[0])


def plain_text(blocks: list) -> str:
    """The blocks as plain text: each table as rich's SIMPLE_HEAD box draws it, then a blank line."""
    return "".join(plain_table(block) if isinstance(block, Table) else "".join(
        escape.visible(line) + "\n" for line in _lines(block)[0]) for block in blocks)


def plain_table(table: Table) -> str:
    rows = [tuple(map(_text, cells)) for cells, _ in table.rows]
    widths = [max(map(len, cells)) for cells in zip(table.columns, *rows)]
    flush = [header in table.right for header in table.columns]

    def line(cells) -> str:
        return ("  " + "   ".join(cell.rjust(width) if to_right else cell.ljust(width)
                                  for cell, width, to_right in zip(cells, widths, flush))).rstrip()
    rule = " " + "\u2500" * (sum(widths) + 3 * (len(widths) - 1) + 2)
    head = [escape.visible(table.title)] if table.title else []
    return "\n".join([*head, "", line(table.columns), rule, *map(line, rows), "", ""])


def write_rich(blocks: list, console) -> None:
    """The blocks on a rich Console, cells and lines as plain text with their styles."""
    from rich import box
    from rich.table import Table as RichTable

    def text(cell):
        return escape.rich(cell) if isinstance(cell, str) else escape.rich(*cell)

    for block in blocks:
        if not isinstance(block, Table):
            lines, style = _lines(block)
            for line in lines:
                console.print(escape.rich(line, style))
            continue
        table = RichTable(title=text(block.title) if block.title else None, title_justify="left",
                          header_style="bold", box=box.SIMPLE_HEAD)
        for header in block.columns:
            table.add_column(header, justify="right" if header in block.right else "left",
                             no_wrap=header not in block.wrap)
        for cells, style in block.rows:
            table.add_row(*map(text, cells), style=style)
        console.print(table)
