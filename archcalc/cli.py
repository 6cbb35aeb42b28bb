"""The command line. The library raises; this module alone prints messages and picks exit codes.

Exit codes: 0 ok, 1 a verification disagreed, 2 an invalid spec or usage error.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys

import click

from .choices import (
    COLUMNS,
    DETAILS,
    DTYPE_BYTES,
    MIXED_PRECISION,
    MODEL_DTYPES,
    OPTIMIZER_STATES,
    RANKDIRS,
    REPORT_FORMATS,
    SOLVE_FORMATS,
    TABLE_FORMATS,
)
from .errors import ArchcalcError, SpecError, UsageError, VerificationFailed
from .gcpause import paused_gc
from .layers.geometry import ROUNDINGS


class Archcalc(click.Group):
    """The command group, and the one place where an error becomes a message and an exit code.

    Every error the library raises, and every refusal of click's own (an unknown option, a
    missing argument), is printed here as 'error: ...' with its hint; nothing ends in a
    traceback but a bug. Commands run with the cycle collector paused (see gcpause): reports
    of big networks build many objects too.
    """

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # the caller handles exceptions itself
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            paused_gc(super().main)(args, prog_name, complete_var, False, **extra)
        except ArchcalcError as error:
            report(error)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare 'archcalc': the help, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            report(_from_click(exc))
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the reader left: stop quietly
            sys.exit(1)
        sys.exit(0)


def report(error: ArchcalcError):
    """Print an error (what, where, hint) on stderr and exit with its code."""
    warn(error)
    sys.exit(error.exit_code)


def _from_click(exc: click.ClickException) -> ArchcalcError:
    """click's own refusal (no such option, missing argument, a directory as SPEC) in archcalc's form."""
    text = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    error = ArchcalcError(text[:1].lower() + text[1:],
                          hint=f"'{ctx.command_path} --help' lists what it takes" if ctx else "")
    error.exit_code = exc.exit_code
    return error


class Option(click.Option):
    """Every option of every command. Its value goes through click's type, then the callback;
    whatever either refuses becomes one UsageError naming the option, the value and what it takes.

    ``accepted`` says what the option takes; click's own types (Choice, IntRange, int) say it
    themselves.
    """

    def __init__(self, *args, accepted: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.accepted = accepted or _accepted(self.type)

    def process_value(self, ctx, value):
        try:
            return super().process_value(ctx, value)
        except click.MissingParameter:
            raise
        except click.BadParameter as exc:  # click's own types
            reason = exc.message.rstrip(".")
            if isinstance(self.type, click.Choice):
                from .layers.arguments import closest
                suggestion = closest(value, self.type.choices)
                reason = f"unknown value {value!r}" + (f"; {suggestion}" if suggestion.startswith("did") else "")
            raise UsageError(self.opts[0], value, reason, self.accepted) from None
        except UsageError:
            raise
        except ArchcalcError as exc:  # our converters: the library's message and hint
            raise UsageError(self.opts[0], value, exc.message, self.accepted, hint=exc.hint) from None
        except (ValueError, OverflowError) as exc:
            raise UsageError(self.opts[0], value, str(exc), self.accepted) from None


def _accepted(kind) -> str:
    if isinstance(kind, click.Choice):
        return "one of " + ", ".join(map(str, kind.choices))
    if isinstance(kind, click.IntRange):
        return f"a whole number >= {kind.min}" if kind.max is None else f"a whole number {kind.min}..{kind.max}"
    if kind is click.INT:
        return "a whole number"
    return ""


option = functools.partial(click.option, cls=Option)


def format_option(*formats: str):
    """--format/-f: one of ``formats`` (the first by default)."""
    return option("--format", "-f", "fmt", type=click.Choice(formats), default=formats[0],
                  show_default=True, help="Output format.")


def parse_input_option(ctx, param, value):
    if value is None:
        return None
    from .errors import Location
    from .spec import parse_input_text
    return parse_input_text(value, Location("--input", 1, 1))


def parse_input_options(ctx, param, values):
    """A repeated --input: one shape per value."""
    return tuple(parse_input_option(ctx, param, value) for value in values)


def parse_budget_option(ctx, param, value):
    """A memory size with its unit (24GB, 16GiB): a bare number is refused."""
    if value is None:
        return None
    from .units import parse_bytes
    return parse_bytes(value)


def parse_rate_option(unit: str):
    def parse(ctx, param, value):
        if value is None:
            return None
        from .units import parse_rate
        return parse_rate(value, unit)
    return parse


def parse_columns_option(ctx, param, value):
    """--columns: names from report.COLUMNS, separated by commas; an unknown one gets a did-you-mean."""
    if value is None:
        return None
    from .layers.arguments import closest

    names = tuple(name.strip().lower() for name in value.split(","))
    for name in names:
        if name not in COLUMNS:
            suggestion = closest(name, COLUMNS)
            raise ValueError(f"unknown column {name!r}" + (f"; {suggestion}" if suggestion.startswith("did") else "")
                             + ("; the layer name is always the first column" if name in ("layer", "name") else ""))
    if len(set(names)) != len(names):
        raise ValueError("a column is named twice")
    return names


def parse_output_drawing(ctx, param, value):
    """The drawing's file name: its extension picks the format, refused before any work."""
    if value not in (None, "-", ""):  # an empty name is fileio.output_path's to refuse
        from .views import render as drawing
        drawing.format_of(value)
    return value


def _store_spec_params(ctx, param, values):
    """Keep the --set NAME=VALUE pairs on the context, for load_and_analyze: each value read as
    YAML by the spec's own loader, under the spec's limits (size, depth, aliases)."""
    from .spec.source import load_value

    parsed = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"{item!r} is not NAME=VALUE")
        try:
            parsed[name.strip()] = load_value(value)
        except SpecError as exc:
            raise UsageError("--set", item, f"{name.strip()}: {exc.message}", param.accepted,
                             hint="; ".join(filter(None, (exc.hint, f"--set takes {param.accepted}")))) from None
    ctx.meta["archcalc.spec_params"] = parsed


def spec_params() -> dict:
    """The --set overrides of the running command (empty outside a command)."""
    ctx = click.get_current_context(silent=True)
    return ctx.meta.get("archcalc.spec_params", {}) if ctx else {}


INPUT_OPTION = option("--input", "input_shape", callback=parse_input_option, metavar="CxHxW",
                      accepted="sizes channels first, like 3x64x64 or '[3, 64, 64]'",
                      help="Override the spec's input shape, channels first, e.g. 3x64x64.")
SET_OPTION = option("--set", "spec_params", multiple=True, metavar="NAME=VALUE", expose_value=False,
                    callback=_store_spec_params, accepted="NAME=VALUE, the value in YAML, e.g. vocab=27",
                    help="Override one of the spec's params (repeatable), e.g. --set vocab=27.")
FORCE_OPTION = option("--force", is_flag=True,
                      help="Write through -o when it is a symbolic link: to the file it points to.")
ROUNDING_OPTION = option("--rounding", type=click.Choice(ROUNDINGS),
                         help="Override every conv/pool's rounding: strict refuses a D-F-S combination "
                              "that is not whole; floor (PyTorch) and ceil (Caffe) accept it.")


SHARD_UNIT_OPTION = option(
    "--shard-unit", "shard_units", multiple=True, metavar="NAME", accepted="a repeat, block instance or layer name",
    help="FSDP's wrapping units: a repeat (each iteration one unit), a block instance or a layer "
         "(repeatable) [default: each layer's innermost repeat iteration or block instance].")
BANDWIDTH_OPTION = option("--bandwidth", callback=parse_rate_option("B"), metavar="BYTES/s",
                          accepted="a rate with its unit, e.g. 400GB/s",
                          help="Network bandwidth per GPU for the communication time, e.g. 400GB/s.")
THROUGHPUT_OPTION = option("--throughput", callback=parse_rate_option("FLOPs"), metavar="FLOPs/s",
                           accepted="FLOPs per second, e.g. 312TFLOPs/s or 1e15",
                           help="Compute per GPU for the compute time, e.g. 312TFLOPs/s or 1e15.")
CHECKPOINT_OPTION = option(
    "--checkpoint", "checkpoint", multiple=True, metavar="NAME",
    accepted="a repeat, block instance or layer name, or every:K",
    help="Activation checkpointing (torch.utils.checkpoint, non-reentrant) of a repeat (each iteration one "
         "segment), a block instance or a layer (repeatable), or every:K (the layers in runs of K): the "
         "peak without and with, and the FLOPs backward runs again.")
SHARD_STRATEGIES = ("none", "ddp", "zero1", "zero2", "fsdp")  # analysis.sharding.STRATEGIES, without its import


def sharding_options(command):
    """--gpus, --shard, --shard-unit, --bandwidth, --throughput."""
    options = [
        option("--gpus", type=click.IntRange(min=1), metavar="N",
               help="Train on N GPUs: per-GPU memory and communication (--batch is the global batch)."),
        option("--shard", type=click.Choice(SHARD_STRATEGIES),
               help="none (one GPU), ddp (replicas), zero1 (optimizer state sharded), zero2 (+ gradients), "
                    "fsdp (+ weights) [default with --gpus: ddp]."),
        SHARD_UNIT_OPTION, BANDWIDTH_OPTION, THROUGHPUT_OPTION,
    ]
    for add_option in reversed(options):
        command = add_option(command)
    return command


def sharding_request(gpus, shard, shard_units, bandwidth, throughput) -> dict | None:
    """What --gpus, --shard, --shard-unit, --bandwidth and --throughput ask for, as sharded_memory's
    strategy, gpus and shard_units (ddp by default on several GPUs, none on one); None: none given."""
    if gpus is None and shard is None and not (shard_units or bandwidth or throughput):
        return None
    return {"strategy": shard or ("ddp" if (gpus or 1) > 1 else "none"), "gpus": gpus or 1,
            "shard_units": shard_units}


MEMORY_BATCH = "Samples per batch: scales the activation memory figures."
MEMORY_DTYPE = "Number type the memory figures count in (bytes per number: float32 4, float16 2, ...)."


def analysis_options(batch: str | None = MEMORY_BATCH, dtype: str = MEMORY_DTYPE, dtypes=tuple(DTYPE_BYTES)):
    """--batch, --dtype, --input, --set, --rounding: shared by every command that analyzes a spec,
    each with the help of what it does in that command. ``batch=None``: the command has no batch
    (export), and --batch is refused with that reason."""
    batch_option = (option("--batch", "-b", type=click.IntRange(min=1), default=1, show_default=True, help=batch)
                    if batch is not None else
                    refused_option("--batch", "-b", reason="the exported module takes any batch size; "
                                                           "give the batch when calling it"))
    options = [batch_option,
               option("--dtype", type=click.Choice(list(dtypes)), default="float32", show_default=True, help=dtype),
               INPUT_OPTION, SET_OPTION, ROUNDING_OPTION]

    def decorate(command):
        for add_option in reversed(options):
            command = add_option(command)
        return command
    return decorate


def refused_option(*declarations: str, reason: str):
    """An option that cannot apply to a command (hidden): giving it is refused with ``reason``,
    rather than silently changing nothing."""
    def refuse(ctx, param, value):
        if value is not None:
            raise UsageError(param.opts[0], value, f"does not apply here: {reason}")
    return option(*declarations, hidden=True, expose_value=False, callback=refuse)


def given(ctx: click.Context, name: str) -> bool:
    """Whether the option was given on the command line (not its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source != click.core.ParameterSource.DEFAULT


def refuse_unless(ctx: click.Context, condition: bool, names: tuple, reason: str) -> None:
    """Refuse the options among ``names`` that were given when ``condition`` does not hold:
    they would change nothing."""
    if condition:
        return
    for name in names:
        if given(ctx, name):
            param = next(p for p in ctx.command.params if p.name == name)
            raise UsageError(param.opts[0], ctx.params[name], f"does not apply here: {reason}")


def wrote(path: str, what: str, detail: str = "") -> None:
    """Say on stderr what was written: 'wrote report.json (JSON, 12.30 kB)'."""
    from .units import decimal_bytes
    from .views.escape import visible

    size = decimal_bytes(os.path.getsize(path))
    click.echo(f"wrote {visible(path)} ({what}, {size}){detail}", err=True)


def load_and_analyze(spec_path: str, input_shape, batch: int, dtype: str, rounding, partial: bool = False):
    """(analysis, baseline): baseline is the analysis at the spec's own input when --input moved it."""
    from .analysis import analyze

    spec = _load(spec_path, input_shape)
    analysis = analyze(spec, input_shape=input_shape, batch=batch, dtype=dtype, rounding=rounding,
                       partial=partial)
    baseline = None
    if input_shape is not None and analysis.input_shape != spec.input_shape:
        try:
            baseline = analyze(spec, batch=batch, dtype=dtype, rounding=rounding)
        except SpecError:
            baseline = None
    return analysis, baseline


@click.group(cls=Archcalc, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="archcalc")
def main():
    """archcalc: exact shapes, parameters, neurons and memory of a network spec.

    Write the network as YAML (see specs/ and the README), then: archcalc inspect SPEC
    """


@main.command(short_help="Every layer's shape, arithmetic, parameters and MACs.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--format", "-f", "fmt", type=click.Choice(REPORT_FORMATS),
        help="Output format [default: from -o's extension (.json, .md, .csv, .html, .txt), else table].")
@option("--output", "-o", metavar="FILE",
        help="Write the report to this regular file (atomically), in the format its extension names; "
             "'-' is standard output.")
@FORCE_OPTION
@option("--receptive-field", "--rf", "receptive_field", is_flag=True,
        help="Add each layer's receptive field per axis: size, jump (effective stride), start.")
@option("--train", is_flag=True,
        help="Add the training memory: weights, gradients, optimizer state, activations kept.")
@option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
        help="Optimizer state for --train and --max-batch (sgd 0, momentum 1, adam/adamw 2 per weight).")
@option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)),
        help="Train with fp32 master weights and 16-bit activations (torch.autocast).")
@option("--max-batch", "budget", callback=parse_budget_option, metavar="BYTES",
        accepted="a memory size such as 24GB, 16GiB or 500MB (1 GB = 10^9 B, 1 GiB = 2^30 B)",
        help="Largest batch that fits in this memory, for inference and training, e.g. 24GB or 16GiB.")
@option("--im2col", is_flag=True,
        help="Add each convolution as a matrix product: filter, column and output matrices.")
@option("--depth", type=click.IntRange(min=1), metavar="N",
        help="Sum the layers more than N blocks or repeats deep into one row per block or repeat "
             "(1: the top level); totals are unchanged. Table, markdown, CSV.")
@option("--columns", callback=parse_columns_option, metavar="LIST",
        accepted="column names separated by commas, from: " + ", ".join(COLUMNS),
        help="The columns after the layer name, in order, e.g. kind,output,params,params_percent,trainable "
             "(README: every column). Table, markdown, CSV.")
@option("--batch-axis", is_flag=True,
        help="Write shapes with the batch axis first, as PyTorch sees them: 8x96x55x55. Table, markdown, CSV.")
@option("--steps", type=click.IntRange(min=1), metavar="T",
        help="Tokens per sequence: the steps of the sequence input (when the spec writes them as a parameter, "
             "'steps: $T', that parameter, as --set T=... would).")
@option("--kv-cache", "kv_context", type=click.IntRange(min=1), metavar="TOKENS",
        help="Add the KV cache of autoregressive decoding at this context length, for --batch sequences in "
             "--dtype: per causal self-attention layer and in all.")
@sharding_options
@CHECKPOINT_OPTION
@analysis_options()
@click.pass_context
def inspect(ctx, spec, fmt, output, force, receptive_field, train, optimizer, mixed_precision, budget, im2col, depth,
            columns, batch_axis, steps, kv_context, gpus, shard, shard_units, bandwidth, throughput, checkpoint, batch,
            dtype, input_shape, rounding):
    """Every layer's output shape, size arithmetic, parameters, neurons and MACs, then totals.

    Static: no PyTorch, milliseconds. An invalid D-F-S combination stops with the arithmetic
    and the nearest fixes (exit code 2).
    """
    from .fileio import output_path
    from .views import report

    target = output_path(output, [spec], force)
    fmt = report_format(fmt, target)
    if fmt == "json":
        for name, given in (("--depth", depth is not None), ("--columns", columns), ("--batch-axis", batch_axis)):
            if given:
                raise UsageError(name, fmt, "does not apply to JSON, which lists every layer with all its figures",
                                 hint=f"use {name} with -f table, markdown or csv")
    sharding = sharding_request(gpus, shard, shard_units, bandwidth, throughput)
    sharded = sharding is not None
    refuse_unless(ctx, train or budget is not None, ("checkpoint",),
                  "it checkpoints the training step of --train and --max-batch; add one of them")
    _refuse_sharded_checkpoint(checkpoint, sharded)
    refuse_unless(ctx, train or budget is not None or sharded, ("optimizer", "mixed_precision"),
                  "it sets the training memory of --train, --max-batch and --gpus; add one of them")
    if columns and "kv_cache" in columns and kv_context is None:
        raise UsageError("--columns", ",".join(columns), "the kv_cache column needs --kv-cache TOKENS",
                         hint="add --kv-cache with the context length, e.g. --kv-cache 8192")
    if steps is not None:
        input_shape = _sized_steps(ctx, spec, steps, input_shape)
    analysis, baseline = load_and_analyze(spec, input_shape, batch, dtype, rounding, partial=fmt == "html")
    _keep_includes(output, analysis.spec)
    if analysis.error is not None:  # html only: the page shows the layers up to the failing one, in red
        _html_report(analysis, baseline, None, report.TableOptions(columns, depth, batch_axis), target, output)
        raise analysis.error.noted(f"shown in red in the page: {output}" if target else "shown in red in the page")
    if kv_context is not None:
        _check_kv_cache(analysis, kv_context)
    extras = report.extras(analysis, receptive_field=receptive_field or report.wants_receptive_fields(columns),
                           train=train, optimizer=optimizer, mixed_precision=mixed_precision, budget=budget,
                           im2col=im2col, sharding=sharding, rates=(bandwidth, throughput), kv_cache=kv_context,
                           segments=_checkpoint_segments(analysis, checkpoint))
    options = report.TableOptions(columns, depth, batch_axis)
    if fmt == "html":
        _html_report(analysis, baseline, extras, options, target, output)
        return
    if fmt == "table" and target is None:
        report.print_table(analysis, baseline, extras=extras, options=options)
        return
    text = (report.render_text(analysis, fmt, baseline, extras, options) if fmt != "table"
            else _table_text(analysis, baseline, extras, options))
    if target is None:
        click.echo(text, nl=False)
    else:
        from .fileio import write_text
        write_text(target, text)
        wrote(output, FORMAT_NAMES[fmt])


def _keep_includes(output: str | None, spec) -> None:
    """-o naming a block library the spec includes is refused, as -o naming the spec is: the
    output would destroy an input (known once the spec is read)."""
    from .fileio import output_path

    if spec.includes:
        output_path(output, spec.includes, force=True)


def _sized_steps(ctx: click.Context, spec_path: str, steps: int, input_shape):
    """--steps T: sets the spec parameter the sequence input's steps are written as (kept with
    the --set values, so that everything sized by it follows), and gives no input shape; for
    steps written as a number, the sequence input's shape with T steps (as --input would)."""
    from .layers import Steps, shape_text
    from .spec import load

    if input_shape is not None:
        raise UsageError("--steps", steps, "--input gives the whole input shape already",
                         hint="give the steps in --input ({steps: T, features: F}), or leave out --input")
    params = spec_params()
    loaded = load(spec_path, params)
    name = loaded.steps_parameter
    if name is not None:
        if name in params:
            raise UsageError("--steps", steps, f"--set {name}=... gives the steps already (the spec's input has "
                                               f"steps: ${name})", hint=f"give one of --steps and --set {name}")
        ctx.meta["archcalc.spec_params"] = {**params, name: steps}
        return None
    inputs = loaded.inputs or {"input": loaded.input_shape}
    if len(inputs) > 1:
        raise UsageError("--steps", steps, f"this network has {len(inputs)} inputs ({', '.join(inputs)}) and its "
                                           f"steps are not a spec parameter",
                         hint="declare them as one: params: {T: 16} and steps: $T; then --steps or --set T=...")
    if not isinstance(loaded.input_shape, Steps):
        raise UsageError("--steps", steps, f"the input of this network is not a sequence "
                                           f"({shape_text(loaded.input_shape)})", hint="--input sets its shape")
    return Steps((steps, *loaded.input_shape[1:]))


def _check_kv_cache(analysis, context: int) -> None:
    """--kv-cache on a network that keeps none (no causal self-attention) is refused, naming the option."""
    from .analysis.sequence import attention_layers, kv_cache

    try:
        kv_cache(attention_layers(analysis), context, analysis.batch, analysis.dtype)
    except SpecError as exc:
        raise UsageError("--kv-cache", context, exc.message, hint=exc.hint) from None


EXTENSION_FORMATS = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".csv": "csv", ".html": "html",
                     ".htm": "html", ".txt": "table"}
FORMAT_NAMES = {"table": "table", "json": "JSON", "markdown": "Markdown", "csv": "CSV", "html": "HTML"}


def _html_report(analysis, baseline, extras, options, target: str | None, output: str | None) -> None:
    """inspect -f html: one self-contained page (views/html.py); without Graphviz's dot, the page
    says so in place of the diagram, and so does a warning."""
    from .views import html

    drawing = html.diagram(analysis, timeout=html.DIAGRAM_SECONDS)
    if drawing.note:
        from .views.escape import visible
        click.echo(f"warning: the page has no diagram: {visible(drawing.note)}", err=True)
    text = html.page(analysis, drawing, extras, options, baseline)
    if target is None:
        click.echo(text, nl=False)
    else:
        from .fileio import write_text
        write_text(target, text)
        wrote(output, "HTML")


def report_format(fmt: str | None, output: str | None) -> str:
    """--format, else the format -o's extension names (report.json: JSON), else the table; a
    --format that contradicts .json, .md or .csv is refused (a .txt file may hold any of them)."""
    extension = os.path.splitext(output or "")[1].lower()
    implied = EXTENSION_FORMATS.get(extension)
    if fmt is None:
        return implied or "table"
    if implied not in (None, "table", fmt):
        raise UsageError("--format", fmt, f"-o {output} names {FORMAT_NAMES[implied]} by its extension",
                         hint=f"drop --format, or write to a file ending in "
                              f"{next(e for e, f in EXTENSION_FORMATS.items() if f == fmt)}")
    return fmt


def _table_text(analysis, baseline, extras=None, options=None) -> str:
    import io

    from .views import report
    buffer = io.StringIO()
    report.print_table(analysis, baseline, file=buffer, extras=extras, options=options)
    return buffer.getvalue()


def parse_gpus_range(ctx, param, value):
    low, sep, high = value.partition("..")
    if not sep:
        low = high = value
    if not all(part.strip().isascii() and part.strip().isdigit() for part in (low, high)) \
            or not 1 <= int(low) <= int(high) <= 65536:
        raise ValueError(f"{value!r} is not a count or a range of GPUs")
    return int(low), int(high)


@main.command(short_help="Which sharding strategies fit a GPU's memory, on how many.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--gpu-memory", "budget", required=True, callback=parse_budget_option, metavar="BYTES",
        accepted="a memory size with its unit: 80GB (10^9 B) or 80GiB (2^30 B)",
        help="Memory of one GPU, with its unit: 80GB (10^9 bytes) or 80GiB (2^30).")
@option("--gpus", "gpus", default="1..64", show_default=True, callback=parse_gpus_range, metavar="LOW..HIGH",
        accepted="N or LOW..HIGH with 1 <= LOW <= HIGH <= 65536, e.g. 1..64",
        help="GPU counts to try.")
@option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
        help="Optimizer state (sgd 0, momentum 1, adam/adamw 2 per weight).")
@option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)),
        help="16-bit weights, gradients and activations, fp32 optimizer state and master weights.")
@format_option(*TABLE_FORMATS)
@SHARD_UNIT_OPTION
@BANDWIDTH_OPTION
@THROUGHPUT_OPTION
@option("--dtype", type=click.Choice(list(DTYPE_BYTES)), default="float32", show_default=True,
        help="Bytes per number without --mixed-precision.")
@INPUT_OPTION
@SET_OPTION
@ROUNDING_OPTION
def plan(spec, budget, gpus, optimizer, mixed_precision, fmt, shard_units, bandwidth, throughput, dtype,
         input_shape, rounding):
    """Which sharding strategies fit a GPU's memory, on how few GPUs, at what batch per GPU.

    Static: per strategy (none, ddp, zero1, zero2, fsdp) the smallest GPU count of the range on
    which one sample per GPU fits, the largest per-GPU batch there, and for those that never fit
    the term that is too big.
    """
    from .analysis.sharding import plan as make_plan
    from .views import sharding as view

    analysis, _ = load_and_analyze(spec, input_shape, 1, dtype, rounding)
    fits = make_plan(analysis, budget, gpus, optimizer=optimizer, mixed_precision=mixed_precision,
                     shard_units=shard_units)
    if fmt == "json":
        import json
        click.echo(json.dumps(view.plan_dict(analysis, fits, budget, gpus, bandwidth, throughput), indent=2))
    else:
        from .views.output import write
        write(view.plan_blocks(analysis, fits, budget, gpus, bandwidth, throughput))


@main.command(short_help="Draw the network as a diagram with its shapes and counts.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--output", "-o", required=True, metavar="FILE", callback=parse_output_drawing,
        help="The drawing: .svg, .png, .pdf, or .dot/.gv for the Graphviz source; '-' prints DOT.")
@FORCE_OPTION
@option("--rankdir", type=click.Choice(RANKDIRS), default="TB", show_default=True,
        help="Layers top to bottom (TB) or left to right (LR).")
@option("--detail", type=click.Choice(DETAILS), default="compact", show_default=True,
        help="compact: hyper-parameters, output shape, params; full adds the size arithmetic, "
             "neurons, memory and notes.")
@option("--collapse", is_flag=True,
        help="Draw each repeat as one box ('block3: 3 x conv 256 3x3') and each run of identical "
             "block instances as one ('basic3 … basic4: 2 x basic'), with the summed counts.")
@option("--once", is_flag=True,
        help="Draw each repeat's first iteration in full, in its cluster titled with the count "
             "('repeat1 x22, drawn once'), and leave the other iterations out: a transformer's layers.")
@analysis_options(batch="Samples per batch: scales the activation memory drawn with --detail full.",
                  dtype="Number type of the memory drawn with --detail full (bytes per number).")
@click.pass_context
def render(ctx, spec, output, force, rankdir, detail, collapse, once, batch, dtype, input_shape, rounding):
    """Draw the network as a diagram (Graphviz), with the analyzer's shapes and counts.

    An invalid spec is still drawn, up to and including the layer at fault, in red with the
    arithmetic that fails; then the command exits with code 2.
    """
    from .fileio import output_path
    from .views import render as drawing

    target = output_path(output, [spec], force)
    refuse_unless(ctx, detail == "full", ("batch", "dtype"),
                  "it changes only the memory figures, which the diagram shows with --detail full")
    if collapse and once:
        raise UsageError("--once", once, "--collapse draws each repeat as one box already",
                         hint="give one of --collapse (one box per repeat) and --once (its first iteration)")
    analysis, _ = load_and_analyze(spec, input_shape, batch, dtype, rounding, partial=True)
    _keep_includes(output, analysis.spec)
    options = {"rankdir": rankdir, "detail": detail, "collapse": collapse, "once": once}
    if target is None:
        click.echo(drawing.to_dot(analysis, **options), nl=False)
    else:
        drawing.write(analysis, target, **options)
        if analysis.error is None:
            wrote(output, drawing.format_of(output).upper())
    if analysis.error is not None:
        raise analysis.error if target is None else analysis.error.noted(f"drawn up to it, in red: {output}")


def _load(spec_path: str, input_shape=None):
    """The spec, after printing on stderr what looks wrong in its inputs (or --input's)."""
    from .spec import load
    from .spec.advice import input_warnings

    if spec_path.lower().endswith(".onnx"):  # read through archcalc import, as its spec
        from .backend.importer.onnx import onnx_spec

        return onnx_spec(spec_path)
    spec = load(spec_path, spec_params())
    for warning in input_warnings(spec, input_shape):
        warn(warning)
    return spec


def warn(warning: ArchcalcError) -> None:
    """A warning (or an error) on stderr; a name in it never reaches the terminal raw."""
    from .views.escape import visible

    click.echo("\n".join(map(visible, warning.lines())), err=True)  # a newline in a name: escaped, in its line


@main.command(short_help="Every layer's arithmetic written out as on the board.")
@click.argument("spec", type=click.Path(dir_okay=False))
@analysis_options()
def explain(spec, batch, dtype, input_shape, rounding):
    """Every layer's arithmetic written out as on the board: (D-F+2P)/S+1, params, neurons.

    An invalid spec is explained up to the layer at fault, which is shown with the arithmetic
    that fails and its fixes; then the command exits with code 2.
    """
    from .views import explain as board

    explanation = board.explain(_load(spec, input_shape), input_shape=input_shape, batch=batch, dtype=dtype,
                                rounding=rounding)
    from .views.output import write_text
    write_text(board.render_text(explanation))
    if explanation.error is not None:
        raise explanation.error


def parse_range_option(ctx, param, value):
    from .views.solve import check_range

    low, sep, high = value.partition("..")
    if not (sep and low.strip().isascii() and low.strip().isdigit() and high.strip().isascii()
            and high.strip().isdigit()):
        raise ValueError(f"{value!r} is not a range")
    return check_range(int(low), int(high))



@main.command(short_help="Which input sizes make every layer valid, and the fixes.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--range", "size_range", default="1..1024", show_default=True, callback=parse_range_option,
        metavar="LOW..HIGH", accepted="LOW..HIGH with 1 <= LOW <= HIGH, e.g. 1..1024",
        help="Input sizes to try on each spatial axis.")
@format_option(*SOLVE_FORMATS)
@INPUT_OPTION
@SET_OPTION
def solve(spec, size_range, fmt, input_shape):
    """Which input sizes make every layer valid, and what fixes the spec's (or --input's) size.

    A square input varies its sizes together (AlexNet: 227 works, 224 does not). For an
    invalid input, each offending layer is listed with the nearest stride, padding and kernel
    that make its D-F-S combination whole. Exit code 0 either way (2 for an unreadable spec).
    """
    from .views import solve as solver

    solution = solver.solve(_load(spec, input_shape), input_shape=input_shape, low=size_range[0], high=size_range[1])
    if fmt == "json":
        import json
        click.echo(json.dumps(solver.to_dict(solution), indent=2))
    else:
        from .views.output import write_text
        write_text(solver.render_text(solution))


@main.command(short_help="Layer-by-layer and total differences between two specs.")
@click.argument("spec_a", metavar="A", type=click.Path(dir_okay=False))
@click.argument("spec_b", metavar="B", type=click.Path(dir_okay=False))
@format_option(*TABLE_FORMATS)
@option("--all", "show_all", is_flag=True, help="List every layer, not only those that differ.")
@analysis_options()
def diff(spec_a, spec_b, fmt, show_all, batch, dtype, input_shape, rounding):
    """Layer-by-layer and total differences between two specs (shapes, params, neurons, memory).

    Layers are matched by name, then the remaining ones by position. The options apply to both.
    """
    from .analysis import analyze
    from .views import diff as compare

    a, b = (analyze(_load(path, input_shape), input_shape=input_shape, batch=batch, dtype=dtype, rounding=rounding)
            for path in (spec_a, spec_b))
    result = compare.diff(a, b)
    if fmt == "json":
        import json
        click.echo(json.dumps(compare.to_dict(result), indent=2))
    else:
        compare.print_table(result, show_all)


@main.command(short_help="Build the network in PyTorch and check every layer.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--device", type=click.Choice(["auto", "cuda", "cpu", "meta"]), default="auto", show_default=True,
        help="auto: CUDA if present, else CPU. meta: shapes and counts only, no memory at all.")
@option("--train", is_flag=True, help="Also time forward + backward.")
@option("--iterations", "-n", type=click.IntRange(min=0),
        help="Timed runs after warm-up [default: 20 on CUDA, none on CPU].")
@option("--values", metavar="LIST",
        help="Feed this exact sample (flat or nested numbers filling the input) and print the outputs, "
             "e.g. '[40,50,70,80,90,10,20,30,40]'.")
@option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights and inputs.")
@option("--nproc", type=click.IntRange(min=2, max=64), metavar="N",
        help="Train on N processes with torch.distributed (gloo on CPU, nccl on CUDA, one GPU each): two steps, "
             "each rank's peak memory and collectives beside the prediction (--batch is the global batch).")
@option("--shard", "run_shard", type=click.Choice(["ddp", "fsdp"]), default="ddp", show_default=True,
        help="With --nproc: DistributedDataParallel, or FSDP2 (fully_shard on each unit, then the root).")
@SHARD_UNIT_OPTION
@option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="sgd", show_default=True,
        help="The optimizer of --nproc's training steps and of --memory --train.")
@option("--master-port", type=click.IntRange(min=1, max=65535), metavar="PORT",
        help="With --nproc: the rendezvous port [default: a free one].")
@option("--memory", is_flag=True,
        help="Measure the live tensor bytes on CPU (inference; with --train a training step) and compare "
             "each phase's peak with the memory schedule.")
@option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)),
        help="With --memory: run the forward pass under torch.autocast (CPU) and compare with the schedule's.")
@CHECKPOINT_OPTION
@format_option(*TABLE_FORMATS)
@analysis_options(batch="Samples per batch the model runs on (and the activation memory predicted for it).",
                  dtype="The model's dtype: its weights and inputs are created in it; int8 only sizes memory, "
                        "it cannot run.")
@click.pass_context
def run(ctx, spec, device, train, iterations, values, seed, memory, mixed_precision, checkpoint, nproc, run_shard,
        shard_units, optimizer, master_port, fmt, batch, dtype, input_shape, rounding):
    """Compile SPEC into PyTorch and check every layer's shape and parameter count against the analyzer.

    On CUDA it also times the forward pass (and forward + backward with --train) and compares the
    peak memory with the prediction. Exit code 1 if PyTorch disagrees with the analyzer.
    """
    from .backend import require_torch
    from .views import runreport as report

    refuse_unless(ctx, nproc is not None, ("run_shard", "shard_units", "master_port"),
                  "it sets up the distributed run; add --nproc N")
    refuse_unless(ctx, nproc is not None or (memory and train), ("optimizer",),
                  "it is the optimizer of --nproc's training steps and of --memory --train; add one of them")
    refuse_unless(ctx, memory, ("mixed_precision",), "it runs --memory's measurement under torch.autocast; add --memory")
    refuse_unless(ctx, memory and train, ("checkpoint",),
                  "it checkpoints --memory's measured training step; add --memory and --train")
    require_torch()
    from .backend.verification import parse_values, verify

    if memory and device == "meta":
        raise UsageError("--memory", device, "the meta device allocates nothing to measure",
                         hint="--memory measures live tensors on CPU: use --device cpu or auto")
    analysis, _ = load_and_analyze(spec, input_shape, batch, dtype, rounding)
    segments = _checkpoint_segments(analysis, checkpoint)
    if nproc is not None:
        _distributed(spec, analysis, nproc, run_shard, shard_units, optimizer, seed, device, master_port, fmt,
                     input_shape, rounding)
        return
    sample = None if values is None else parse_values(values, analysis.input_shape)
    predicted = _memory_prediction(analysis, train, optimizer, mixed_precision, segments) if memory else None
    with _progress(enabled=fmt == "table") as progress:
        result = verify(analysis, device=device, train=train, iterations=iterations, values=sample, seed=seed,
                        progress=progress)
    if fmt == "json":
        click.echo(report.to_json(result), nl=False)
    else:
        report.print_verification(result)
    if predicted is not None and result.ok:
        _memory_comparison(predicted, seed)
    if not result.ok:
        raise VerificationFailed("PyTorch disagrees with the analyzer: " + "; ".join(result.disagreements))


def _distributed(spec, analysis, nproc, shard, shard_units, optimizer, seed, device, port, fmt, input_shape,
                 rounding):
    """run --nproc: the ranks launched, measured and compared (backend/distributed.py)."""
    import os

    from .backend.distributed import run as run_ranks
    from .views import sharding as view

    if device == "meta":
        raise UsageError("--device", device, "a distributed run trains for real: it needs cpu or cuda memory",
                         "auto, cuda or cpu")
    options = {"spec": os.path.abspath(spec), "params": spec_params(), "input": input_shape,
               "batch": analysis.batch, "dtype": analysis.dtype, "rounding": rounding, "shard": shard,
               "shard_units": list(shard_units), "optimizer": optimizer, "seed": seed,
               "device": "cpu" if device == "cpu" else "auto"}
    result = run_ranks(analysis, options, nproc, port=port)
    if fmt == "json":
        import json

        from .views.sharding import memory_dict
        click.echo(json.dumps({"predicted": [memory_dict(memory) for memory in result.predicted],
                               "ranks": [rank.__dict__ for rank in result.ranks],
                               "disagreements": result.disagreements}, indent=2))
    else:
        from .views.output import write
        write(view.run_blocks(result, nproc))
    if not result.ok:
        raise VerificationFailed("the distributed run disagrees with the prediction: " + "; ".join(result.disagreements))


def _memory_prediction(analysis, train: bool, optimizer: str, mixed_precision: str | None, segments: tuple):
    """run --memory's prediction on CPU (with --checkpoint, the training step with its segments
    checkpointed), replayed before PyTorch runs: a spec the schedule refuses is refused at once."""
    from .analysis.schedule import schedule

    return schedule(analysis, training=train, optimizer=optimizer, device="cpu", mixed_precision=mixed_precision,
                    checkpoint=tuple(segment.layers for segment in segments))


def _memory_comparison(predicted, seed: int) -> None:
    """run --memory: each phase's measured peak on CPU beside the schedule's prediction."""
    from .backend.memtrack import measured_peaks
    from .views.memory import comparison_lines, title

    measured = measured_peaks(predicted.analysis, train=predicted.training, optimizer=predicted.optimizer or "sgd",
                              seed=seed, mixed_precision=predicted.mixed_precision,
                              checkpoint=predicted.checkpoint)
    click.echo(f"memory, {title(predicted)}, live tensor bytes on CPU:")
    click.echo("\n".join(comparison_lines(predicted, measured)))


def _refuse_sharded_checkpoint(checkpoint: tuple, sharded: bool) -> None:
    """--checkpoint with --gpus/--shard: the per-GPU model (analysis/sharding.py) keeps every
    activation, so its figures would ignore the segments."""
    if checkpoint and sharded:
        raise UsageError("--checkpoint", checkpoint[0], "the per-GPU memory of --gpus/--shard is modelled without "
                         "activation checkpointing", hint="leave out --checkpoint, or --gpus and --shard")


def _checkpoint_segments(analysis, choices: tuple) -> tuple:
    """--checkpoint's segments (analysis/checkpoint.py), none when it is not given."""
    from .analysis.checkpoint import segments

    return segments(analysis, choices) if choices else ()


@main.command(short_help="Peak memory of inference and a training step, layer by layer.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--train", is_flag=True, help="Add a training step: forward, backward and the optimizer step.")
@option("--optimizer", type=click.Choice(list(OPTIMIZER_STATES)), default="adam", show_default=True,
        help="Optimizer of the training step (sgd keeps no state, momentum 1, adam/adamw 2 per weight).")
@option("--device", type=click.Choice(["cuda", "cpu"]), default="cuda", show_default=True,
        help="Whose kernels: CUDA's fused dropout keeps a 1-byte mask and its foreach Adam one temporary "
             "the size of all weights; CPU's keep a mask in the dtype and step tensor by tensor.")
@option("--mixed-precision", type=click.Choice(list(MIXED_PRECISION)),
        help="torch.autocast: float32 master weights, gradients and optimizer state; convolutions and "
             "matrix products in 16 bits (their inputs and weights cast), what follows in their dtype.")
@option("--max-batch", "budget", callback=parse_budget_option, metavar="BYTES",
        help="Also the largest batch whose peak fits in this memory, e.g. 24GB or 16GiB.")
@option("--no-timeline", is_flag=True, help="Leave out the per-layer bars.")
@option("--output", "-o", metavar="FILE", callback=parse_output_drawing,
        help="Also draw the live bytes per layer as stacked bars: .svg, .png, .pdf, or .dot/.gv for the "
             "Graphviz source; '-' prints DOT instead of the text.")
@FORCE_OPTION
@CHECKPOINT_OPTION
@sharding_options
@analysis_options()
@click.pass_context
def memory(ctx, spec, train, optimizer, device, mixed_precision, budget, no_timeline, output, force, checkpoint,
           gpus, shard, shard_units, bandwidth, throughput, batch, dtype, input_shape, rounding):
    """Peak memory as PyTorch would reach it: the layers replayed in execution order, each tensor
    freed after its last reader or once backward no longer needs it.

    Static: no PyTorch. Prints the peak for inference (and a training step), the phase and layer
    where it happens, what it is made of, and live bytes per layer as bars (-o draws them).
    """
    from .analysis.schedule import schedule
    from .fileio import output_path
    from .views import memorychart
    from .views.memory import render_text

    refuse_unless(ctx, train, ("optimizer",), "it is the optimizer of the training step; add --train")
    refuse_unless(ctx, train, ("checkpoint",), "checkpointing changes only a training step; add --train")
    refuse_unless(ctx, output is not None, ("force",), "it writes through -o; add -o FILE")
    refuse_unless(ctx, train, ("gpus", "shard", "shard_units", "bandwidth", "throughput"),
                  "it spreads a training step over GPUs; add --train")
    target = output_path(output, [spec], force)
    analysis, _ = load_and_analyze(spec, input_shape, batch, dtype, rounding)
    segments = _checkpoint_segments(analysis, checkpoint)
    sharded = None
    request = sharding_request(gpus, shard, shard_units, bandwidth, throughput)
    _refuse_sharded_checkpoint(checkpoint, request is not None)
    if request is not None:
        from .analysis.sharding import sharded_memory

        sharded = sharded_memory(analysis, optimizer=optimizer, mixed_precision=mixed_precision, device=device,
                                 **request)
    schedules = [schedule(analysis, device=device, mixed_precision=mixed_precision)]
    if train:
        schedules.append(schedule(analysis, training=True, optimizer=optimizer, device=device,
                                  mixed_precision=mixed_precision))
    if segments:
        schedules.append(schedule(analysis, training=True, optimizer=optimizer, device=device,
                                  mixed_precision=mixed_precision, checkpoint=tuple(s.layers for s in segments)))
    drawing_to_stdout = output is not None and target is None  # '-': DOT on stdout, the text on stderr
    if drawing_to_stdout:
        click.echo(memorychart.to_dot(schedules), nl=False)
    if target is not None:  # drawn first: a file that cannot be written stops the command before any text
        memorychart.write(schedules, target)
    from .views.output import terminal_width

    stream = sys.stderr if drawing_to_stdout else sys.stdout
    click.echo(render_text(schedules, timeline=not no_timeline, columns=terminal_width(stream)), nl=False,
               err=drawing_to_stdout)
    if segments:
        from .views.memory import checkpoint_lines
        click.echo("\n" + "\n".join(checkpoint_lines(schedules[1], schedules[2], [s.name for s in segments],
                                                     terminal_width(stream))), err=drawing_to_stdout)
    if sharded is not None:
        from .views.memory import folded
        from .views.sharding import memory_lines

        click.echo("\n" + "\n".join(part for line in memory_lines(sharded, bandwidth, throughput)
                                     for part in folded(line, terminal_width(stream))), err=drawing_to_stdout)
    if target is not None:
        wrote(output, memorychart.format_of(output).upper())
    if budget is not None:
        from .units import human_bytes
        fits = ", ".join(f"{'inference' if not s.training else 'training checkpointed' if s.checkpoint else 'training'} "
                         f"{s.max_batch(budget):,}" for s in schedules)
        click.echo(f"largest batch within {human_bytes(budget)}: {fits}", err=drawing_to_stdout)
        if request is not None:
            from .analysis.sharding import max_global_batch
            found = max_global_batch(analysis, budget, optimizer=optimizer, mixed_precision=mixed_precision,
                                     device=device, **request)
            click.echo(f"largest batch within {human_bytes(budget)} per GPU, {request['strategy']} on "
                       f"{request['gpus']} GPUs: {found:,} ({found // request['gpus']:,} per GPU)", err=drawing_to_stdout)


@main.command(short_help="Write the network as readable PyTorch code.")
@click.argument("spec", type=click.Path(dir_okay=False))
@option("--output", "-o", required=True, metavar="FILE",
        help="The Python file to write (atomically); '-' is standard output.")
@FORCE_OPTION
@analysis_options(batch=None, dtypes=MODEL_DTYPES,
                  dtype="The exported model's dtype: its __init__ ends with self.to(torch.DTYPE).")
def export(spec, output, force, dtype, input_shape, rounding):
    """Write SPEC as readable PyTorch code: one nn.Module class that needs only torch.

    The code is run on PyTorch's meta device before it is written: its parameter count and output
    shapes must equal the analyzer's.
    """
    from .backend import require_torch
    from .fileio import output_path, write_text

    target = output_path(output, [spec], force)
    require_torch()
    from .backend.export import export_checked
    from .backend.plan import make_plan

    analysis, _ = load_and_analyze(spec, input_shape, 1, dtype, rounding)
    _keep_includes(output, analysis.spec)
    plan = make_plan(analysis)
    code = export_checked(plan)
    summary = f"class {plan.class_name}, {analysis.totals.params:,} parameters"
    if target is None:  # the code alone on standard output; what it is, on stderr
        click.echo(code, nl=False)
        click.echo(f"wrote standard output: {summary}", err=True)
    else:
        write_text(target, code)
        wrote(output, "Python", f": {summary}")


@main.command("import", short_help="A PyTorch model or an ONNX file as a spec, with the same numbers.")
@click.argument("model")
@option("--output", "-o", required=True, metavar="FILE",
        help="The spec to write (atomically); '-' is standard output.")
@option("--input", "input_shapes", multiple=True, callback=parse_input_options, metavar="CxHxW",
        accepted="sizes channels first, like 3x224x224, or {steps: 16} for token ids",
        help="The input to trace the model on, per sample, once per argument of forward (default 3x224x224; "
             "not for ONNX, whose file has it).")
@option("--args", "arguments", metavar="JSON",
        help='Keyword arguments for the callable, a JSON object: \'{"num_classes": 10}\'.')
@option("--name", help="The spec's name (default: the callable's or the file's).")
@option("--allow-opaque", is_flag=True,
        help="Keep an operation no kind expresses as an opaque layer (its traced shape and parameters; MACs and "
             "FLOPs not counted, which every report says) instead of refusing the model.")
@FORCE_OPTION
def import_(model, output, input_shapes, arguments, name, allow_opaque, force):
    """Write MODEL as a spec: MODULE:CALLABLE (torchvision.models:resnet50), path/to/model.py:CALLABLE,
    or model.onnx.

    The callable is called (with --args) on PyTorch's meta device where it can be, so the weights
    take no memory, traced with torch.fx, and each operation mapped to a layer kind; an ONNX file
    is read with the onnx package (pip install -e '.[onnx]' in a checkout). Nothing is written unless the
    spec has the model's parameters, MACs and output shapes (exit 1 otherwise); operations no kind
    expresses are listed with the nearest kinds (exit 2), or with --allow-opaque kept as opaque
    layers: their shapes and parameters as traced, their MACs not counted (the spec cannot run).
    """
    from .backend import require_torch
    from .fileio import output_path, write_text

    target = output_path(output, [model] if os.path.isfile(model) else [], force)
    if input_shapes and model.lower().endswith(".onnx"):
        raise UsageError("--input", input_shapes[0], "an ONNX file holds its input's shape", hint="leave --input out")
    if not model.lower().endswith(".onnx"):
        require_torch()
    from .backend.importer import import_model
    from .views.importing import summary

    imported = import_model(model, input_shapes, arguments, allow_opaque=allow_opaque, name=name)
    if not imported.exact:
        raise VerificationFailed(summary(imported), hint="a bug in archcalc's importer: please report it "
                                                         "with the model; nothing was written")
    if target is None:
        click.echo(imported.text, nl=False)
        click.echo(summary(imported), err=True)
    else:
        write_text(target, imported.text)
        click.echo(summary(imported), err=True)
        wrote(output, "spec", f": {imported.lines} lines")


@main.command(short_help="Every layer kind, or one kind's fields and defaults.")
@click.argument("kind", required=False)
@option("--markdown", is_flag=True, help="Every kind as docs/spec.md's markdown table.")
def kinds(kind, markdown):
    """Every layer kind a spec may use, with what it computes; with KIND (any case: Conv2D, ReLU),
    its fields, their defaults and docs, and the names PyTorch and Keras give them.

    Read from the registry of kinds, like docs/spec.md's table (--markdown).
    """
    from .layers import lookup
    from .views import kinds as listing

    if markdown and kind is not None:
        raise UsageError("--markdown", True, "lists every kind; give no KIND with it")
    if markdown:
        click.echo(listing.markdown_table(), nl=False)
    else:
        click.echo(listing.kind_text(lookup(kind)) if kind is not None else listing.list_text(), nl=False)


@main.command(short_help="A local web page: the spec's YAML beside its live report.")
@click.argument("spec", required=False, type=click.Path(dir_okay=False))
@option("--port", type=click.IntRange(min=0, max=65535), default=8780, show_default=True,
        help="The port to listen on (0: any free one).")
@option("--host", default="127.0.0.1", show_default=True,
        help="The address to listen on; anything but this machine's own lets others read and save the spec.")
def serve(spec, port, host):
    """A local web page with SPEC's YAML in an editor and its report beside it, analyzed again
    as you type: the table, the diagram, and a broken spec's error at its line and column.

    Save writes SPEC atomically; without SPEC the editor starts from an example and cannot save.
    The page reads and writes no other file. Ctrl+C stops the server.
    """
    from .views.server import Server

    server = Server(spec, host, port, log=lambda line: click.echo(line, err=True))
    from .views.escape import visible
    click.echo(f"serving {visible(spec) if spec else 'an example spec (nothing to save to)'} at {server.url} "
               "(Ctrl+C stops)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: whoever reaches this machine can read the spec", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@contextlib.contextmanager
def _progress(enabled: bool):
    """A progress bar for timed runs on a terminal; a callback(description, done, total)."""
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        tasks = {}

        def advance(description, done, total):
            if description not in tasks:
                tasks[description] = bar.add_task(description, total=total)
            bar.update(tasks[description], completed=done)

        yield advance
