"""The sequence figures in words (table, markdown) and as data (JSON): per token, training
against the 6N + 12·L·T·d estimate, attention scores, the KV cache. The arithmetic is
analysis/sequence.py's; this only writes it."""
from __future__ import annotations

from fractions import Fraction

from ..analysis.sequence import KVCache, SequenceFigures
from ..choices import DTYPE_BYTES
from ..spec import INPUT
from ..units import human_bytes, human_count
from . import escape


def per_token(value: Fraction, unit: str) -> str:
    """'142.41 MMACs'; a count that T does not divide is rounded to the prefix's two decimals
    (below 1000: to two decimals)."""
    if value.denominator == 1:
        return human_count(int(value), unit)
    if value >= 1000:
        return human_count(round(value), unit)
    return f"{float(value):,.2f} {unit}"


def exact(value: Fraction) -> int | float:
    """An integer where T divides the count, else the nearest float (JSON)."""
    return int(value) if value.denominator == 1 else float(value)


def _same(values) -> object | None:
    """The one value all of ``values`` share, None when they differ (or there are none)."""
    distinct = set(values)
    return next(iter(distinct)) if len(distinct) == 1 else None


def sequence_lines(figures: SequenceFigures, batch: int, dtype: str, name=escape.visible) -> list[str]:
    """The lines under the totals: per token, training, attention scores, KV cache."""
    s = figures
    of = "" if s.input == INPUT else f" of {name(s.input)}"
    lines = [f"per token{of}, T = {s.steps:,}: {per_token(s.macs_per_token, 'MACs')}, "
             f"{per_token(s.flops_per_token, 'FLOPs')} forward",
             f"training per token: {per_token(s.training_flops_per_token, 'FLOPs')} (archcalc: 3 x forward FLOPs); "
             f"estimate 6N + 12·L·T·d = {human_count(s.estimate_flops_per_token, 'FLOPs')} ({_estimate_terms(s)})"]
    if s.scores:
        size = DTYPE_BYTES[dtype]
        held = [layer for layer in s.attention if layer.scores]
        shapes = _same((layer.attending.heads, layer.attending.queries, layer.attending.keys) for layer in held)
        how = (f"{len(held)} layers x {shapes[0]} heads x {shapes[1]:,} x {shapes[2]:,}" if shapes else
               f"heads x T x S in {len(held)} layers")
        lines.append(f"attention scores: {how} = {s.scores:,} per sample, {human_bytes(s.scores * batch * size)} "
                     f"(batch {batch}, {dtype}), in the activation memory (eager attention; a layer with "
                     f"fused: true holds none)")
    if s.kv_cache is not None:
        lines += kv_cache_lines(s.kv_cache, figures, name)
    return lines


def _estimate_terms(s: SequenceFigures) -> str:
    """'N = 123,653,376, L = 12, T = 1,024, d = 768' (the attention term's values when every layer
    shares them)."""
    terms = f"N = {s.estimate_params:,} parameters of matrix products"
    if not s.attention:
        return terms + ", no attention layer"
    shared = _same((layer.attending.keys, layer.width) for layer in s.attention)
    if shared is None:
        return terms + f", 12·T·d summed over {len(s.attention)} attention layers"
    return terms + f", L = {len(s.attention)}, T = {shared[0]:,}, d = {shared[1]:,}"


def kv_cache_lines(cache: KVCache, figures: SequenceFigures, name=escape.visible) -> list[str]:
    """'KV cache at 8,192 tokens, batch 1, float16: 2 x 22 x 4 x 64 x 8,192 x 1 x 2 B = ...'."""
    attending = {layer.name: layer.attending for layer in figures.attention}
    shared = _same((attending[layer].kv_heads, attending[layer].head_dim) for layer, _ in cache.layers)
    head = f"KV cache at {cache.context:,} tokens, batch {cache.batch}, {cache.dtype}: "
    if shared is not None:
        formula = (f"2 x {len(cache.layers)} layers x {shared[0]} kv_heads x {shared[1]} head_dim x "
                   f"{cache.context:,} x {cache.batch} x {cache.dtype_bytes} B")
        each = cache.bytes_of(cache.layers[0][1])
        return [head + f"{formula} = {cache.total_bytes:,} B = {human_bytes(cache.total_bytes)}; "
                       f"{human_bytes(each)} per layer, {human_bytes(cache.per_token_bytes)} per token of a sequence"]
    lines = [head + f"{human_bytes(cache.total_bytes)} ({cache.total_bytes:,} B), "
                    f"{human_bytes(cache.per_token_bytes)} per token of a sequence:"]
    lines += [f"  {name(layer)}: 2 x {attending[layer].kv_heads} x {attending[layer].head_dim} x "
              f"{cache.context:,} x {cache.batch} x {cache.dtype_bytes} B = {human_bytes(cache.bytes_of(per_token))}"
              for layer, per_token in cache.layers]
    return lines


def sequence_dict(figures: SequenceFigures, batch: int, dtype: str) -> dict:
    """The JSON 'sequence' object (docs/json.md)."""
    s = figures
    found: dict = {
        "input": s.input, "steps": s.steps, "macs": s.macs, "flops": s.flops,
        "macs_per_token": exact(s.macs_per_token), "flops_per_token": exact(s.flops_per_token),
        "training_flops_per_token": exact(s.training_flops_per_token),
        "estimate": {"formula": "6N + 12·L·T·d", "flops_per_token": s.estimate_flops_per_token,
                     "params": s.estimate_params, "attention_flops_per_token": s.estimate_attention_flops},
        "attention_scores": s.scores, "attention_score_bytes": s.scores * batch * DTYPE_BYTES[dtype],
        "attention_layers": [{"name": layer.name, "heads": layer.attending.heads,
                              "kv_heads": layer.attending.kv_heads, "head_dim": layer.attending.head_dim,
                              "queries": layer.attending.queries, "keys": layer.attending.keys,
                              "causal": layer.attending.causal, "cross": layer.attending.cross,
                              "fused": layer.attending.fused, "scores": layer.scores,
                              "kv_cache_per_token": layer.cached_per_token} for layer in s.attention],
    }
    if s.kv_cache is not None:
        cache = s.kv_cache
        found["kv_cache"] = {"context": cache.context, "batch": cache.batch, "dtype": cache.dtype,
                             "dtype_bytes": cache.dtype_bytes, "per_token_bytes": cache.per_token_bytes,
                             "total_bytes": cache.total_bytes,
                             "layers": [{"name": layer, "bytes": cache.bytes_of(per_token)}
                                        for layer, per_token in cache.layers]}
    return found
