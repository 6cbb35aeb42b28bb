"""The one window-size rule shared by every convolution and pooling layer.

out = (D - F_eff + P_left + P_right) / S + 1, with F_eff = dilation*(F - 1) + 1.

This is the course's (D-F+2P)/S+1 with dilation and asymmetric padding as plain inputs.
When (D - F_eff + P_left + P_right) is not a multiple of S the geometry is invalid
("Combinaison D-F-S invalide"): ``strict`` rounding refuses it, ``floor`` (PyTorch) drops
the last partial window, ``ceil`` (Caffe pooling) adds one more partial window, unless
it would start in the right padding (``Window.dropped``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

ROUNDINGS = ("strict", "floor", "ceil")


@dataclass(frozen=True)
class Window:
    """One spatial axis of a windowed layer, with the arithmetic that sized it."""

    size: int          # D, the input size on this axis
    kernel: int        # F
    stride: int        # S
    pad_left: int
    pad_right: int
    dilation: int = 1
    rounding: str = "strict"

    @property
    def effective_kernel(self) -> int:
        return self.dilation * (self.kernel - 1) + 1

    @property
    def span(self) -> int:
        """D - F_eff + P_left + P_right: how far the window travels."""
        return self.size - self.effective_kernel + self.pad_left + self.pad_right

    @property
    def fits(self) -> bool:
        """At least one window. Rounding up, a single window may hang past the padded edge by
        less than a stride: PyTorch's ceil_mode gives (span + S - 1)//S + 1 = 1 for -S < span < 0
        (a 3-wide window, stride 2, over 2 inputs), as Caffe does; from -S on that is 0, refused."""
        return self.span >= 0 or (self.rounding == "ceil" and self.span > -self.stride)

    @property
    def whole(self) -> bool:
        """True when the windows tile the padded input exactly (a valid D-F-S combination)."""
        return self.span >= 0 and self.span % self.stride == 0

    @property
    def leftover(self) -> int:
        """Padded inputs after the last full window: never read when rounding down (with a lone
        window wider than the input, S - leftover is how far it hangs past the edge)."""
        return self.span % self.stride if self.fits else 0

    @property
    def dropped(self) -> bool:
        """Ceil rounding whose extra window would start in the right padding (or past it):
        PyTorch and Caffe drop that window, if (out-1)*S >= D + P_left then out -= 1."""
        return (self.rounding == "ceil" and self.leftover > 0
                and (self.span // self.stride + 1) * self.stride >= self.size + self.pad_left)

    @property
    def output(self) -> int:
        """Output size under this axis's rounding (strict assumes ``whole``)."""
        steps = self.span // self.stride
        if self.rounding == "ceil" and self.leftover and not self.dropped:
            steps += 1
        return steps + 1


    @property
    def last_read(self) -> int:
        """The last input position a window reads (0-based; in the right padding when >= D)."""
        return (self.output - 1) * self.stride - self.pad_left + self.effective_kernel - 1

    @property
    def unread(self) -> int | None:
        """How many of the D inputs no window reads: between the windows (a kernel smaller than
        its stride, or the gaps of a dilated one) and after the last one. Exact, in closed form
        (None only for absurd sizes where even that would take long)."""
        read = read_inputs(self)
        return None if read is None else self.size - read

    @property
    def unread_last(self) -> int:
        """The inputs after the last window's last tap: the rows a floor rounding drops."""
        return min(self.size, max(0, self.size - 1 - self.last_read))


MAX_RESIDUES = 100_000  # unread counting beyond this (sizes past 10^10 on every axis) is not attempted


def read_inputs(w: Window) -> int | None:
    """How many of the D input positions some window reads: window o (0 <= o < out) reads
    o*S + j*dilation - P_left for j < F. In padded coordinates q = p + P_left and with
    g = gcd(S, dilation) only multiples of g are read, q = g*(o*s + j*d) with s, d coprime; the
    taps whose (j or o) index agrees modulo the other step form one progression of intervals
    each, counted without a loop over sizes (see _covered)."""
    g = math.gcd(w.stride, w.dilation)
    low, high = -(-w.pad_left // g), (w.pad_left + w.size - 1) // g
    families = ((w.output, w.stride // g), (w.kernel, w.dilation // g))
    # positions a*step_a + b*step_b (a < count_a, b < count_b): b's residues mod step_a are looped over
    (count_a, step_a), (count_b, step_b) = min((families, families[::-1]),
                                               key=lambda pair: min(pair[1][0], pair[0][1]))
    residues = min(count_b, step_a)
    if residues > MAX_RESIDUES:
        return None
    read = 0
    for b in range(residues):  # b, b + step_a, ...: values b*step_b + step_a*(a + t*step_b)
        offset = b * step_b
        repeats = -(-(count_b - b) // step_a)
        read += _covered(count_a, step_b, repeats, -(-(low - offset) // step_a), (high - offset) // step_a)
    return read


def _covered(length: int, spacing: int, count: int, low: int, high: int) -> int:
    """How many integers of [low, high] lie in the union of [t*spacing, t*spacing + length - 1]
    for t < count."""
    if count <= 0 or high < low:
        return 0
    if length >= spacing:  # the intervals touch: one interval
        return max(0, min(high, (count - 1) * spacing + length - 1) - max(low, 0) + 1)

    def up_to(x: int) -> int:
        if x < 0:
            return 0
        k = x // spacing
        return count * length if k >= count else k * length + min(length, x - k * spacing + 1)
    return up_to(high) - up_to(low - 1)


def rule_text(window: Window) -> str:
    """The size rule's quotient with numbers, as on the board: (227-11+2*0)/4 (F is F_eff)."""
    w = window
    pad = f"2*{w.pad_left}" if w.pad_left == w.pad_right else f"{w.pad_left}+{w.pad_right}"
    return f"({w.size}-{w.effective_kernel}+{pad})/{w.stride}"


def exact_text(window: Window) -> str:
    """(D-F_eff+P_left+P_right)/S + 1 exactly, before rounding: 2.33, 4.5, 55."""
    return _decimal(window.span + window.stride, window.stride)


def _decimal(numerator: int, denominator: int) -> str:
    """numerator/denominator to two decimals, rounded half up, in integers: sizes may be far
    beyond a float's 53 bits."""
    hundredths = (200 * abs(numerator) + denominator) // (2 * denominator)
    if hundredths % 100 == 0 and numerator % denominator:  # 1.000000001 must not read "1"
        whole, rest = divmod(numerator, denominator)
        return f"{whole}+{rest}/{denominator}"
    text = f"{hundredths // 100}.{hundredths % 100:02d}".rstrip("0").rstrip(".")
    return "-" + text if numerator < 0 and hundredths else text


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow/PyTorch 'same': out = ceil(D/S); the odd pad goes on the right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def valid_alternatives(window: Window, search: int = 64) -> dict[str, tuple[int, int]]:
    """The nearest changes of the layer that make an invalid axis whole: {what: (new value, new
    output)}. (Which network input would do is the analysis's to say: walk.nearest_valid_input.)

    Searched among strides, paddings (symmetric) and kernels within ``search`` of the current ones (never O(size): a 10^9 stride is searched as fast as 3); each entry is the
    closest valid value (ties go to the smaller value).
    """
    def nearest(current: int, candidates: range, make) -> tuple[int, int] | None:
        # Outward from the current value, the smaller side first: the first whole window is
        # the closest one (ties go to the smaller value), usually a step or two away, so an
        # invalid layer's hint stays cheap (solve meets one per rejected input size).
        for distance in range(1, max(current - candidates.start, candidates.stop - 1 - current) + 1):
            for value in (current - distance, current + distance):
                if value in candidates:
                    trial = make(value)
                    if trial.whole:
                        return value, trial.output
        return None

    def replaced(**changes) -> Window:
        fields = dict(size=window.size, kernel=window.kernel, stride=window.stride,
                      pad_left=window.pad_left, pad_right=window.pad_right,
                      dilation=window.dilation, rounding="strict")
        fields.update(changes)
        return Window(**fields)

    found = {
        "stride": nearest(window.stride, range(max(1, window.stride - search), window.stride + search),
                          lambda s: replaced(stride=s)),
        "padding": nearest(window.pad_left, range(max(0, window.pad_left - search),
                                                  max(window.pad_left, window.pad_right) + search),
                           lambda p: replaced(pad_left=p, pad_right=p)),
        "kernel": nearest(window.kernel, range(max(1, window.kernel - search), window.kernel + search),
                          lambda f: replaced(kernel=f)),
    }
    return {key: value for key, value in found.items() if value is not None}


def axis_labels(rank: int) -> tuple:
    """The names of a feature map's spatial axes: L; H, W; D, H, W (then 'axis 4', ...)."""
    return {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}.get(rank, tuple(f"axis {i}" for i in range(1, rank + 1)))


def axis_words(rank: int, axis: int) -> str:
    """What the units of a spatial axis are called in messages (columns, rows, ...)."""
    names = {1: ("positions",), 2: ("rows", "columns"), 3: ("slices", "rows", "columns")}
    return names.get(rank, ("positions",) * rank)[axis] if rank in names else "positions"


def transposed_output(size: int, kernel: int, stride: int, padding: int, dilation: int = 1,
                      output_padding: int = 0) -> int:
    """A transposed convolution's output: the inverse of the window rule,
    out = (D - 1)*S - 2P + dilation*(F - 1) + output_padding + 1 (PyTorch's ConvTranspose)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
