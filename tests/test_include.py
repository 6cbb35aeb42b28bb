"""include: block libraries read from other files, inside the spec's own folder only, each
refusal located (file:line:column of the 'include:' that asked for it) with exit code 2."""
import os
import textwrap

import pytest
from click.testing import CliRunner

import archcalc
from archcalc.cli import main
from archcalc.errors import SpecError

MLP = """\
description: a two-layer perceptron
blocks:
  mlp:
    params: {hidden: null, out: null}
    layers:
      - dense: $hidden
      - relu
      - dense: $out
"""


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def spec(folder, include, extra="", name="net.yaml"):
    return write(folder, name, f"include: {include}\ninput: [10]\nlayers:\n  - mlp: {{hidden: 20, out: 5}}\n{extra}")


def refusal(path):
    with pytest.raises(SpecError) as caught:
        archcalc.load(str(path))
    return caught.value


def test_an_included_block_counts_as_the_same_block_written_inline(tmp_path):
    write(tmp_path, "blocks/mlp.yaml", MLP)
    included = archcalc.analyze(archcalc.load(str(spec(tmp_path, "blocks/mlp.yaml"))))
    # dense 10 -> 20 -> 5: (10*20 + 20) + (20*5 + 5) parameters, 10*20 + 20*5 MACs
    assert (included.totals.params, included.totals.macs) == (325, 300)
    inline = archcalc.analyze(archcalc.loads(MLP.split("\n", 1)[1] + "input: [10]\nlayers:\n"
                                                 "  - mlp: {hidden: 20, out: 5}\n"))
    assert [(row.name, row.output_shape, row.params) for row in included.layers] == \
        [(row.name, row.output_shape, row.params) for row in inline.layers]


def test_paths_are_relative_to_the_including_file_and_a_shared_library_is_read_once(tmp_path):
    write(tmp_path, "blocks/mlp.yaml", MLP)
    write(tmp_path, "blocks/a.yaml", "include: mlp.yaml\nblocks:\n  a: {layers: [relu]}\n")
    write(tmp_path, "blocks/b.yaml", "include: [mlp.yaml]\nblocks:\n  b: {layers: [tanh]}\n")
    path = spec(tmp_path, "[blocks/a.yaml, blocks/b.yaml]", "  - a\n  - b\n")
    assert [node.name for node in archcalc.load(str(path)).nodes] == \
        ["mlp1.fc1", "mlp1.relu1", "mlp1.fc2", "a1.relu1", "b1.tanh1"]


def test_a_path_may_climb_within_the_spec_folder(tmp_path):
    write(tmp_path, "blocks/mlp.yaml", MLP)
    assert archcalc.load(str(spec(tmp_path, "blocks/../blocks/mlp.yaml"))).nodes


@pytest.mark.parametrize("include,message", [
    ("../outside.yaml", "include: ../outside.yaml leaves the spec's folder"),
    ("blocks/../../outside.yaml", "leaves the spec's folder"),
    ("/etc/hosts", "include: /etc/hosts is an absolute path"),
    ("~/lib.yaml", "is an absolute path"),
    ("blocks/none.yaml", "include: no such file: "),
    ("blocks", "include: {folder}/blocks is not a file"),
    ("[]", "include takes a file path or a list of them, got []"),
    ("''", "include takes a file path or a list of them, got ''"),
    ("[blocks/mlp.yaml, 3]", "include takes a file path or a list of them, got 3"),
    ("{a: 1}", "include takes a file path or a list of them"),
])
def test_includes_outside_the_tree_or_absent_are_refused_where_they_are_written(tmp_path, include, message):
    folder = tmp_path / "spec"
    write(folder, "blocks/mlp.yaml", MLP)
    write(tmp_path, "outside.yaml", MLP)
    error = refusal(spec(folder, include))
    assert message.format(folder=folder) in error.message
    assert (error.location.path, error.location.line) == (str(folder / "net.yaml"), 1)


def test_a_symbolic_link_out_of_the_tree_is_refused_and_one_inside_it_followed(tmp_path):
    folder = tmp_path / "spec"
    write(folder, "blocks/mlp.yaml", MLP)
    write(tmp_path, "outside.yaml", MLP)
    os.symlink(tmp_path / "outside.yaml", folder / "blocks" / "escape.yaml")
    os.symlink(folder / "blocks", folder / "library")  # a link that stays inside
    error = refusal(spec(folder, "blocks/escape.yaml"))
    assert f"is a symbolic link to {tmp_path / 'outside.yaml'}, outside the spec's folder" in error.message
    assert archcalc.load(str(spec(folder, "library/mlp.yaml"))).nodes


def test_a_cycle_is_refused_with_its_path(tmp_path):
    write(tmp_path, "blocks/a.yaml", "include: b.yaml\nblocks:\n  a: {layers: [relu]}\n")
    write(tmp_path, "blocks/b.yaml", "blocks:\n  b: {layers: [relu]}\ninclude: [a.yaml]\n")
    error = refusal(spec(tmp_path, "blocks/a.yaml"))
    assert error.message == "include: a.yaml forms a cycle (blocks/a.yaml -> blocks/b.yaml -> blocks/a.yaml)"
    assert (error.location.path, error.location.line, error.location.column) == \
        (str(tmp_path / "blocks/b.yaml"), 3, 11)
    assert error.notes == [f"(included from {tmp_path / 'blocks/a.yaml'}:1:10)",
                           f"(included from {tmp_path / 'net.yaml'}:1:10)"]
    write(tmp_path, "self.yaml", "include: self.yaml\ninput: [3]\nlayers: [relu]\n")
    assert "forms a cycle (self.yaml -> self.yaml)" in refusal(tmp_path / "self.yaml").message


def test_a_block_defined_by_the_spec_and_a_library_is_refused_naming_both(tmp_path):
    write(tmp_path, "blocks/mlp.yaml", MLP)
    error = refusal(spec(tmp_path, "blocks/mlp.yaml", "blocks:\n  mlp: {layers: [relu]}\n"))
    assert error.message == (f"block mlp is defined both here and in {tmp_path / 'blocks/mlp.yaml'} (line 3), "
                             f"which this spec includes")
    assert (error.location.line, error.location.column) == (6, 3)
    write(tmp_path, "blocks/other.yaml", "blocks:\n  mlp: {layers: [tanh]}\n")
    error = refusal(spec(tmp_path, "[blocks/mlp.yaml, blocks/other.yaml]"))
    assert error.message.startswith("block mlp is defined twice: in ")
    assert (error.location.line, error.location.column) == (1, 28)


def test_a_library_holds_blocks_only_and_is_read_by_the_bounded_loader(tmp_path):
    write(tmp_path, "blocks/spec.yaml", "input: [3]\nblocks:\n  a: {layers: [relu]}\n")
    error = refusal(spec(tmp_path, "blocks/spec.yaml"))
    assert (error.message, error.location.path, error.location.line) == \
        ("a block library holds description, include, blocks, not 'input'", str(tmp_path / "blocks/spec.yaml"), 1)
    write(tmp_path, "blocks/empty.yaml", "description: nothing\n")
    assert "holds no 'blocks:'" in refusal(spec(tmp_path, "blocks/empty.yaml")).message
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8))
    write(tmp_path, "blocks/laughs.yaml", laughs)
    error = refusal(spec(tmp_path, "blocks/laughs.yaml"))
    assert "expands to more than 2,000,000 YAML values" in error.message
    assert error.location.path == str(tmp_path / "blocks/laughs.yaml")
    assert error.notes == [f"(included from {tmp_path / 'net.yaml'}:1:10)"]


def test_an_error_inside_an_included_block_points_into_the_library(tmp_path):
    write(tmp_path, "blocks/mlp.yaml", MLP.replace("- relu", "- rleu"))
    error = refusal(spec(tmp_path, "blocks/mlp.yaml"))
    assert (error.location.path, error.location.line) == (str(tmp_path / "blocks/mlp.yaml"), 7)
    assert "did you mean 'relu'" in error.hint


def test_the_cli_refuses_with_exit_code_2_and_explains_a_library_given_as_a_spec(tmp_path):
    library = write(tmp_path, "blocks/mlp.yaml", MLP)
    result = CliRunner().invoke(main, ["inspect", str(library)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{library}:1:1: error: this file is a block library (blocks, no layers), not a network",
        "  hint: a spec takes its blocks with 'include:' and the path from the spec's folder (from the folder "
        "above: 'include: blocks/mlp.yaml'), and has its own 'input' and 'layers'"]
    result = CliRunner().invoke(main, ["inspect", str(spec(tmp_path, "../x.yaml"))])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"{tmp_path / 'net.yaml'}:1:10: error: include: ../x.yaml leaves")


@pytest.mark.parametrize("command,library", [("inspect", "mlp.yaml"), ("render", "mlp.dot"), ("export", "mlp.py")])
def test_the_output_never_replaces_an_included_library(tmp_path, command, library):
    library = write(tmp_path, f"blocks/{library}", MLP)  # a library may have any name
    result = CliRunner().invoke(main, [command, str(spec(tmp_path, f"blocks/{library.name}")), "-o", str(library)])
    assert result.exit_code == 2, result.output
    assert f"error: --output: {library} is the input" in result.output
    assert library.read_text() == MLP
    assert archcalc.load(str(tmp_path / "net.yaml")).includes == (str(library),)
