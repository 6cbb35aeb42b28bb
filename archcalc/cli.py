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


def analysis_options(command):
    """--batch, --dtype, --input, --rounding: shared by every command that analyzes a spec."""
    options = [
        click.option("--batch", "-b", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Samples per batch (scales activation memory)."),
        click.option("--dtype", type=click.Choice(list(DTYPE_BYTES)), default="float32", show_default=True,
                     help="Bytes per number for memory figures."),
        click.option("--input", "input_shape", callback=parse_input_option, metavar="CxHxW",
                     help="Override the spec's input shape, channels first, e.g. 3x64x64."),
        click.option("--set", "spec_params", multiple=True, metavar="NAME=VALUE", expose_value=False,
                     callback=_store_spec_params,
                     help="Override one of the spec's params (repeatable), e.g. --set vocab=27."),
        click.option("--rounding", type=click.Choice(ROUNDINGS),
                     help="Override every conv/pool's rounding: strict refuses a D-F-S combination "
                          "that is not whole; floor (PyTorch) and ceil (Caffe) accept it."),
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
