"""What every number archcalc prints means, stated once: every view (the table, JSON, markdown,
explain, diff, run) takes its wording from here.

- shapes are per sample, channels first, without the batch axis;
- params are learnable weights + biases, exactly as PyTorch's ``parameters()`` counts them;
  buffers (BatchNorm's running statistics and batch counter) are counted apart, as the elements
  of ``buffers()``;
- neurons are the output elements of a layer, for one sample; the kinds that create no new
  values add 0 (``Layer.creates_neurons``); the input is not counted;
- bytes = count x dtype size (the int64 buffers, BatchNorm's batch counter, 8 bytes in any dtype,
  as ``model.to(dtype)`` leaves them); activation bytes = neurons x batch x dtype size; units are decimal
  (1 MB = 10^6 B) with the binary value beside (1 MiB = 2^20 B);
- the inference peak is the memory schedule's (analysis/schedule.py): parameters + buffers + the
  input + the largest set of tensors alive at once as PyTorch runs the layers; the course's rule
  stays beside it, labelled as such: forward memory = parameter + buffer + activation bytes (every
  output kept), training twice that;
- MACs are the multiply-accumulates of the kinds that define ``Layer.macs``, per sample (what
  torchvision's tables call GFLOPS); FLOPs = 2 x MACs + every other operation, each kind
  stating its rule (``Layer.extra_flops``); the totals also give both x batch.

The lists of kinds are read from the layer registry, so they cannot drift from the rules: a new
kind is described the moment it is registered.
"""
from __future__ import annotations

from collections.abc import Callable

from ..choices import DTYPE_BYTES
from ..layers import REGISTRY, Layer


def _kinds(has: Callable[[type], bool]) -> list[str]:
    """The registered kinds for which ``has(cls)`` holds, in registry order; a kind whose registered
    parent kind holds it too is left out (conv1d, conv2d and conv3d are conv)."""
    def registered(cls: type) -> bool:
        return REGISTRY.get(getattr(cls, "kind", "")) is cls

    return [kind for kind, cls in REGISTRY.items()
            if has(cls) and not any(registered(base) and has(base) for base in cls.__mro__[1:])]


def kinds_without_neurons() -> list[str]:
    """Kinds that add 0 neurons: they pass on, reorder or join values without creating new ones."""
    return _kinds(lambda cls: issubclass(cls, Layer) and not cls.creates_neurons)


def kinds_with_macs() -> list[str]:
    """Kinds that count multiply-accumulates: those that define their own ``macs`` rule."""
    return _kinds(lambda cls: issubclass(cls, Layer) and cls.macs is not Layer.macs)


def opaque_kinds() -> list[str]:
    """Kinds whose MACs and FLOPs are unknown (opaque): shown as not counted, left out of the totals."""
    return _kinds(lambda cls: issubclass(cls, Layer) and cls.opaque)


def opaque_convention() -> str:
    """What a report with opaque layers adds to its conventions (under 'opaque')."""
    return (f"{'/'.join(opaque_kinds())} layers are operations an import kept without a kind (archcalc import "
            "--allow-opaque): their output shape and parameters are PyTorch's, as traced; their MACs and FLOPs are "
            "unknown, not counted: shown as ? (null in JSON) and left out of the totals")


def conventions(dtype: str, batch: int) -> dict[str, str]:
    """Every convention of a report in full, for JSON and markdown: {figure: what it means}."""
    return {
        "shapes": "per sample, channels first (C x H x W), no batch axis",
        "params": "learnable weights + biases, as PyTorch's parameters() counts them; "
                  "buffers (BatchNorm running statistics and batch counter) apart",
        "neurons": f"output elements of each layer for one sample; {', '.join(kinds_without_neurons())} add 0 "
                   "(they create no new values); pools and norms count; the input is not counted",
        "bytes": f"count x {DTYPE_BYTES[dtype]} ({dtype}), int64 buffers x 8; activations x batch {batch}; "
                 "1 kB = 1000 B, 1 MB = 10^6 B; KiB/MiB/GiB are binary (2^10, 2^20, 2^30)",
        "inference_peak": "the memory schedule's (archcalc memory): parameters + buffers + the input + the largest "
                          "set of tensors alive at once as PyTorch runs the layers (eval, no_grad), CUDA's kernels, "
                          "at the batch",
        "training_estimate": "the course's rule: forward pass = parameters + buffers + activations (every output "
                             "kept), training about twice that",
        "macs": f"multiply-accumulates of {', '.join(kinds_with_macs())} layers, per sample (conv: output "
                "elements x C/groups x kernel volume; dense: in x out; attention: its projections + Q Kᵀ + A V, "
                "heads x T x S x head_dim each, the full T x S when causal); no bias: torchvision's 'GFLOPS'",
        "flops": "per sample: 2 x MACs + 1 per bias add and per activation element, pools 1 per value "
                 "read, batchnorm 2 per element, add/multiply/subtract n-1 per element (README: every rule)",
    }


EXTRA_CONVENTIONS = {  # inspect's optional sections
    "receptive_field": "per spatial axis, in input pixels: size seen by one unit (padding included), jump "
                       "(effective stride) and start (left edge of the first unit's field, < 0 in the "
                       "padding): unit i sees start + i*jump .. + size - 1; a merge takes the union of its "
                       "inputs' fields; exact through convs and pools, an enclosing bound after an upsampling",
    "training": "weights + gradients + optimizer state (sgd 0, momentum 1, adam/adamw 2 per trainable "
                "parameter) + batch x (input + every layer's output + the largest layer's output once, "
                "for its gradient); mixed precision: fp32 master weights, gradients and state, a 16-bit "
                "weight copy, 16-bit activations",
    "sharding": "per GPU (ZeRO, Rajbhandari et al. SC20): mixed precision holds 16-bit weights and gradients and "
                "K = 4 + 4 x states fp32 bytes of optimizer state per parameter; zero1 shards the optimizer "
                "state, zero2 also the gradients, fsdp also the weights (each tensor on its first axis, "
                "FSDP2); activations at batch / N; peak: the largest of the end of forward, the end of backward "
                "and the optimizer step (its temporaries as torch.optim's CUDA foreach Adam makes them); communication per GPU "
                "with a ring's factor, all-reduce 2(N-1)/N, all-gather and reduce-scatter (N-1)/N; compute "
                "3 x forward FLOPs",
    "sequence": "per token: the forward MACs and FLOPs of one sequence of T tokens (every layer, attention's full "
                "T x S products) / T; training per token, archcalc's count: 3 x the forward FLOPs (the backward "
                "pass computes two products of each forward product's size); the estimate 6N + 12·L·T·d FLOPs per "
                "token (PaLM, Chowdhery et al. 2022, appendix B; nanoGPT's estimate_mfu): N = the parameters of "
                "matrix products (untied embedding tables and learned positions left out), L attention layers of "
                "d = heads x head_dim over T keys, 2 FLOPs per MAC x 3 passes, element-wise operations left out; "
                "attention scores: heads x T x S probabilities per attention layer and sample, held by eager "
                "attention and counted in the activation memory, none for a layer with fused: true",
    "kv_cache": "autoregressive decoding keeps the keys and values of every causal self-attention layer: "
                "2 x kv_heads x head_dim x context x batch x dtype bytes per layer, summed over the L layers "
                "(2 x L x kv_heads x head_dim x T x batch x dtype); cross-attention's cache is not counted",
    "im2col": "per convolution: filter matrix K x (C/g*F^d), column matrix (C/g*F^d) x (positions*batch) "
              "per group, output K x (positions*batch); column buffer = g x rows x columns x dtype size",
}


def footnote(*figures: str) -> str:
    """The short form under a table, for the figures it shows (shapes, bytes, neurons, macs)."""
    first = {
        "bytes": "Units: 1 MB = 10^6 bytes, 1 MiB = 2^20 bytes.",
        "shapes": "Shapes are per sample, channels first.",
        "neurons": f"Neurons exclude the input and {'/'.join(kinds_without_neurons())} layers.",
    }
    lines = [" ".join(text for figure, text in first.items() if figure in figures)]
    if "macs" in figures:
        lines.append(f"Per sample, k/M/G = 10^3/10^6/10^9: MACs = {'/'.join(kinds_with_macs())} "
                     "multiply-accumulates (torchvision's \"GFLOPS\"); FLOPs = 2 x MACs + bias, activation, "
                     "pool, norm, add ops.")
    return "\n".join(line for line in lines if line)
