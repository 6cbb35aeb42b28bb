"""What every view's output shares: the JSON schema version, the one layout of every table
(inspect, diff, run) and every text (explain, solve) at a terminal's width, and the one choice
of rich colours or plain text.

A view describes its tables (``Table``) and lines; ``write`` lays them out. The layout never
cuts or folds a number, at any width: when a table is wider than the terminal,
1. the ``under`` columns (the arithmetic, what changed) leave the row and go under it;
2. the text columns wrap: names (``fold``) anywhere, preferring a '.', '_', '-' or '/'; other
   text (kinds, shapes side by side) only at spaces, so a shape or a number stays whole;
3. the columns that still do not fit go onto a second line of the row (a band), indented, under
   a second header line; numbers keep their own aligned columns there.
Lines wrap at spaces with a hanging indent. A pipe or a file gets the natural layout (one line per
row, nothing wrapped: for grep and scripts), like a terminal wide enough for it.

A terminal (or FORCE_COLOR, as rich reads it) gets rich's colours, line by line; a pipe, a file,
and any output of more than RICH_TABLE_ROWS rows get the same lines as plain text, without rich's
import (40 ms of a 160 ms start). Every cell, title and line is written through views/escape:
names show literally, never as markup or controls.
"""
from __future__ import annotations

import os
import re
import sys
import unicodedata
from dataclasses import dataclass, field

from . import escape

JSON_SCHEMA_VERSION = 3  # every JSON document archcalc writes (inspect, solve, diff, run); 2: inspect's sequence
# figures; 3: inspect's inference peak (the memory schedule's)
RICH_TABLE_ROWS = 500
GAP = 3          # between two columns, as rich's SIMPLE_HEAD box draws them (pad, separator, pad)
BAND_INDENT = 4  # a row's second line (band) starts this much further right
UNDER_INDENT = 4  # where a row's under-column text starts, past the table's left margin
NAME_FLOOR = 10  # a name column narrows to this before a row takes a second band
NAME_BREAKS = "._-/"  # where a long name prefers to wrap


@dataclass
class Table:
    """Columns by header and rows. ``right``: the number columns (right-aligned, never broken);
    ``under``: those that go under their row when the table is too wide (a row whose other cells
    are empty, such as a note, is then its under text alone); ``fold``: name columns, which may
    wrap inside a word. A cell is a text, or (text, style) to colour it on a terminal."""

    columns: tuple
    right: tuple = ()
    title: str = ""
    under: tuple = ()
    fold: tuple = ()
    together: tuple = ()  # runs of columns (headers, in order) that a narrow layout keeps on one line
    rows: list = field(default_factory=list)

    def add_row(self, *cells, style: str | None = None) -> None:
        self.rows.append((cells, style))


def terminal_width(out) -> int | None:
    """The width to lay out for: the terminal's (COLUMNS first, as rich reads it), or None for
    a pipe or a file (FORCE_COLOR makes any output a terminal, 80 wide unless COLUMNS says)."""
    if not (getattr(out, "isatty", lambda: False)() or os.environ.get("FORCE_COLOR")):
        return None
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, OSError, ValueError):
        return 80


def write(blocks: list, file=None) -> None:
    """Print ``blocks`` (Tables, and lines: a text or (text, style); a text may hold several
    lines), laid out for the output's width, rich or plain as above."""
    out = file or sys.stdout
    width = terminal_width(out)
    rows = sum(len(block.rows) for block in blocks if isinstance(block, Table))
    if width is None or rows > RICH_TABLE_ROWS:
        out.write(plain_text(blocks, width))
    else:
        from rich.console import Console
        write_rich(blocks, Console(file=out, highlight=False, width=width))


def write_text(text: str, file=None) -> None:
    """Plain text (explain, solve): each line wrapped at spaces to the terminal's width, with a
    hanging indent; unchanged in a pipe or a file."""
    out = file or sys.stdout
    width = terminal_width(out)
    lines = text.split("\n")
    last = lines.pop() if lines else ""
    out.write("".join(wrapped + "\n" for line in lines for wrapped in wrap_line(escape.visible(line), width))
              + escape.visible(last))


def plain_text(blocks: list, width: int | None = None) -> str:
    """The blocks as plain text: each table as rich's SIMPLE_HEAD box draws it, then a blank line."""
    return "\n".join(line if type(line) is str else "".join([text for text, _ in line]).rstrip()
                     for line in lay_out(blocks, width, False)) + "\n"


def write_rich(blocks: list, console) -> None:
    """The blocks on a rich Console, laid out for its width, each line as plain text with its styles."""
    from rich.text import Text

    for line in lay_out(blocks, console.width):
        text = Text()
        for part, style in line:
            text.append(part, style or "")
        text.rstrip()
        console.print(text, soft_wrap=True)


def markdown_table(table: Table) -> list[str]:
    """The table as markdown lines: the header, the alignment row (numbers to the right), one line
    per row, every cell escaped (escape.markdown: a name stays literal, a '|' ends no cell)."""
    def line(cells) -> str:
        return "| " + " | ".join(escape.markdown(cell if isinstance(cell, str) else cell[0]) for cell in cells) + " |"

    align = "|" + "".join("---:|" if column in table.right else "---|" for column in table.columns)
    return [line(table.columns), align, *(line(cells) for cells, _ in table.rows)]


# --- layout -----------------------------------------------------------------------------------

def lay_out(blocks: list, width: int | None, styled: bool = True) -> list:
    """Every output line as [(text, style), ...], none wider than ``width`` (None: natural);
    without ``styled``, a table row on one line is its text alone (plain text: 3x faster for big
    tables)."""
    lines: list = []
    for block in blocks:
        if isinstance(block, Table):
            lines += table_lines(block, width, styled)
        else:
            text, style = (block, "") if isinstance(block, str) else block
            for line in text.split("\n"):
                lines += [[(part, style)] for part in wrap_line(escape.visible(line), width)]
    return lines


def cell_width(text: str) -> int:
    """Terminal cells: 2 for wide (East Asian) characters, 0 for combining marks."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def wrap_line(line: str, width: int | None) -> list[str]:
    """A line wrapped at spaces to ``width``; continuation lines indented two past the line's own
    indent. A word longer than the room is broken only where nothing else can be done."""
    if width is None or cell_width(line) <= width:
        return [line]
    indent = len(line) - len(line.lstrip(" "))
    hanging = " " * min(indent + 2, max(width // 2, 0))
    parts = wrap_cell(line[indent:], width - indent, fold=True, first=width - indent,
                      rest=width - len(hanging))
    return [line[:indent] + parts[0], *(hanging + part for part in parts[1:])]


_SPACE = re.compile(r" +")


def wrap_cell(text: str, width: int, fold: bool, first: int | None = None, rest: int | None = None) -> list[str]:
    """``text`` in lines of at most ``width`` cells (``first``/``rest`` for the first and later
    lines), broken at spaces; a word too long for a line is broken only when ``fold`` (inside a
    name: after a '.', '_', '-' or '/' if one is near, else where the room ends)."""
    first = width if first is None else first
    rest = width if rest is None else rest
    if cell_width(text) <= first:
        return [text]
    lines: list[str] = []
    current = ""
    for word in _SPACE.split(text):
        room = first if not lines else rest
        if not current:
            candidate = word
        else:
            candidate = current + " " + word
        if cell_width(candidate) <= room:
            current = candidate
            continue
        if current:
            lines.append(current)
            current = ""
        room = first if not lines else rest
        while fold and cell_width(word) > room > 0:
            head = _fold_point(word, room)
            lines.append(word[:head])
            word = word[head:]
            room = rest
        current = word
    return lines + [current] if current or not lines else lines


def _fold_point(word: str, room: int) -> int:
    """How many characters of ``word`` fill at most ``room`` cells, ending after a separator
    when one lies in the second half of that room."""
    count, used = 0, 0
    for char in word:
        used += cell_width(char)
        if used > room:
            break
        count += 1
    count = max(count, 1)
    breaks = [i + 1 for i in range(count) if word[i] in NAME_BREAKS]
    return breaks[-1] if breaks and breaks[-1] > count // 2 and breaks[-1] < len(word) else count


def _words_width(text: str) -> int:
    return max((cell_width(word) for word in _SPACE.split(text)), default=0)


def table_lines(table: Table, width: int | None, styled: bool = True) -> list:
    """The table's lines: its title, a blank line, the header, a rule, the rows, a blank line;
    at ``width``, in the narrowest of the layouts in the module docstring that fits."""
    header = tuple(escape.visible(column) for column in table.columns)
    rows = [(tuple(map(_cell_text, cells)), tuple(map(_cell_style, cells)) if styled else (), style)
            for cells, style in table.rows]
    count = len(table.columns)
    natural = [max(map(cell_width, column)) for column in zip(header, *(cells for cells, _, _ in rows))]
    one_line = width is None or sum(natural) + GAP * count <= width  # every row on one line, nothing wrapped
    if one_line:
        bands, widths, under = [list(range(count))], natural, []
    else:
        under = [i for i, column in enumerate(table.columns) if column in table.under]
        inline = [i for i in range(count) if i not in under]
        floors = {i: _floor(table, i, header, rows, natural[i]) for i in inline}
        bands = _bands(inline, floors, width, _runs(table))
        widths = list(natural)
        for number, band in enumerate(bands):
            room = width - BAND_INDENT * number - GAP * len(band)
            _share(band, floors, natural, widths, room, table, header)
    right = [column in table.right for column in table.columns]
    fold = [column in table.fold for column in table.columns]

    def row_lines(cells, styles, style) -> list:
        if one_line and not styled:  # the fast path of plain text: one string per row
            return ["  " + "   ".join([(cell.rjust if to_right else cell.ljust)(
                width if cell.isascii() else width + len(cell) - cell_width(cell))
                for cell, width, to_right in zip(cells, widths, right)]).rstrip()]
        styles = styles or (None,) * count
        lines: list[list] = []
        for number, band in enumerate(bands):
            if not any(cells[i] for i in band):
                continue
            wrapped = {i: wrap_cell(cells[i], widths[i], fold[i]) for i in band}
            for k in range(max(len(parts) for parts in wrapped.values())):
                line = [("  " + " " * (BAND_INDENT * number), None)]
                for j, i in enumerate(band):
                    part = wrapped[i][k] if k < len(wrapped[i]) else ""
                    pad = " " * max(widths[i] - cell_width(part), 0)
                    if j:
                        line.append((" " * GAP, None))
                    line += [(pad, None), (part, styles[i] or style)] if right[i] else [(part, styles[i] or style),
                                                                                    (pad, None)]
                lines.append(line)
        for i in under:
            if not cells[i]:
                continue
            room = (width or 0) - 2 - UNDER_INDENT
            for part in wrap_cell(cells[i], room, fold=True):
                lines.append([("  " + " " * UNDER_INDENT, None), (part, styles[i] or style or "dim")])
        return lines

    span = max(sum(widths[i] for i in band) + GAP * len(band) - 1 + BAND_INDENT * number
               for number, band in enumerate(bands))
    title = [[(part, "")] for part in wrap_line(escape.visible(table.title), width)] if table.title else []
    body = [line for cells, styles, style in rows for line in row_lines(cells, styles, style)]
    head = row_lines(header, (None,) * count, "bold")
    return [*title, [("", None)], *head, [(" " + "\u2500" * span, None)], *body, [("", None)]]


def _cell_text(cell) -> str:
    return escape.visible(cell) if type(cell) is str else escape.visible(cell[0])


def _cell_style(cell) -> str | None:
    return None if isinstance(cell, str) else cell[1]


def _floor(table: Table, i: int, header: tuple, rows: list, natural: int) -> int:
    """The narrowest a column may be: a number column its widest cell; a name column NAME_FLOOR
    (or less, if it is narrower); other text its longest word. A header may wrap at spaces."""
    column = table.columns[i]
    head = _words_width(header[i])
    if column in table.right:
        return max([head] + [cell_width(cells[i]) for cells, _, _ in rows])
    if column in table.fold:
        return max(head, min(natural, NAME_FLOOR))
    return max([head] + [_words_width(cells[i]) for cells, _, _ in rows])


def _runs(table: Table) -> dict:
    """{index of a run's first column: the indices of its run} for Table.together."""
    index = {column: i for i, column in enumerate(table.columns)}
    runs = [[index[column] for column in run if column in index] for run in table.together]
    return {run[0]: run for run in runs if run}


def _bands(inline: list, floors: dict, width: int, runs: dict) -> list[list]:
    """The columns in order, as many per line as fit at their floors; a run of ``together``
    columns starts a new line unless all of it fits on the current one."""
    bands: list[list] = [[]]
    for i in inline:
        band = bands[-1]
        indent = BAND_INDENT * (len(bands) - 1)
        coming = [j for j in runs.get(i, [i]) if j in floors and j not in band]
        if band and indent + sum(floors[j] for j in band + coming) + GAP * (len(band) + len(coming)) > width:
            bands.append([i])
        else:
            band.append(i)
    return bands


def _share(band: list, floors: dict, natural: list, widths: list, room: int, table: Table, header: tuple) -> None:
    """Give a band's columns their floors, then the room left, left to right, up to their
    natural widths; a lone name column wider than the room gets the room (it wraps)."""
    for i in band:
        widths[i] = floors[i]
    spare = room - sum(floors[i] for i in band)
    if spare < 0:
        for i in band:
            if table.columns[i] in table.fold:
                widths[i] = max(floors[i] + spare, _words_width(header[i]), 1)
        return
    for i in band:
        extra = min(natural[i] - widths[i], spare)
        widths[i] += extra
        spare -= extra
