"""Every `$ archcalc ...` example in README.md and docs/*.md is run, and its output compared.

An example is a fenced block whose first line is `$ archcalc ...`; each `$ ` line in it is a command
(a trailing backslash continues it, `#` starts a comment), the lines up to the next one its output
(standard output, then standard error), compared line by line, exactly, with two
documented normalisations:
- a line `...` alone stands for any number of lines (none included): the example shows a part;
- a block after the comment `<!-- output varies: REASON -->` (timings, say) compares every line with
  its numbers masked, so the wording and layout are checked and the measured figures are not.
The exit code must be 2 when the example shows an `error:` line, 0 otherwise. Commands that need
PyTorch (run, export, import) are skipped without it; those that time passes are marked slow. The Python
blocks of docs/api.md run too: an expression commented with a number must give it.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from archcalc.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VARIES = re.compile(r"<!--\s*output varies:\s*(.+?)\s*-->")
NUMBER = re.compile(r"\d[\d,.]*")
TORCH_COMMANDS = {"run", "export", "import"}


@dataclass(frozen=True)
class Example:
    page: str
    line: int          # 1-based line of the command in its page
    argv: tuple[str, ...]
    expected: tuple[str, ...]
    varies: bool

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def fenced_blocks(text: str) -> list[tuple[int, list[str], bool]]:
    """(line of the block's first content line, its lines, whether an 'output varies' comment precedes it)."""
    lines = text.splitlines()
    blocks: list[tuple[int, list[str], bool]] = []
    index = 0
    while index < len(lines):
        opening = lines[index].strip()
        if opening.startswith("```"):
            fence = opening[: len(opening) - len(opening.lstrip("`"))]
            indent = len(lines[index]) - len(lines[index].lstrip())
            before = [line for line in lines[:index] if line.strip()]
            varies = bool(before) and VARIES.search(before[-1]) is not None
            end = index + 1
            while end < len(lines) and lines[end].strip() != fence:
                end += 1
            blocks.append((index + 2, [line[indent:] for line in lines[index + 1:end]], varies))
            index = end + 1
        else:
            index += 1
    return blocks


def examples_of(page: Path) -> list[Example]:
    found: list[Example] = []
    name = page.relative_to(ROOT).as_posix()
    for first, lines, varies in fenced_blocks(page.read_text(encoding="utf-8")):
        if not lines or not lines[0].startswith("$ archcalc"):
            continue
        index = 0
        while index < len(lines):
            line = lines[index]
            assert line.startswith("$ "), f"{name}:{first + index}: expected a command, got {line!r}"
            start = first + index
            command = line[2:]
            while command.endswith("\\"):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            argv = shlex.split(command, comments=True)
            assert argv[0] == "archcalc", f"{name}:{start}: only archcalc commands can be checked: {command}"
            index += 1
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            found.append(Example(name, start, tuple(argv[1:]), tuple(output), varies))
    return found


EXAMPLES = [example for page in PAGES for example in examples_of(page)]


def marks(example: Example) -> list[pytest.MarkDecorator]:
    timed = example.argv[0] == "run" and ({"-n", "--iterations", "--nproc"} & set(example.argv))
    return [pytest.mark.slow] if timed else []


def matches(expected: list[str], actual: list[str], varies: bool) -> bool:
    """Whether actual follows expected line by line, '...' standing for any number of lines."""
    def same(want: str, got: str) -> bool:
        if varies:
            return NUMBER.sub("#", want.rstrip()) == NUMBER.sub("#", got.rstrip())
        return want.rstrip() == got.rstrip()

    def match(i: int, j: int) -> bool:
        while i < len(expected) and expected[i].strip() != "...":
            if j >= len(actual) or not same(expected[i], actual[j]):
                return False
            i, j = i + 1, j + 1
        if i == len(expected):
            return j == len(actual)
        return any(match(i + 1, k) for k in range(j, len(actual) + 1))

    return match(0, 0)


def test_every_page_has_examples():
    pages = {example.page for example in EXAMPLES}
    assert "README.md" in pages
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize(
    "example", [pytest.param(example, id=example.id, marks=marks(example)) for example in EXAMPLES]
)
def test_example_output(example: Example, monkeypatch, tmp_path):
    if example.argv[0] in TORCH_COMMANDS:
        pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    argv = list(example.argv)
    if "-o" in argv and argv[argv.index("-o") + 1] != "-":  # write files under tmp, not in the checkout
        target = argv.index("-o") + 1
        argv[target] = str(tmp_path / argv[target])
    result = CliRunner().invoke(main, argv)
    actual = (result.stdout + result.stderr).replace(str(tmp_path) + "/", "").splitlines()
    expected = list(example.expected)
    wanted = 2 if any("error:" in line for line in expected) else 0
    assert result.exit_code == wanted, result.output
    assert matches(expected, actual, example.varies), (
        f"{example.id}: archcalc {' '.join(example.argv)} printed:\n{result.output}"
    )


def test_links_point_at_shipped_files():
    """Every relative link and image of the pages names a file of the checkout."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)|src=\"([^\"]+)\"")
    for page in PAGES:
        for found in link.finditer(page.read_text(encoding="utf-8")):
            target = found.group(1) or found.group(2)
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: {target} does not exist"


def test_ellipsis_matching():
    assert matches(["a", "...", "d"], ["a", "b", "c", "d"], varies=False)
    assert matches(["a", "..."], ["a"], varies=False)
    assert not matches(["a", "d"], ["a", "b", "d"], varies=False)
    assert matches(["took 1.5 ms"], ["took 2.25 ms"], varies=True)
    assert not matches(["took 1.5 ms"], ["took 2.25 s"], varies=True)


def api_blocks() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    return [block for block in re.findall(r"```python\n(.*?)```", text, re.S)]


def run_api_block(source: str, namespace: dict) -> None:
    """Execute a block of docs/api.md statement by statement; an expression whose line ends with
    '# 123' (or '# True') must give that value."""
    lines = source.splitlines()
    for statement in ast.parse(source).body:
        code = ast.get_source_segment(source, statement)
        if isinstance(statement, ast.Expr):
            comment = lines[statement.lineno - 1].partition("#")[2].strip().split(",")[0]
            value = eval(compile(ast.Expression(statement.value), "docs/api.md", "eval"), namespace)
            if re.fullmatch(r"\d+|True", comment):
                assert str(value) == comment, f"docs/api.md: {code} gives {value}, the page says {comment}"
        else:
            exec(compile(ast.Module([statement], []), "docs/api.md", "exec"), namespace)


def test_api_static_block(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    run_api_block(api_blocks()[0], {})


@pytest.mark.slow
def test_api_torch_block(monkeypatch, capsys):
    pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    static, torch_block = api_blocks()
    exec(compile(static, "docs/api.md", "exec"), namespace)
    run_api_block(torch_block, namespace)


def test_api_comments_are_checked():
    with pytest.raises(AssertionError):
        run_api_block("x = 2\nx + 1  # 4", {})
