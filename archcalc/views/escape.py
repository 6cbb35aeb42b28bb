"""Names are data: how a text from a spec (a network, layer, input or repeat name) is written
into each output so that it shows literally and can never act as markup, code or a control.

One function per format, used by every view:
- ``visible``: plain text and terminals. Control characters (C0 and C1, DEL, the line and
  paragraph separators, the bidi overrides and isolates, lone surrogates) are written as
  Python writes them (``\\n``, ``\\x1b``, ``\\u202e``): one name stays on one line, and no
  escape sequence reaches the terminal. Everything else, backslashes included, is kept.
- ``rich``: a rich ``Text`` of the visible text, never parsed for markup (``[/x]``,
  ``[link=...]``) or emoji codes (``:smile:``).
- ``markdown``: the visible text with the characters that start markdown syntax escaped
  by a backslash (CommonMark: any ASCII punctuation may be), ``|`` included for table cells.
- ``html``: the visible text with ``& < > " '`` as entities, for Graphviz's HTML-like labels
  (render puts every name inside one, so none is a plain DOT string to break out of).
- ``textarea``: a text to edit (the spec in ``archcalc serve``'s editor) inside a <textarea>, kept
  exactly (controls and all: the editor must hold what the file holds), only ``&`` and ``<`` as
  entities, so no text ends the element.
- ``csv_text``: rows as CSV, every cell round-tripping through ``csv.reader``; a text cell that
  a spreadsheet would read as a formula (OWASP's CSV injection: it starts with ``= + - @``, a tab,
  a carriage return, a line feed or NUL) gets a single quote in front, ``'=cmd|...``.
JSON needs none: ``json.dumps`` escapes every control character and quote itself.
"""
from __future__ import annotations

import csv
import html as _html
import io
import re

# C0 controls, DEL and C1 controls, the arabic letter mark, LRM/RLM, the line/paragraph
# separators, the bidi embeddings/overrides (U+202A-E) and isolates (U+2066-9), surrogates
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# inline markdown (GitHub's): escapes, code, emphasis, links, HTML and entities, table cells,
# strikethrough, math, emoji codes and autolinks (http:); '#' closes a heading. A name never
# starts a line in our markdown (cells start with '| ', the title with '# '), so the block
# markers (-, +, 1.) need nothing.
MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~&$:])")
# what makes a spreadsheet read a cell as a formula (OWASP's CSV injection page, ASVS 1.2.10)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
# our own texts that start with '-': numbers written as text (a receptive field's start per axis,
# '-3x-3') and the trainable column's '--' (no parameters). A spreadsheet may try them as a formula,
# but they name no function and no cell, so they are kept as written
NUMBERS = re.compile(r"-+|-?\d+(\.\d+)?(x-?\d+(\.\d+)?)*")


def _shown(match: re.Match) -> str:
    char = match.group()
    if char in NAMED:
        return NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text) -> str:
    """The text on one line with every control character written out: 'a\\x1b[31m' stays
    as those characters, a newline shows as '\\n'."""
    text = str(text)
    return CONTROL.sub(_shown, text) if CONTROL.search(text) else text


def rich(text, style: str = ""):
    """A rich Text showing ``text`` literally (visible), in ``style``: rich reads no markup in it."""
    from rich.text import Text

    return Text(visible(text), style=style)


def markdown(text) -> str:
    """The text for a markdown line or table cell: visible, then every character that could start
    inline markup or end a table cell escaped with a backslash."""
    return MARKDOWN.sub(r"\\\1", visible(text))


def html(text) -> str:
    """The text inside an HTML (or Graphviz HTML-like) label: visible, entities for & < > " '."""
    return _html.escape(visible(text), quote=True)


def textarea(text: str) -> str:
    """The exact text inside a <textarea> (the caller adds the newline right after the start tag,
    which the HTML parser drops, so a text starting with a newline keeps it)."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def csv_cell(cell):
    """A cell as a spreadsheet should show it: a text starting with one of FORMULA_START (a layer
    named '=HYPERLINK(...)' or '@SUM(A1)') with a single quote in front, OWASP's rule, so that Excel,
    LibreOffice and Google Sheets read it as text; numbers, texts of numbers only and '--' as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not NUMBERS.fullmatch(cell):
        return "'" + cell
    return cell


def csv_text(rows, header: list | None = None) -> str:
    """CSV with '\\n' line ends, every cell through csv_cell. The csv module quotes a cell holding
    the delimiter, a quote or a newline; one holding a bare carriage return it would leave unquoted
    (it checks only the line terminator's characters), so such a row is written with every cell
    quoted."""
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in ([header] if header else []) + list(rows):
        cells = [csv_cell(cell) for cell in row]
        needs = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (quoted if needs else plain).writerow(cells)
    return buffer.getvalue()
