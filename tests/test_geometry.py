"""The one size rule (D-F+2P)/S+1, on the course's worked examples."""
import pytest
from conftest import spec_text

import archcalc
from archcalc.layers.geometry import Window, same_padding, valid_alternatives
from archcalc.views.wording import notes


@pytest.mark.parametrize("kernel,stride,expected", [
    (3, 1, 7), (5, 1, 5), (7, 1, 3), (5, 2, 3),          # slides 45, 50, 53, 56
])
def test_signal_d9(kernel, stride, expected):
    spec = archcalc.loads(spec_text([1, 9], f"conv: {{filters: 1, kernel: {kernel}, stride: {stride}}}"))
    assert tuple(archcalc.analyze(spec).output_shape) == (1, expected)


def test_signal_d9_f5_s3_is_invalid():
    spec = archcalc.loads(spec_text([1, 9], "conv: {filters: 1, kernel: 5, stride: 3}"))
    with pytest.raises(archcalc.GeometryError) as info:
        archcalc.analyze(spec)
    assert "(9-5+2*0)/3+1 = 2.33 is not whole" in info.value.message


@pytest.mark.parametrize("stride,expected", [(1, (1, 5, 5)), (2, (1, 3, 3))])  # slides 74, 77
def test_7x7_image_3x3_filter(stride, expected):
    spec = archcalc.loads(spec_text([1, 7, 7], f"conv: {{filters: 1, kernel: 3, stride: {stride}}}"))
    assert tuple(archcalc.analyze(spec).output_shape) == expected


def test_7x7_image_stride_3_is_invalid():  # slide 80: "Combinaison D-F-S invalide!"
    spec = archcalc.loads(spec_text([1, 7, 7], "conv: {filters: 1, kernel: 3, stride: 3}"))
    with pytest.raises(archcalc.GeometryError, match="invalid D-F-S combination along H"):
        archcalc.analyze(spec)


@pytest.mark.parametrize("rounding,expected", [("floor", 2), ("ceil", 3)])
def test_rounding_accepts_lossy_geometry(rounding, expected):
    # PyTorch: Conv1d/MaxPool1d(kernel 5, stride 3) on 9 gives floor 2; ceil_mode gives 3
    spec = archcalc.loads(spec_text([1, 9], f"maxpool: {{kernel: 5, stride: 3, rounding: {rounding}}}"))
    result = archcalc.analyze(spec)
    assert tuple(result.output_shape) == (1, expected)
    assert notes(result.layers[0].size_terms)


@pytest.mark.parametrize("size,kernel,stride,dilation,expected", [
    (9, 3, 1, 1, (1, 1)), (32, 5, 1, 1, (2, 2)), (7, 4, 1, 1, (1, 2)),   # even kernel: extra on the right
    (224, 7, 2, 1, (2, 3)), (5, 3, 2, 2, (2, 2)),
])
def test_same_padding_tensorflow_convention(size, kernel, stride, dilation, expected):
    assert same_padding(size, kernel, stride, dilation) == expected
    left, right = expected
    window = Window(size, kernel, stride, left, right, dilation)
    assert window.output == -(-size // stride)


def test_dilation_widens_the_kernel():
    # F_eff = 2*(3-1)+1 = 5 on 9 -> 5 (PyTorch Conv1d(kernel_size=3, dilation=2) agrees)
    assert Window(9, 3, 1, 0, 0, dilation=2).output == 5


def test_pytorch_ceil_mode_drops_a_window_starting_in_the_padding():
    # MaxPool1d(kernel_size=2, stride=2, padding=1, ceil_mode=True) on 5 gives 3, not 4
    assert Window(5, 2, 2, 1, 1, rounding="ceil").output == 3


def test_fixes_for_the_course_invalid_example():
    fixes = valid_alternatives(Window(9, 5, 3, 0, 0))
    assert fixes["stride"] == (2, 3)
    assert fixes["padding"] == (1, 3)       # (9-5+2)/3+1 = 3
    assert fixes["kernel"] == (6, 2)        # (9-6)/3+1 = 2 (ties go to the smaller change)
    assert set(fixes) == {"stride", "padding", "kernel"}  # the network input: walk.nearest_valid_input


@pytest.mark.parametrize("layer,expected", [
    ("maxpool: {kernel: 3, stride: 2, rounding: ceil}", (1, 1, 1)),   # hangs 1 past the edge: one window
    ("avgpool: {kernel: 4, stride: 3, rounding: ceil}", (1, 1, 1)),   # hangs 2, less than the stride
    ("maxpool: {kernel: 5, stride: 2, rounding: ceil}", None),        # hangs 3, a stride or more: 0 windows
    ("maxpool: {kernel: 3, stride: 1, rounding: ceil}", None),
    ("maxpool: {kernel: 3, stride: 2, rounding: floor}", None),       # floor never hangs past the edge
])
def test_ceil_pool_window_larger_than_the_input(layer, expected):
    """On 2x2, as torch.nn.MaxPool2d/AvgPool2d(k, s, ceil_mode=True) give (1x1 or 'output size is too small')."""
    torch = pytest.importorskip("torch")
    spec = archcalc.loads(spec_text([1, 2, 2], layer))
    if expected is None:
        with pytest.raises(archcalc.GeometryError, match="does not fit"):
            archcalc.analyze(spec)
    else:
        assert tuple(archcalc.analyze(spec).output_shape) == expected
    settings = spec.nodes[0].layer
    pool = (torch.nn.MaxPool2d if settings.kind == "maxpool" else torch.nn.AvgPool2d)(
        settings.kernel, settings.stride, ceil_mode=settings.rounding == "ceil")
    try:
        assert tuple(pool(torch.zeros(1, 1, 2, 2)).shape[1:]) == expected
    except RuntimeError:
        assert expected is None


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_ceil_pool_window_larger_than_the_input_gives_what_pytorch_gives(kind, rank):
    """A ceil-mode window wider than the input was refused where PyTorch (and Caffe) give 1: PyTorch's
    ceil_mode accepts a lone window hanging past the edge by less than a stride. Every small case is
    run through torch.nn.MaxPool/AvgPool(k, s, p, ceil_mode=True); what it refuses stays refused."""
    torch = pytest.importorskip("torch")
    pool = getattr(torch.nn, f"{'MaxPool' if kind == 'maxpool' else 'AvgPool'}{rank}d")
    cases = 0
    for size in range(1, 5):
        for kernel in range(1, 7):
            for stride in range(1, 5):
                for pad in range(kernel // 2 + 1):
                    if kind == "avgpool" and rank == 3 and pad and size < kernel:
                        continue  # AvgPool3d refuses these padded or not; archcalc pads in a layer of its own
                    try:
                        torch_out = pool(kernel, stride, pad, ceil_mode=True)(torch.zeros(1, 1, *[size] * rank))
                        expected = tuple(torch_out.shape[1:])
                    except RuntimeError:
                        expected = None
                    spec = archcalc.loads(spec_text(
                        [1, *[size] * rank],
                        f"{kind}: {{kernel: {kernel}, stride: {stride}, padding: {pad}, rounding: ceil}}"))
                    try:
                        got = tuple(archcalc.analyze(spec).output_shape)
                    except archcalc.SpecError:
                        got = None
                    assert got == expected, (size, kernel, stride, pad)
                    cases += size < kernel and expected is not None
    assert cases > 0 or (kind, rank) == ("avgpool", 3)  # windows wider than the input, accepted by both
