"""``archcalc memory``: the peak memory schedule (analysis/schedule.py) as text, and the
predicted-vs-measured lines of ``archcalc run --memory``. Formatting only; no torch."""
from __future__ import annotations

import re

from ..analysis.schedule import CATEGORIES, Moment, Schedule
from ..units import human_bytes
from .escape import visible
from .output import wrap_line
from .report import inputs_text

JSON_KEYS = {"weights": "weight_bytes", "gradients": "gradient_bytes", "optimizer": "optimizer_bytes",
             "input": "input_bytes", "activations": "activation_bytes", "transient": "transient_bytes"}
BAR = 40  # characters of the widest bar in the timeline
MIN_BAR = 10  # on a narrow terminal, not narrower than this
UNIT = re.compile(r"(\d) (?=(?:[kMGTPE]|[KMGTPE]i)?B\b)")  # '450.62 MiB': the space a fold must not break
WORDS = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer state", "input": "input batch",
         "activations": "activations (kept for backward, or still to be read)",
         "transient": "transient (activation gradients, temporaries)"}


def render_text(schedules: list[Schedule], timeline: bool = True, columns: int | None = None) -> str:
    """One block per schedule (inference, then training): its peak, the phase and layer where it
    happens, what it is made of, the peak of each phase, and a bar per layer and phase."""
    first = schedules[0]
    analysis = first.analysis
    lines = folded(f"{visible(analysis.spec.name)}: {visible(inputs_text(analysis))}, batch {analysis.batch}, "
                   f"{analysis.dtype}, {first.device} kernels", columns)
    for schedule in schedules:
        lines += [""] + [part for line in schedule_lines(schedule) for part in folded(line, columns)]
        if timeline:
            lines += [""] + timeline_lines(schedule, columns)
    return "\n".join(lines) + "\n"


def folded(line: str, columns: int | None) -> list[str]:
    """``line`` wrapped to ``columns`` (output.wrap_line), a number and its unit kept on one line."""
    glued = UNIT.sub("\\1\u00a0", line)
    return [part.replace("\u00a0", " ") for part in wrap_line(glued, columns)]


def title(schedule: Schedule) -> str:
    """'inference', 'training step (adam)', 'training step (adam, mixed bf16)', 'training step
    (adam, 12 segments checkpointed)'."""
    precision = f"mixed {schedule.mixed_precision}" if schedule.mixed_precision else ""
    count = len(schedule.checkpoint)
    checkpointed = f"{count} segment{'s' if count > 1 else ''} checkpointed" if count else ""
    if schedule.training:
        return f"training step ({', '.join(filter(None, (schedule.optimizer, precision, checkpointed)))})"
    return f"inference ({precision})" if precision else "inference"


def schedule_lines(schedule: Schedule, name=visible) -> list[str]:
    """Its peak, the phase and layer where it happens (``name`` writes the layer name for the
    format), what it is made of, and each phase's peak."""
    batch = schedule.analysis.batch
    peak = schedule.peak_moment()
    where = f"{peak.phase}, at {name(peak.layer)}" if peak.layer else peak.phase
    lines = [f"{title(schedule)}: peak {human_bytes(peak.bytes(batch))} ({where})"]
    parts = peak.parts(batch)
    lines += [f"  {WORDS[part]}: {human_bytes(parts[part])}" for part in CATEGORIES if parts[part]]
    if len(schedule.phases) > 1:
        lines.append("  peak per phase: " + ", ".join(f"{phase} {human_bytes(schedule.peak(phase))}"
                                                      for phase in schedule.phases))
    lines += [f"  approximate at {name(stats.name)} ({stats.kind}): {gap}" for stats in schedule.analysis.layers
              for gap in (stats.layer.memory_gap, schedule.mixed_precision and stats.layer.mixed_precision_gap) if gap]
    return lines


def schedule_dict(schedule: Schedule) -> dict:
    """The JSON of a schedule: its peak (= fixed_bytes + batch x per_sample_bytes at that moment),
    the phase and layer, what it is made of there, each phase's peak, and beside a training
    step's the course's rule (x2 the forward pass)."""
    batch = schedule.analysis.batch
    peak = schedule.peak_moment()
    rule = {"rule_of_thumb_bytes": schedule.analysis.totals.training_bytes_estimate} if schedule.training else {}
    return {"optimizer": schedule.optimizer, "mixed_precision": schedule.mixed_precision, "batch": batch,
            "device": schedule.device, "peak_bytes": peak.bytes(batch), "peak_phase": peak.phase,
            "peak_layer": peak.layer or None, "fixed_bytes": sum(peak.fixed), "per_sample_bytes": sum(peak.sample),
            **{JSON_KEYS[part]: value for part, value in peak.parts(batch).items()},
            "phase_peaks": {phase: schedule.peak(phase) for phase in schedule.phases}, **rule}


def steps(schedule: Schedule) -> list[tuple[str, str, Moment]]:
    """(phase, layer, moment) per layer and phase, in execution order: the moment of the highest
    live bytes within it (at the analysis's batch); "(start)" before the phase's first layer,
    "(end)" after its last (the forward's loss, the backward's last gradients); the optimizer
    step, which runs no layer, by the optimizer's name."""
    batch = schedule.analysis.batch
    highest: dict[tuple[str, str], Moment] = {}
    begun: set[str] = set()   # phases whose first layer has run
    for moment in schedule.moments:
        if moment.layer:
            begun.add(moment.phase)
        outside = "(end)" if moment.phase in begun else schedule.optimizer if moment.phase == "step" else "(start)"
        key = (moment.phase, visible(moment.layer) if moment.layer else outside)  # one step per name
        if key not in highest or moment.bytes(batch) > highest[key].bytes(batch):
            highest[key] = moment
    return [(phase, layer, moment) for (phase, layer), moment in highest.items()]


def timeline_lines(schedule: Schedule, columns: int | None = None) -> list[str]:
    """The highest live bytes within each (phase, layer), in execution order, as a bar. On a
    terminal ``columns`` wide the bars shrink (to MIN_BAR) so a line fits; names too long for
    that go on a line of their own, above their bar."""
    batch = schedule.analysis.batch
    drawn = [(phase, layer, human_bytes(value), value) for phase, layer, moment in steps(schedule)
             for value in (moment.bytes(batch),)]
    top = max((value for *_, value in drawn), default=0) or 1
    width = max((len(layer) for _, layer, _, _ in drawn), default=0)
    numbers = max((len(text) for _, _, text, _ in drawn), default=0)
    room = columns - (2 + 9 + 1 + width + 1 + 1 + numbers) if columns else BAR  # what is left for the bar
    bar_width = max(MIN_BAR, min(BAR, room))
    lines = [f"live bytes, {title(schedule)}:"]
    for phase, layer, text, value in drawn:
        bar = "█" * max(1, round(bar_width * value / top))
        if room >= MIN_BAR:
            lines.append(f"  {phase:<9} {layer:<{width}} {bar:<{bar_width}} {text}")
        else:
            lines += [f"  {phase:<9} {layer}", f"    {bar:<{bar_width}} {text}"]
    return lines


def comparison_lines(schedule: Schedule, measured: dict) -> list[str]:
    """'forward: predicted 1.2 MB, measured 1.2 MB, ratio 1.000' per phase (``measured``: phase -> bytes)."""
    lines = []
    for phase in schedule.phases:
        predicted, actual = schedule.peak(phase), measured.get(phase)
        if actual:
            lines.append(f"  {phase}: predicted {human_bytes(predicted)}, measured {human_bytes(actual)}, "
                         f"ratio {predicted / actual:.3f}")
    return lines


def checkpoint_lines(plain: Schedule, checkpointed: Schedule, names: list[str], columns: int | None = None,
                     name=visible) -> list[str]:
    """What activation checkpointing changes: the segments, each phase's peak without and with,
    the memory saved, and the FLOPs backward runs again (Schedule.recomputed_flops); folded to
    ``columns``."""
    shown = [name(segment) for segment in names]
    if len(shown) > 6:   # a long repeat: its first iterations and its last
        shown = [*shown[:3], "...", shown[-1]]
    lines = [f"activation checkpointing (torch.utils.checkpoint, use_reentrant=False) of {len(names)} "
             f"segment{'s' if len(names) > 1 else ''}: {', '.join(shown)}"]
    lines += [f"  {phase}: peak {human_bytes(plain.peak(phase))} without, {human_bytes(checkpointed.peak(phase))} with"
              for phase in plain.phases]
    before, after = plain.peak(), checkpointed.peak()
    change = (f"saves {human_bytes(before - after)} ({100 * (before - after) / before:.1f}% of the peak)"
              if after < before else "the same peak"
              if after == before else f"costs {human_bytes(after - before)} more")
    lines.append(f"  memory: peak {human_bytes(before)} without, {human_bytes(after)} with: {change}")
    forward = 2 * plain.analysis.batch * plain.analysis.totals.macs
    flops = checkpointed.recomputed_flops
    share = f" ({100 * flops / forward:.1f}% of the forward's)" if forward else ""
    lines.append(f"  recomputed in backward: {flops:,} FLOPs per step{share}, 2 x the multiply-accumulates of "
                 f"{len(checkpointed.recomputed)} layer{'s' if len(checkpointed.recomputed) != 1 else ''}")
    lines += [f"  at most: the rerun stops before an op of {name(layer)} (it keeps only its inputs) whose share "
              f"of the layer's multiply-accumulates is not known, counted here" for layer in checkpointed.cut_short]
    return [part for line in lines for part in folded(line, columns)]


def checkpoint_dict(plain: Schedule, checkpointed: Schedule, segments) -> dict:
    """The JSON of checkpoint_lines: the segments (name, layers), the checkpointed step's schedule
    (schedule_dict), the peak without and with, and what backward recomputes."""
    return {"segments": [{"name": segment.name, "layers": list(segment.layers)} for segment in segments],
            **schedule_dict(checkpointed), "peak_bytes_without": plain.peak(),
            "saved_bytes": plain.peak() - checkpointed.peak(), "recomputed_flops": checkpointed.recomputed_flops,
            "recomputed_layers": list(checkpointed.recomputed)}
