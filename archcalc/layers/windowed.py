"""Shared rules of layers that slide a window over spatial axes (convolutions, pools)."""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace

from ..errors import GeometryError
from .base import Label, Layer, axes, feature_map_rank, spatial_rank
from .geometry import Window, axis_labels, axis_words, exact_text, rule_text, same_padding, valid_alternatives
from .recipe import compact, module
from .shapes import Shape
from .terms import WindowAxis

PAD_MODULES = {"zeros": "ZeroPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad",
               "circular": "CircularPad"}  # torch.nn's explicit padding layers, + "1d"/"2d"/"3d"


@dataclass(frozen=True, kw_only=True)
class Windowed(Layer):
    """A layer whose output size per axis is (D - F_eff + 2P)/S + 1 (see geometry.Window).

    Subclasses declare the fields kernel, stride, padding, rounding (and dilation when they
    support it); this class turns them into one ``Window`` per spatial axis.
    """

    dilation = 1  # overridden by a field where the kind supports dilation

    def channels_last(self, x: Shape, inputs: tuple[bool, ...]) -> bool:
        """Its input's layout on a 2-D or 3-D map (PyTorch's memory-format propagation: oneDNN's
        convolutions and the pooling kernels keep a channels-last input so; on 1-D maps not)."""
        return inputs[0] and spatial_rank(x) >= 2

    def stride_value(self):
        return self.stride

    def rounded(self, rounding: str) -> Layer:
        return replace(self, rounding=rounding)

    # output_shape, size_terms, macs... each need the windows: built once per (layer, input)
    @functools.lru_cache(maxsize=64)
    def windows(self, x: Shape) -> tuple[Window, ...]:
        rank = feature_map_rank(x, self.kind)
        kernel = axes(self.kernel, rank, "kernel")
        stride = axes(self.stride_value(), rank, "stride")
        dilation = axes(self.dilation, rank, "dilation")
        if self.padding == "same":
            pads = [same_padding(d, f, s, r) for d, f, s, r in zip(x[1:], kernel, stride, dilation)]
        elif self.padding == "valid":
            pads = [(0, 0)] * rank
        else:
            pads = [(p, p) for p in axes(self.padding, rank, "padding")]
        # 'same' promises out = ceil(D/S), even where a kernel smaller than the stride skips inputs
        rounding = "floor" if self.padding == "same" and self.rounding == "strict" else self.rounding
        return tuple(Window(d, f, s, pl, pr, r, rounding)
                     for d, f, s, (pl, pr), r in zip(x[1:], kernel, stride, pads, dilation))

    def checked_windows(self, x: Shape) -> list[Window]:
        """The windows, after raising GeometryError for the first axis that does not tile."""
        windows = self.windows(x)
        for axis, window in enumerate(windows):
            if not window.fits:
                raise self._too_big(window, axis, windows)
            if not window.whole and window.rounding == "strict":
                raise self._not_whole(window, axis, windows)
        return windows

    def spatial_output(self, x: Shape) -> tuple:
        return tuple(w.output for w in self.checked_windows(x))

    def receptive_field(self, x: Shape, y: Shape, field: tuple) -> tuple:
        """Each axis's window widens the field (receptive.AxisField.through)."""
        return tuple(axis.through(window) for axis, window in zip(field, self.windows(x)))

    def label(self, x: Shape) -> Label:
        """'conv 96 11x11, stride 4, relu', 'maxpool 3x3, stride 2': the kernel drawn per axis;
        in 1D, 'conv 4, kernel 3' (not 'conv 4 3')."""
        settings = self.hyperparameters()
        kernel = settings.pop("kernel", self.kernel)
        if not isinstance(kernel, tuple):
            kernel = (kernel,) * max(spatial_rank(x), 1)
        head = ()
        if self.main not in (None, "kernel"):
            settings.pop(self.main, None)
            head = (getattr(self, self.main),)
        if self.main == "kernel" or len(kernel) > 1:
            head += (kernel,)
        else:
            settings = {"kernel": kernel[0], **settings}
        return Label(self.kind, head, settings)

    def torch_padding(self, x: Shape, mode: str = "zeros", fill: float = 0.0, limit=None):
        """(the torch layer's padding argument, an explicit pad recipe or None).

        PyTorch's layers pad both ends of an axis alike. 'same' with an odd total (an even
        kernel, or stride > 1, where PyTorch's own padding='same' refuses) puts the extra one on
        the right, so that padding becomes its own module before the layer: zeros, ``fill``
        (-inf before a max pool) or the reflect/replicate/circular copies of ``mode``. So does a
        padding above ``limit(window)`` (PyTorch pools take at most kernel//2 inline).
        """
        windows = self.windows(x)
        if all(w.pad_left == w.pad_right and (limit is None or w.pad_left <= limit(w)) for w in windows):
            return compact(w.pad_left for w in windows), None
        pads = tuple(p for w in reversed(windows) for p in (w.pad_left, w.pad_right))  # F.pad: last axis first
        rank = len(windows)
        if fill:
            return 0, module(f"nn.ConstantPad{rank}d", pads, fill)
        return 0, module(f"nn.{PAD_MODULES[mode]}{rank}d", pads)

    def size_terms(self, x: Shape, y: Shape | None) -> tuple:
        """One WindowAxis per spatial axis, after the effective kernel (dilation) and 'same'
        padding; ``y`` is not needed (explain shows the windows of a layer that fails to tile)."""
        windows = self.windows(x)
        labels = axis_labels(len(windows))
        return tuple(WindowAxis(label, w, self.padding == "same", self.rounding) for label, w in zip(labels, windows))

    # --- error messages ---------------------------------------------------------------
    def _axis(self, axis: int, rank: int) -> str:
        return "" if rank == 1 else f" along {axis_labels(rank)[axis]}"

    def _fixes(self, window: Window, windows: tuple) -> list[str]:
        """'padding: same (-> 16)' first where 'same' makes every axis whole (the usual fix of a
        strided layer), then the nearest stride, padding and kernel for this axis."""
        fixes = []
        if self.padding != "same" and all(_same(w).whole for w in windows):
            fixes.append(f"padding: same (-> {_same(window).output})")
        words = {"stride": "stride", "padding": "padding", "kernel": "kernel"}
        return fixes + [f"{words[key]} {value} (-> {out})" for key, (value, out) in valid_alternatives(window).items()]

    def _not_whole(self, w: Window, axis: int, windows: tuple) -> GeometryError:
        rank = len(windows)
        words = axis_words(rank, axis)
        unread = f"last {w.leftover} {words}" if w.leftover > 1 else f"last {words[:-1]}"
        floor = w.span // w.stride + 1
        message = (f"invalid D-F-S combination{self._axis(axis, rank)}: {rule_text(w)}+1 = {exact_text(w)} "
                   f"is not whole; stride {w.stride} leaves the {unread} unread "
                   f"(PyTorch would silently floor to {floor})")
        field = "stride" if "stride" in self.spec_fields else "kernel"
        return GeometryError(message, fixes=lambda: tuple(self._fixes(w, windows)), field=field,
                             otherwise="or accept the loss with 'rounding: floor' (PyTorch) or 'ceil' (Caffe)")

    def _too_big(self, w: Window, axis: int, windows: tuple) -> GeometryError:
        rank = len(windows)
        message = (f"kernel {w.effective_kernel} does not fit{self._axis(axis, rank)}: the input is "
                   f"{w.size} with padding {w.pad_left}+{w.pad_right}, so D-F+2P = {w.span} is negative")
        if w.rounding == "ceil":  # PyTorch's ceil_mode: one window may hang past the edge, by less than S
            message += f" (rounding up lets one window hang past the edge by less than the stride {w.stride})"
        largest = (w.size + w.pad_left + w.pad_right - 1) // w.dilation + 1  # F_eff <= D + 2P
        return GeometryError(message, fixes=lambda: tuple(self._fixes(w, windows)), field="kernel",
                             otherwise=f"at most kernel {largest} fits here")


def _same(w: Window) -> Window:
    """The axis with 'same' padding (out = ceil(D/S)), judged strictly."""
    left, right = same_padding(w.size, w.kernel, w.stride, w.dilation)
    return Window(w.size, w.kernel, w.stride, left, right, w.dilation)
