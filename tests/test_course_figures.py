"""Every figure the course (../shared/seed, IFT 780, P.-M. Jodoin) gives, from the shipped specs."""
import pytest
from conftest import SPECS

import archcalc
from archcalc.views.wording import formula

# (spec, params, neurons, output shape) -- numbers from the course's slides
COURSE = [
    ("mnist_dense.yaml", 7_850, 10, (10,)),                      # slide 21
    ("image256_dense.yaml", 655_370, 10, (10,)),                 # slide 22
    ("signal1d.yaml", 3, 7, (1, 7)),                             # slide 45: D=9 F=3 -> 7
    ("filters1d_same.yaml", 25, 500, (5, 100)),                  # slide 67
    ("mri_same.yaml", 125, 50_000, (5, 100, 100)),               # slide 85
    ("mri_valid.yaml", 150, 55_296, (6, 96, 96)),                # slide 92
    ("cifar_same.yaml", 450, 6_144, (6, 32, 32)),                # slide 94
    ("cifar_stride3.yaml", 450, 600, (6, 10, 10)),               # slide 97
    ("cifar_10filters.yaml", 760, 7_840, (10, 28, 28)),          # slides 100, 104
    ("rgb3_same.yaml", 4_076, 12_288, (4, 32, 32)),              # slide 113
    ("rgb3_valid.yaml", 4_076, 3_904, (4, 8, 8)),                # slide 114
    ("lenet1.yaml", 3_246, None, (10,)),                         # slide 166
    ("lenet5.yaml", 44_426, None, (10,)),                        # slide 168
    ("alexnet.yaml", 62_378_344, 894_984, (1000,)),              # slides 173-180
    ("alexnet_grouped.yaml", 60_965_224, 894_984, (1000,)),      # the paper's "60 million"
    ("vgg16.yaml", 138_357_544, 15_087_080, (1000,)),            # slide 192
]


@pytest.mark.parametrize("name,params,neurons,output", COURSE, ids=[row[0] for row in COURSE])
def test_course_spec(name, params, neurons, output):
    result = archcalc.analyze(archcalc.load(str(SPECS / name)))
    assert result.totals.params == params
    if neurons is not None:
        assert result.totals.neurons == neurons
    assert tuple(result.output_shape) == output


def test_rgb3_valid_per_layer():
    """Slide 114: 3x(26x26) = 2,028, 5x(18x18) = 1,620, 4x(8x8) = 256; 441 + 1,215 + 2,420."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "rgb3_valid.yaml")))
    assert [s.neurons for s in result.layers] == [2_028, 1_620, 256]
    assert [s.params for s in result.layers] == [441, 1_215, 2_420]


def test_cifar_10_filters_without_bias():
    """Slide 99: 10 filters 5x5x3 without bias = 750 parameters."""
    text = (SPECS / "cifar_10filters.yaml").read_text().replace("padding: valid}", "padding: same, bias: false}")
    result = archcalc.analyze(archcalc.loads(text))
    assert result.totals.params == 750
    assert tuple(result.output_shape) == (10, 32, 32)


def test_alexnet_layers_as_taught():
    """Slides 174-179: CONV1 55x55x96 with 11x11x96x3 = 34,848 weights, POOL1 27x27x96, 0 params, ..."""
    result = archcalc.analyze(archcalc.load(str(SPECS / "alexnet.yaml")))
    expected = {
        "CONV1": (96, 55, 55), "POOL1": (96, 27, 27), "NORM1": (96, 27, 27), "CONV2": (256, 27, 27),
        "POOL2": (256, 13, 13), "NORM2": (256, 13, 13), "CONV3": (384, 13, 13), "CONV4": (384, 13, 13),
        "CONV5": (256, 13, 13), "POOL3": (256, 6, 6), "FC6": (4096,), "FC7": (4096,), "FC8": (1000,),
    }
    for name, shape in expected.items():
        assert tuple(result.layer(name).output_shape) == shape, name
    conv1 = result.layer("CONV1")
    assert conv1.params == 34_944 and conv1.params - 96 == 34_848
    assert result.layer("POOL1").params == 0
    assert formula(conv1.size_terms) == "(227-11+2*0)/4+1 = 55"
    assert formula(result.layer("POOL1").size_terms) == "(55-3+2*0)/2+1 = 27"


def test_vgg16_memory():
    """Slide 192: 138M params = 553,430,176 bytes; 15M neurons = 60,348,320 bytes; ~612 MB forward."""
    totals = archcalc.analyze(archcalc.load(str(SPECS / "vgg16.yaml"))).totals
    assert totals.param_bytes == 553_430_176
    assert totals.activation_bytes == 60_348_320
    assert totals.forward_bytes == 613_778_496
    assert totals.training_bytes_estimate == 2 * 613_778_496  # course: ">1.1 Go" with backprop


def test_lenet5_on_the_papers_32x32():
    result = archcalc.analyze(archcalc.load(str(SPECS / "lenet5.yaml")), input_shape=(1, 32, 32))
    assert result.totals.params == 61_706


@pytest.mark.parametrize("input_shape,conv_params,dense_params,fcn_output", [
    ((3, 32, 32), 1_028, 1_028, (4, 1, 1)),
    ((3, 64, 64), 1_028, 25_604, (4, 33, 33)),
])
def test_fully_convolutional_vs_dense_twin(input_shape, conv_params, dense_params, fcn_output):
    """Slide 138: on 64x64x3 the conv twin keeps its 1,028 weights and outputs 33x33x4; the dense twin's change."""
    fcn = archcalc.analyze(archcalc.load(str(SPECS / "rgb3_fcn.yaml")), input_shape=input_shape)
    dense = archcalc.analyze(archcalc.load(str(SPECS / "rgb3_dense.yaml")), input_shape=input_shape)
    assert fcn.layers[-1].params == conv_params
    assert tuple(fcn.output_shape) == fcn_output
    assert dense.layers[-1].params == dense_params
    assert fcn.totals.params - fcn.layers[-1].params == 4_076
