"""Wording of the sharding model (analysis/sharding.py): inspect --gpus's section and the plan."""
from __future__ import annotations

from ..units import decimal_bytes, human_bytes, human_count
from . import escape

TERM_NOTES = {
    "weights": "parameters held + buffers",
    "gradients": "of the trainable parameters",
    "optimizer state": "K bytes per parameter: master weights + states",
    "activations": "the memory schedule's input, activations and their gradients at the passes' peak, "
                   "at the per-GPU batch",
    "gathered units": "FSDP: unsharded parameters, all-gather and reduce-scatter buffers at the passes' peak",
    "gradient buckets": "DDP: a flat copy of the gradients for the all-reduce",
    "optimizer step": "temporaries of torch.optim's step",
}
SHARDED = {"none": "nothing (one GPU)", "ddp": "nothing (every GPU a replica)",
           "zero1": "optimizer state", "zero2": "optimizer state and gradients",
           "fsdp": "optimizer state, gradients and weights"}


def seconds(value: float) -> str:
    return f"{value * 1e3:,.2f} ms" if value < 1 else f"{value:,.2f} s"


def factor_text(collective) -> str:
    return "2(N-1)/N" if collective.name == "all-reduce" else "(N-1)/N"


def memory_lines(memory, bandwidth: int | None = None, throughput: int | None = None,
                 name=escape.visible) -> list[str]:
    """The per-GPU breakdown, the communication of a step and, given the rates, its times."""
    m = memory
    lines = [f"per GPU, {m.strategy} on {m.gpus} GPU{'s' if m.gpus > 1 else ''} ({m.optimizer}, "
             f"{m.precision.name}, batch {m.batch} = {m.gpu_batch} per GPU; sharded: {SHARDED[m.strategy]}):"]
    for term, value in m.terms().items():
        if value or term in ("weights", "gradients", "optimizer state", "activations"):
            detail = TERM_NOTES[term]
            if term == "gathered units" and m.gathered_units:
                detail += ": " + ", ".join(map(name, m.gathered_units))
            if term == "gradient buckets":
                detail += f", {m.buckets} bucket{'s' if m.buckets != 1 else ''} (1 MiB first, 25 MiB cap)"
            if term == "optimizer step":
                detail += (f" on {m.device.upper() if m.device == 'cuda' else m.device}: "
                           + ("one the size of every weight held (foreach)" if m.device == "cuda"
                              else "tensor by tensor, two the size of one beside the previous one's denominator"))
            lines.append(f"  {term}: {human_bytes(value)} ({detail})")
    lines.append(f"  model states: {human_bytes(m.model_state_bytes)} (the ZeRO paper's Figure 1 figure)")
    moments = "; ".join(f"{name} {human_bytes(value)}" for name, value in m.moments().items())
    lines.append(f"  peak per GPU: {human_bytes(m.total_bytes)} at the {m.peak_moment} (the largest moment: {moments})")
    if m.collectives:
        lines.append(f"communication per step and GPU, ring algorithm (N = {m.gpus}):")
        for collective in m.collectives:
            lines.append(f"  {collective.name} of the {collective.what}: {factor_text(collective)} x "
                         f"{human_bytes(collective.payload)} = {human_bytes(collective.bytes)} sent and as much received")
        lines.append(f"  total: {human_bytes(m.communication_bytes)} sent per GPU")
    lines.append(f"compute per step and GPU: {human_count(m.flops, 'FLOPs')} (3 x forward FLOPs x {m.gpu_batch})")
    if bandwidth is not None or throughput is not None:
        network = m.communication_seconds(bandwidth) if bandwidth else None
        compute = m.compute_seconds(throughput) if throughput else None
        parts = []
        if compute is not None:
            parts.append(f"compute {seconds(compute)} at {human_count(throughput, 'FLOPs/s')}")
        if network is not None:
            parts.append(f"network {seconds(network)} at {decimal_bytes(bandwidth)}/s")
        verdict = ""
        if compute is not None and network is not None:
            verdict = ("; network-bound unless communication overlaps compute" if network > compute
                       else "; compute-bound: communication can hide behind compute")
        lines.append("time per step: " + ", ".join(parts) + verdict)
    return lines


def memory_dict(memory, bandwidth: int | None = None, throughput: int | None = None) -> dict:
    m = memory
    found = {
        "strategy": m.strategy, "gpus": m.gpus, "batch": m.batch, "gpu_batch": m.gpu_batch,
        "optimizer": m.optimizer, "precision": m.precision.name,
        "optimizer_bytes_per_parameter": m.precision.optimizer,
        **{term.replace(" ", "_") + "_bytes": value for term, value in m.terms().items()},
        "gathered_units": list(m.gathered_units), "buckets": m.buckets,
        "model_state_bytes": m.model_state_bytes, "total_bytes": m.total_bytes,
        "moments_bytes": m.moments(), "peak_moment": m.peak_moment,
        "kept_bytes": m.kept_bytes, "live_gradient_bytes": m.live_gradient_bytes, "device": m.device,
        "collectives": [{"collective": c.name, "what": c.what, "payload_bytes": c.payload,
                         "factor": str(c.factor), "bytes_per_gpu": c.bytes} for c in m.collectives],
        "communication_bytes": m.communication_bytes, "flops": m.flops,
    }
    if bandwidth:
        found["bandwidth_bytes_per_second"] = bandwidth
        found["communication_seconds"] = m.communication_seconds(bandwidth)
    if throughput:
        found["throughput_flops_per_second"] = throughput
        found["compute_seconds"] = m.compute_seconds(throughput)
    return found


def batch_text(batch: int) -> str:
    from ..analysis.sharding import UNBOUNDED

    return "any" if batch == UNBOUNDED else f"{batch:,}"


def plan_blocks(analysis, fits, budget: int, gpus: tuple, bandwidth: int | None = None,
                throughput: int | None = None) -> list:
    """The plan as output blocks (views/output.py): per strategy, the fewest GPUs that fit and the
    per-GPU batch; then why the others do not fit."""
    from .output import Table

    t = analysis.totals
    first = fits[0].memory if fits else None
    precision = f", {first.optimizer}, {first.precision.name}" if first else ""
    headers = ("strategy", "fewest GPUs", "batch per GPU", "peak per GPU", "batch per GPU at most GPUs",
               "sent per GPU and step")
    table = Table(headers, right=headers[1:], title=f"{analysis.spec.name}: {t.params:,} parameters{precision}, "
                                                    f"{human_bytes(budget)} per GPU, {gpus[0]}..{gpus[1]} GPUs")
    lines = []
    for fit in fits:
        m = fit.memory
        if fit.gpus is None:
            term, value = fit.too_big
            table.add_row(fit.strategy, "-", "0", human_bytes(m.total_bytes), "-", "does not fit", style="red")
            lines.append(f"{fit.strategy}: one sample per GPU on {m.gpus} GPU{'s' if m.gpus > 1 else ''} needs "
                         f"{human_bytes(m.total_bytes)} > {human_bytes(budget)}; the largest term: {term} "
                         f"{human_bytes(value)}")
            continue
        table.add_row(fit.strategy, str(fit.gpus), batch_text(fit.gpu_batch), human_bytes(m.total_bytes),
                      batch_text(fit.largest_gpu_batch), human_bytes(m.communication_bytes))
    if not fits:
        lines.append("no strategy applies to this range: none needs 1 GPU, the others 2 or more, and a "
                     "trainable parameter")
    if any(fit.gpus is not None for fit in fits):
        lines.append("fewest GPUs: the smallest count where one sample per GPU fits; batch per GPU: the largest "
                     "that fits there (and on the most GPUs of the range)")
    for fit in fits:
        if fit.gpus is not None and (bandwidth or throughput):
            lines.append(f"{fit.strategy} on {fit.gpus}: " + memory_lines(fit.memory, bandwidth, throughput)[-1])
    lines.append("Model states as the ZeRO paper holds them (K = 4 + 4 x optimizer states bytes per parameter "
                 "under mixed precision); activations from the memory schedule; see inspect --gpus N --shard S "
                 "for each term. 1 GB = 10^9 bytes.")
    return [table, "\n".join(lines)]


def plan_dict(analysis, fits, budget: int, gpus: tuple, bandwidth: int | None = None,
              throughput: int | None = None) -> dict:
    from ..analysis.sharding import UNBOUNDED

    def batch(value: int):
        return None if value == UNBOUNDED else value

    return {
        "spec": analysis.spec.name, "params": analysis.totals.params, "gpu_memory_bytes": budget,
        "gpus": list(gpus),
        "strategies": [{"strategy": fit.strategy, "fewest_gpus": fit.gpus, "gpu_batch": batch(fit.gpu_batch),
                        "gpu_batch_at_most_gpus": batch(fit.largest_gpu_batch), "most_gpus": fit.top_gpus,
                        "fits": fit.gpus is not None,
                        "too_big": None if fit.gpus is not None else dict(zip(("term", "bytes"), fit.too_big)),
                        "memory": memory_dict(fit.memory, bandwidth, throughput)} for fit in fits],
    }


def run_blocks(result, nproc: int) -> list:
    """archcalc run --nproc: per rank, the predicted and measured peak, their ratio, the bytes of
    each collective; FSDP's shards checked against the prediction."""
    from .output import Table

    m = result.predicted[0]
    names = sorted({name for rank in result.ranks for name in rank.collectives})
    headers = ("rank", "predicted peak", "measured peak", "predicted / measured", "at the start",
               *(f"{name} payload" for name in names), "seconds")
    table = Table(headers, right=headers, title=f"{m.strategy} on {nproc} processes ({m.device}), batch {m.batch} "
                                                 f"= {m.gpu_batch} per rank, {m.optimizer}: the second training step")
    for rank, predicted in zip(result.ranks, result.predicted):
        table.add_row(str(rank.rank), human_bytes(predicted.total_bytes), human_bytes(rank.peak_bytes),
                      f"{predicted.total_bytes / rank.peak_bytes:.3f}" if rank.peak_bytes else "-",
                      human_bytes(rank.start_bytes), *(human_bytes(rank.collectives.get(name, 0)) for name in names),
                      f"{rank.seconds:.2f}")
    lines = ["rank 0:"] + memory_lines(m) if nproc > 1 else memory_lines(m)
    if m.strategy == "fsdp":
        held = sum(rows for _, rows in result.expected_shards[0]) if result.expected_shards else 0
        lines.append(f"parameter and gradient shards (to_local() rows of every tensor, on every rank): "
                     f"{'as predicted' if result.ok else 'see the disagreements'} (torch.chunk's split of the "
                     f"first axis; rank 0 holds {held:,} rows)")
    lines.append("measured: live tensor bytes (every storage an operation returns, until freed) from the start of "
                 "the second step to the end of its optimizer step; payloads: what the collectives were given, "
                 "each GPU sending its ring's factor of them")
    return [table, "\n".join(lines)]
