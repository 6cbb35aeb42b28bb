"""The command line. The library raises; this module alone prints messages and picks exit codes.

Exit codes: 0 ok, 1 a verification disagreed, 2 an invalid spec or usage error.
"""
from __future__ import annotations

import functools
import sys

import click

from .analysis import DTYPE_BYTES
from .errors import ArchcalcError, SpecError
from .geometry import ROUNDINGS

EXIT_INVALID = 2


def fail(message: str, code: int = EXIT_INVALID):
    click.echo(message if "error:" in message.split("\n")[0] else f"error: {message}", err=True)
    sys.exit(code)


def reports_errors(command):
    """Turn the library's errors into one clear message and exit code 2, never a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ArchcalcError as exc:
            fail(str(exc))
    return wrapper


def parse_input_option(ctx, param, value):
    if value is None:
        return None
    from .spec import parse_input
    from .errors import Location
    try:
        return parse_input(value, Location("--input", 1, 1))
    except SpecError as exc:
        raise click.BadParameter(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None


def _store_spec_params(ctx, param, values):
    """Keep --set NAME=VALUE pairs on the context, for load_and_analyze (values read as YAML)."""
    import yaml

    parsed = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param=param)
        parsed[name.strip()] = yaml.safe_load(value)
    ctx.meta["archcalc.spec_params"] = parsed


def spec_params() -> dict:
    """The --set overrides of the running command (empty outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("archcalc.spec_params", {}) if ctx else {}


INPUT_OPTION = click.option("--input", "input_shape", callback=parse_input_option, metavar="CxHxW",
                            help="Override the spec's input shape, channels first, e.g. 3x64x64.")
SET_OPTION = click.option("--set", "spec_params", multiple=True, metavar="NAME=VALUE", expose_value=False,
                          callback=_store_spec_params,
                          help="Override one of the spec's params (repeatable), e.g. --set vocab=27.")
ROUNDING_OPTION = click.option("--rounding", type=click.Choice(ROUNDINGS),
                               help="Override every conv/pool's rounding: strict refuses a D-F-S combination "
                                    "that is not whole; floor (PyTorch) and ceil (Caffe) accept it.")


def analysis_options(command):
    """--batch, --dtype, --input, --set, --rounding: shared by every command that analyzes a spec."""
    options = [
        click.option("--batch", "-b", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Samples per batch (scales activation memory)."),
        click.option("--dtype", type=click.Choice(list(DTYPE_BYTES)), default="float32", show_default=True,
                     help="Bytes per number for memory figures."),
        INPUT_OPTION, SET_OPTION, ROUNDING_OPTION,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def load_and_analyze(spec_path: str, input_shape, batch: int, dtype: str, rounding, partial: bool = False):
    """(analysis, baseline): baseline is the analysis at the spec's own input when --input moved it."""
    from .analysis import analyze
    from .spec import load

    spec = load(spec_path, spec_params())
    analysis = analyze(spec, input_shape=input_shape, batch=batch, dtype=dtype, rounding=rounding,
                       partial=partial)
    baseline = None
    if input_shape is not None and tuple(input_shape) != spec.input_shape:
        try:
            baseline = analyze(spec, batch=batch, dtype=dtype, rounding=rounding)
        except SpecError:
            baseline = None
    return analysis, baseline


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archcalc")
def main():
    """archcalc: exact shapes, parameters, neurons and memory of a network spec.

    Write the network as YAML (see specs/ and the README), then: archcalc inspect SPEC
    """


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json", "markdown", "csv"]),
              default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="Write the report to this file (atomically) instead of the terminal.")
@analysis_options
@reports_errors
def inspect(spec, fmt, output, batch, dtype, input_shape, rounding):
    """Every layer's output shape, size arithmetic, parameters and neurons, then totals.

    Static: no PyTorch, milliseconds. An invalid D-F-S combination stops with the arithmetic
    and the nearest fixes (exit code 2).
    """
    from . import report

    analysis, baseline = load_and_analyze(spec, input_shape, batch, dtype, rounding)
    if fmt == "table" and output is None:
        report.print_table(analysis, baseline)
        return
    text = report.render_text(analysis, fmt, baseline) if fmt != "table" else _table_text(analysis, baseline)
    if output:
        from .fileio import write_text
        write_text(output, text)
    else:
        click.echo(text, nl=False)


def _table_text(analysis, baseline) -> str:
    import io

    from . import report
    buffer = io.StringIO()
    report.print_table(analysis, baseline, file=buffer)
    return buffer.getvalue()


def _load(spec_path: str):
    from .spec import load
    return load(spec_path, spec_params())


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@analysis_options
@reports_errors
def explain(spec, batch, dtype, input_shape, rounding):
    """Every layer's arithmetic written out as on the board: (D-F+2P)/S+1, params, neurons.

    An invalid spec is explained up to the layer at fault, which is shown with the arithmetic
    that fails and its fixes; then the command exits with code 2.
    """
    from . import explain as board

    explanation = board.explain(_load(spec), input_shape=input_shape, batch=batch, dtype=dtype,
                                rounding=rounding)
    click.echo(board.render_text(explanation), nl=False)
    if explanation.error is not None:
        fail(str(explanation.error))


def parse_range_option(ctx, param, value):
    low, sep, high = value.partition("..")
    if not (sep and low.strip().isdigit() and high.strip().isdigit()):
        raise click.BadParameter(f"{value!r} is not a range: write it like 1..1024")
    return int(low), int(high)


@main.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--range", "size_range", default="1..1024", show_default=True, callback=parse_range_option,
              metavar="LOW..HIGH", help="Input sizes to try on each spatial axis.")
@click.option("--format", "-f", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format.")
@INPUT_OPTION
@SET_OPTION
@reports_errors
def solve(spec, size_range, fmt, input_shape):
    """Which input sizes make every layer valid, and what fixes the spec's (or --input's) size.

    A square input varies its sizes together (AlexNet: 227 works, 224 does not). For an
    invalid input, each offending layer is listed with the nearest stride, padding and kernel
    that make its D-F-S combination whole. Exit code 0 either way (2 for an unreadable spec).
    """
    from . import solve as solver

    solution = solver.solve(_load(spec), input_shape=input_shape, low=size_range[0], high=size_range[1])
    if fmt == "json":
        import json
        click.echo(json.dumps(solver.to_dict(solution), indent=2))
    else:
        click.echo(solver.render_text(solution), nl=False)


@main.command()
@click.argument("spec_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("spec_b", metavar="B", type=click.Path(dir_okay=False))
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="Output format.")
@click.option("--all", "show_all", is_flag=True, help="List every layer, not only those that differ.")
@analysis_options
@reports_errors
def diff(spec_a, spec_b, fmt, show_all, batch, dtype, input_shape, rounding):
    """Layer-by-layer and total differences between two specs (shapes, params, neurons, memory).

    Layers are matched by name, then the remaining ones by position. The options apply to both.
    """
    from . import diff as compare
    from .analysis import analyze

    a, b = (analyze(_load(path), input_shape=input_shape, batch=batch, dtype=dtype, rounding=rounding)
            for path in (spec_a, spec_b))
    result = compare.diff(a, b)
    if fmt == "json":
        import json
        click.echo(json.dumps(compare.to_dict(result), indent=2))
    else:
        compare.print_table(result, show_all)
