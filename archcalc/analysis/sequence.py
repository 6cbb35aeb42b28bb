"""The figures of a sequence model: compute per token, training compute against the usual
estimate, the KV cache of autoregressive decoding, the attention score matrices. Exact
integers (a per-token figure is a Fraction: the sequence's count over its T tokens).

- Per token: the forward MACs and FLOPs of one sample (a sequence of T tokens, every layer
  included: embeddings, attention's full T x S products, the output projection), divided by T.
- Training, archcalc's count: 3 x the forward FLOPs (the backward pass computes two products
  of each forward product's size, the gradients of its input and of its weights).
- The estimate, 6N + 12·L·T·d FLOPs per token (Chowdhery et al. 2022, PaLM, appendix B; nanoGPT's
  estimate_mfu): 6 per parameter of the matrix products (N: every parameter except lookup tables
  nothing multiplies by, i.e. untied token embeddings and learned positions, as nanoGPT's
  get_num_params leaves out the positions and keeps the table tied to its output projection) and
  12 per head feature and position attended to (L layers of d = heads x head_dim, T keys each),
  the two attention products full (causal or not), at 2 FLOPs per multiply-accumulate, 3 for
  forward and backward; element-wise operations (norms, activations, softmax, biases) are left out.
- KV cache: each causal self-attention layer keeps, per token of context and per sequence, its
  keys and values: 2 x kv_heads x head_dim numbers; at a context of T tokens and a batch:
  2 x kv_heads x head_dim x T x batch x dtype bytes per layer, summed over the layers.
  Cross-attention's cache (the memory's keys and values, computed once) is not counted.
- Score matrices: heads x T x S attention probabilities per attention layer and sample, held
  by eager attention (softmax(Q Kᵀ) then A V, kept for the backward pass); a layer that declares
  the fused kernel (``fused: true``: flash attention) holds none. They are part of the activation
  memory (walk.score_elements).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ..choices import DTYPE_BYTES
from ..errors import SpecError
from ..layers import Steps
from ..layers.terms import Attending
from .walk import Analysis, LayerStats

TRAINING_PASSES = 3          # forward once, backward twice the forward's products
ESTIMATE_PARAMETER_FLOPS = 6  # 2 FLOPs per MAC x 3 passes, per parameter and token
ESTIMATE_ATTENTION_FLOPS = 12  # 2 products x 2 FLOPs per MAC x 3 passes, per head feature and key


@dataclass(frozen=True)
class AttentionLayer:
    """One attention layer as the sequence figures read it."""

    name: str
    attending: Attending

    @property
    def width(self) -> int:
        """d of the 12·L·T·d term: heads x head_dim (the query width)."""
        return self.attending.heads * self.attending.head_dim

    @property
    def cached_per_token(self) -> int:
        """Numbers its KV cache holds per token of context and sequence: 2 x kv_heads x head_dim
        (keys and values) for causal self-attention, 0 otherwise."""
        a = self.attending
        return 2 * a.kv_heads * a.head_dim if a.causal and not a.cross else 0

    @property
    def scores(self) -> int:
        """Attention probabilities held per sample: heads x T x S; 0 under a fused kernel."""
        a = self.attending
        return 0 if a.fused else a.heads * a.queries * a.keys

    # --- the multiply-accumulates of each step, per head (explain's board) ----------------
    @property
    def query_macs(self) -> int:
        """Q = x W_q, per head: T x d x head_dim."""
        a = self.attending
        return a.queries * a.model_dim * a.head_dim

    @property
    def key_macs(self) -> int:
        """K = m W_k (and V = m W_v alike), per key/value head: S x d_m x head_dim."""
        a = self.attending
        return a.keys * a.memory_dim * a.head_dim

    @property
    def product_macs(self) -> int:
        """Q Kᵀ (and A V alike), per head: T x S x head_dim, the full T x S (a causal mask does
        not halve it)."""
        a = self.attending
        return a.queries * a.keys * a.head_dim

    @property
    def output_macs(self) -> int:
        """The heads joined, times W_o: T x (heads x head_dim) x d."""
        a = self.attending
        return a.queries * a.heads * a.head_dim * a.model_dim

    @property
    def macs(self) -> int:
        """heads x (Q + Q Kᵀ + A V) + 2 x kv_heads x K + the output projection: the layer's MACs."""
        a = self.attending
        return (a.heads * (self.query_macs + 2 * self.product_macs) + 2 * a.kv_heads * self.key_macs
                + self.output_macs)


@dataclass(frozen=True)
class KVCache:
    """The KV cache of autoregressive decoding at ``context`` tokens for ``batch`` sequences."""

    context: int
    batch: int
    dtype: str
    layers: tuple[tuple[str, int], ...]   # (layer name, numbers cached per token: 2 x kv_heads x head_dim)

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def bytes_of(self, per_token: int) -> int:
        """per_token x context x batch x dtype bytes."""
        return per_token * self.context * self.batch * self.dtype_bytes

    @property
    def per_token_bytes(self) -> int:
        """Bytes added per token of one sequence, every layer: 2 x layers x kv_heads x head_dim x dtype."""
        return sum(per_token for _, per_token in self.layers) * self.dtype_bytes

    @property
    def total_bytes(self) -> int:
        """2 x layers x kv_heads x head_dim x context x batch x dtype bytes (summed per layer)."""
        return sum(self.bytes_of(per_token) for _, per_token in self.layers)


@dataclass(frozen=True)
class SequenceFigures:
    """What inspect adds for a network that reads a sequence; per sample is per sequence."""

    input: str                  # the sequence input the figures are per token of
    steps: int                  # its T
    macs: int                   # forward, one sequence
    flops: int
    params: int
    estimate_params: int        # N of the 6N estimate
    attention: tuple[AttentionLayer, ...]
    kv_cache: KVCache | None = None

    @property
    def macs_per_token(self) -> Fraction:
        return Fraction(self.macs, self.steps)

    @property
    def flops_per_token(self) -> Fraction:
        return Fraction(self.flops, self.steps)

    @property
    def training_flops_per_token(self) -> Fraction:
        """archcalc's count: 3 x the forward FLOPs per token."""
        return TRAINING_PASSES * self.flops_per_token

    @property
    def estimate_attention_flops(self) -> int:
        """12·L·T·d: 12 x heads x head_dim x S summed over the attention layers (S = T in self-attention)."""
        return sum(ESTIMATE_ATTENTION_FLOPS * layer.width * layer.attending.keys for layer in self.attention)

    @property
    def estimate_flops_per_token(self) -> int:
        """6N + 12·L·T·d."""
        return ESTIMATE_PARAMETER_FLOPS * self.estimate_params + self.estimate_attention_flops

    @property
    def scores(self) -> int:
        """Attention probabilities held per sample, every layer."""
        return sum(layer.scores for layer in self.attention)


def sequence_input(analysis: Analysis) -> tuple[str, Steps] | None:
    """(name, shape) of the first network input that is a sequence, None if none is."""
    return next(((name, shape) for name, shape in analysis.input_shapes.items() if isinstance(shape, Steps)), None)


def attention_layers(analysis: Analysis) -> tuple[AttentionLayer, ...]:
    found = []
    for stats in analysis.layers:
        attending = stats.layer.attending(stats.input_shape)
        if attending is not None:
            found.append(AttentionLayer(stats.name, attending))
    return tuple(found)


def estimate_params(analysis: Analysis) -> int:
    """N of the 6N estimate: every parameter except the lookup tables no layer multiplies by
    (Layer.lookup_params; a table that another layer shares, a tied output projection, stays)."""
    shared = {stats.shares for stats in analysis.layers if stats.shares is not None}
    return analysis.totals.params - sum(_lookup(stats) for stats in analysis.layers if stats.name not in shared)


def _lookup(stats: LayerStats) -> int:
    return stats.layer.lookup_params(stats.input_shape) if stats.params else 0


def sequence_figures(analysis: Analysis, kv_context: int | None = None) -> SequenceFigures | None:
    """The figures of a network reading a sequence (None for one that does not, unless a KV cache
    is asked for); ``kv_context``: the KV cache at that many tokens, for ``analysis.batch``
    sequences in ``analysis.dtype`` (refused where no layer keeps one)."""
    found = sequence_input(analysis)
    attention = attention_layers(analysis)
    cache = None
    if kv_context is not None:
        cache = kv_cache(attention, kv_context, analysis.batch, analysis.dtype)
    if found is None:
        if cache is not None:
            raise SpecError("the KV cache is given with the per-token figures of a sequence input, and this "
                            "network reads none", hint="give the network a sequence input: {steps: T}")
        return None
    name, shape = found
    totals = analysis.totals
    return SequenceFigures(name, shape.steps, totals.macs, totals.flops, totals.params, estimate_params(analysis),
                           attention, cache)


def kv_cache(attention: tuple[AttentionLayer, ...], context: int, batch: int, dtype: str) -> KVCache:
    """The KV cache of the causal self-attention layers among ``attention``."""
    if context < 1:
        raise SpecError(f"a KV cache holds at least one token of context, got {context}")
    layers = tuple((layer.name, layer.cached_per_token) for layer in attention if layer.cached_per_token)
    if not layers:
        what = (f"its {len(attention)} attention layers are not causal self-attention" if attention
                else "it has no attention layer")
        raise SpecError(f"this network keeps no KV cache: {what}",
                        hint="an autoregressive decoder caches the keys and values of its causal self-attention "
                             "(attention: {causal: true})")
    return KVCache(context, batch, dtype, layers)
