"""Spec arithmetic ($c * 6, make_divisible(...)) and block instances read by their names."""
from __future__ import annotations

import pytest

import archcalc
from archcalc.errors import Location, SpecError
from archcalc.layers import Vector
from archcalc.spec.expressions import MAX_EXPRESSION_CHARS, evaluate, make_divisible

PARAMS = {"c": 64, "d": 512, "heads": 8, "k": [3, 3], "zero": 0, "act": "relu", "ratio": 0.25}

VALUES = [
    # name, expression, value
    ("reference keeps a list", "$k", [3, 3]),
    ("reference keeps a word", "$act", "relu"),
    ("multiply", "$c * 6", 384),
    ("floor division", "$d // $heads", 64),
    ("floor division rounds down", "$c // 3", 21),
    ("modulo", "$c % 10", 4),
    ("precedence", "$c + 2 * 3", 70),
    ("parentheses", "($c + 2) * 3", 198),
    ("unary minus", "-$c + 100", 36),
    ("double sign", "- -$c", 64),
    ("max", "max($c, 100, 3)", 100),
    ("min", "min($c, 100)", 64),
    ("nested calls", "max(min($c, 32), 16) * 2", 64),
    ("decimal stays for a decimal field", "$ratio * 2", 0.5),
    ("make_divisible of a decimal", "make_divisible($c * $ratio, 8)", 16),
    ("spaces anywhere", "  $c*2 ", 128),
]


@pytest.mark.parametrize("text,value", [case[1:] for case in VALUES], ids=[case[0] for case in VALUES])
def test_expression_values(text, value):
    result = evaluate(text, PARAMS)
    assert result == value and type(result) is type(value)


# torchvision's _make_divisible (torchvision/models/_utils.py) as its printed models show it:
# MobileNetV3's squeeze-excitation widths _make_divisible(expanded // 4, 8) and EfficientNet's
# stage widths _make_divisible(channels * width_mult, 8).
MAKE_DIVISIBLE = [
    ("mobilenet_v3_small SE of 16", "make_divisible(16 // 4, 8)", 8),
    ("mobilenet_v3_large SE of 72 (10% rule)", "make_divisible(72 // 4, 8)", 24),
    ("mobilenet_v3_large SE of 120", "make_divisible(120 // 4, 8)", 32),
    ("mobilenet_v3_small SE of 240", "make_divisible(240 // 4, 8)", 64),
    ("mobilenet_v3_large SE of 672", "make_divisible(672 // 4, 8)", 168),
    ("efficientnet_b2 stem 32 x 1.1", "make_divisible(32 * 1.1, 8)", 32),
    ("efficientnet_b2 stage 40 x 1.1", "make_divisible(40 * 1.1, 8)", 48),
    ("efficientnet_b2 stage 112 x 1.1", "make_divisible(112 * 1.1, 8)", 120),
    ("efficientnet_b2 stage 192 x 1.1", "make_divisible(192 * 1.1, 8)", 208),
    ("efficientnet_b3 stem 32 x 1.2", "make_divisible(32 * 1.2, 8)", 40),
    ("efficientnet_b3 stage 16 x 1.2 (10% rule)", "make_divisible(16 * 1.2, 8)", 24),
    ("efficientnet_b3 stage 112 x 1.2", "make_divisible(112 * 1.2, 8)", 136),
    ("min_value", "make_divisible(3, 8, 16)", 16),
]


@pytest.mark.parametrize("text,value", [case[1:] for case in MAKE_DIVISIBLE], ids=[case[0] for case in MAKE_DIVISIBLE])
def test_make_divisible_as_torchvision(text, value):
    assert evaluate(text, {}) == value


def test_make_divisible_is_torchvisions_rule_where_installed():
    utils = pytest.importorskip("torchvision.models._utils")
    for value in [v / 4 for v in range(1, 2000)]:
        for divisor in (1, 3, 4, 8, 16):
            assert make_divisible(value, divisor) == utils._make_divisible(value, divisor)


WHERE = Location("net.yaml", 7, 20)
ERRORS = [
    # name, expression, message, words of the hint
    ("unknown parameter", "$cc * 2", "in '$cc * 2': unknown parameter $cc", "did you mean '$c'?"),
    ("unknown parameter alone", "$hed", "unknown parameter $hed", "did you mean '$heads'?"),
    ("division by zero", "$c // $zero", "in '$c // $zero': division by zero: $zero is 0", ""),
    ("modulo by zero", "$c % (1 - 1)", "in '$c % (1 - 1)': division by zero: (1 - 1) is 0", ""),
    ("true division", "$c / 2", "in '$c / 2': '/' divides into decimals", "'//'"),
    ("list in arithmetic", "$k * 2", "in '$k * 2': $k is [3, 3], not a number", "$name alone"),
    ("word in arithmetic", "$act + 1", "in '$act + 1': $act is 'relu', not a number", ""),
    ("unknown function", "mx($c, 2)", "in 'mx($c, 2)': unknown function mx", "did you mean 'max'?"),
    ("bare word", "$c * c", "in '$c * c': 'c' is neither a number nor a $parameter", "$name"),
    ("unclosed call", "max($c, 2", "in 'max($c, 2': expected ')', found the end", "quote an expression"),
    ("unclosed parenthesis", "($c + 2", "in '($c + 2': expected ')', found the end", "quote"),
    ("stray parenthesis", "$c + 2)", "in '$c + 2)': unexpected ')' after a complete expression", "no '('"),
    ("missing operator", "$c 2", "in '$c 2': unexpected '2' after a complete expression", "operator"),
    ("ends early", "$c *", "in '$c *': the expression ends too early", ""),
    ("stray character", "$c # 2", "in '$c # 2': unexpected '#' at character 4", "make_divisible"),
    ("dollar alone", "$ * 2", "in '$ * 2': unexpected '$' at character 1", "$filters"),
    ("make_divisible arity", "make_divisible($c)", "in 'make_divisible($c)': make_divisible takes 2 to 3 "
                                                    "arguments, got 1", "min_value"),
    ("make_divisible decimal divisor", "make_divisible($c, 2.5)",
     "in 'make_divisible($c, 2.5)': make_divisible's argument 2 must be a whole number >= 1, got 2.5", ""),
    ("too large", "$d * $d * $d * $d * $d * $d * $d * $d", "in '$d * $d * $d * $d * $d * $d * $d * $d': "
                                                           "the value is too large", "2^63-1"),
    ("too deep", "(" * 25 + "$c" + ")" * 25, "the expression nests more than 20 levels deep", ""),
    ("too long", "$c" + " + 1" * 60, f"the expression is 242 characters long; the limit is {MAX_EXPRESSION_CHARS}",
     ""),
]


@pytest.mark.parametrize("text,message,hint", [case[1:] for case in ERRORS], ids=[case[0] for case in ERRORS])
def test_expression_errors(text, message, hint):
    with pytest.raises(SpecError) as info:
        evaluate(text, PARAMS, WHERE)
    assert info.value.message.endswith(message)
    assert hint in info.value.hint
    assert info.value.location == WHERE


MOBILE_BLOCK = """\
name: widths
input: [16, 8, 8]
params: {width: 1.0, stem: "make_divisible(32 * $width, 8)"}
defaults: {conv: {kernel: 1}}
blocks:
  inverted:
    params: {c: null, expand: 6, hidden: $c * $expand, squeeze: "make_divisible($hidden // 4, 8)"}
    layers:
      - conv: {filters: $hidden, name: expand}
      - conv: {filters: $squeeze, name: squeeze}
      - conv: {filters: $c, name: project}
layers:
  - conv: {filters: $stem}
  - inverted: {c: $stem // 2, name: block1}
  - inverted: {c: 12, expand: 6}
  - dropout: {rate: $width * 0.25}
"""


def test_params_and_block_defaults_use_earlier_ones():
    result = archcalc.analyze(archcalc.loads(MOBILE_BLOCK))
    filters = {stats.name: stats.output_shape[0] for stats in result.layers}
    assert filters == {"conv1": 32, "block1.expand": 96, "block1.squeeze": 24, "block1.project": 16,
                       "inverted2.expand": 72, "inverted2.squeeze": 24, "inverted2.project": 12,
                       "dropout1": 12}
    assert result.layer("dropout1").layer.rate == 0.25
    wider = archcalc.analyze(archcalc.loads(MOBILE_BLOCK, params={"width": 1.2}))
    assert wider.layer("conv1").output_shape[0] == 40       # efficientnet_b3's stem
    assert wider.layer("block1.expand").output_shape[0] == 120


SPEC_ERRORS = [
    # name, spec, message, (line, column)
    ("decimal where a whole number is needed", "input: [4]\nparams: {w: 0.5}\nlayers:\n  - dense: $w * 5\n",
     "units: must be a whole number >= 1, got 2.5 (a decimal number) (computed from '$w * 5')", (4, 12)),
    ("a later parameter", "input: [4]\nparams: {a: $b * 2, b: 3}\nlayers:\n  - dense: $a\n",
     "in '$b * 2': unknown parameter $b", (2, 13)),
    ("no params at all", "input: [4]\nlayers:\n  - dense: {units: $n * 2}\n",
     "in '$n * 2': unknown parameter $n", (3, 20)),
    ("division by zero in a block argument",
     "input: [4]\nparams: {n: 0}\nblocks:\n  b: {params: {u: null}, layers: [dense: $u]}\nlayers:\n"
     "  - b: {u: 8 // $n}\n", "in '8 // $n': division by zero: $n is 0", (6, 12)),
    ("block default", "input: [4]\nblocks:\n  b: {params: {u: 4, v: $u // $w}, layers: [dense: $v]}\n"
                      "layers:\n  - b\n", "in '$u // $w': unknown parameter $w", (3, 25)),
]


@pytest.mark.parametrize("text,message,where", [case[1:] for case in SPEC_ERRORS], ids=[case[0] for case in SPEC_ERRORS])
def test_expression_errors_in_a_spec_are_located(text, message, where):
    with pytest.raises(SpecError) as info:
        archcalc.analyze(archcalc.loads(text, "net.yaml"))
    assert info.value.message == message
    assert (info.value.location.path, info.value.location.line, info.value.location.column) == ("net.yaml", *where)


def test_set_overrides_feed_later_parameters():
    text = "input: [4]\nparams: {c: 8, hidden: $c * 4}\nlayers:\n  - dense: $hidden\n"
    assert archcalc.analyze(archcalc.loads(text)).output_shape == Vector((32,))
    assert archcalc.analyze(archcalc.loads(text, params={"c": 3})).output_shape == Vector((12,))
    assert archcalc.analyze(archcalc.loads(text, params={"hidden": 5})).output_shape == Vector((5,))


BRANCHES = """\
input: [3, 8, 8]
blocks:
  unit:
    params: {filters: null}
    layers:
      - conv: {filters: $filters, kernel: 3, padding: 1, name: conv}
      - batchnorm: {name: bn}
      - relu
layers:
  - unit: {filters: 4, name: branch1}
  - unit: {filters: 4, name: branch2, inputs: input}
  - add: {inputs: [branch1, branch2]}
"""


def test_a_block_instance_is_read_by_its_name():
    result = archcalc.analyze(archcalc.loads(BRANCHES))
    assert result.layer("add1").node.inputs == ("branch1.relu1", "branch2.relu1")


def test_outputs_may_name_a_block_instance():
    spec = archcalc.loads(BRANCHES + "outputs: [add1, branch1]\n")
    assert spec.outputs == ("add1", "branch1.relu1")


def test_the_hint_offers_the_instance_not_a_layer_inside_it():
    with pytest.raises(SpecError) as info:
        archcalc.loads(BRANCHES.replace("[branch1, branch2]", "[branch1, branch]"))
    assert "did you mean 'branch1'?" in info.value.hint or "did you mean 'branch2'?" in info.value.hint
    assert "branch1.bn" not in info.value.hint


def test_a_layer_cannot_read_the_instance_it_is_in():
    text = BRANCHES.replace("      - relu\n", "      - relu: {inputs: branch1}\n", 1)
    with pytest.raises(SpecError) as info:
        archcalc.loads(text)
    assert info.value.message == "inputs: 'branch1' is the block instance this layer belongs to; it has no output yet"


def test_an_instance_name_is_taken():
    with pytest.raises(SpecError) as info:
        archcalc.loads(BRANCHES.replace("  - add: {inputs: [branch1, branch2]}",
                                        "  - add: {inputs: [branch1, branch2], name: branch1}"))
    assert info.value.message == "two layers are named 'branch1'"


def test_names_are_data_not_arithmetic():
    text = """\
input: [4]
params: {tag: head}
blocks:
  b: {params: {n: null}, layers: [dense: {units: 2, name: $n}]}
layers:
  - dense: {units: 3, name: "cost $x * 2"}
  - b: {n: $tag, inputs: "cost $x * 2"}
outputs: [b1]
"""
    spec = archcalc.loads(text)
    assert [node.name for node in spec.nodes] == ["cost $x * 2", "b1.head"]
    assert spec.nodes[1].inputs == ("cost $x * 2",)
    assert spec.outputs == ("b1.head",)
