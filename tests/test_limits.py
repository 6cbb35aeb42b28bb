"""Absurd but well-formed sizes: exact answers or ordinary errors, never an overflow or a hang.

Every count is exact integer arithmetic, so a size of 10^9 or 10^18 must cost what a size of 3
costs: nothing may loop over a size (windows, layers of a stack, candidate fixes).
"""
import time
from math import gcd

import pytest
from click.testing import CliRunner
from conftest import spec_text

import archcalc
from archcalc.cli import main
from archcalc.layers.pool import adaptive_extent, adaptive_windows


def test_adaptive_extent_is_the_windows_closed_form():
    """PyTorch's windows [floor(i*D/out), ceil((i+1)*D/out)), counted one by one, for every small case."""
    for size in range(1, 70):
        for out in range(1, 70):
            lengths = [end - start for start, end in adaptive_windows(size, out)]
            assert adaptive_extent(size, out) == (sum(lengths), max(lengths)), (size, out)
    assert adaptive_extent(10**18, 10**9 + 7)[0] == 10**18 + 10**9 + 7 - gcd(10**18, 10**9 + 7)


GIANTS = [  # (input, layer, exact parameter count, or None when the spec must be refused)
    ([10**6], "dense: 1000000", 10**12 + 10**6),
    ({"steps": 5, "features": 3}, "rnn: {hidden: 4, layers: 1000000000}",
     (4 * 3 + 4 * 4 + 2 * 4) + (10**9 - 1) * (4 * 4 + 4 * 4 + 2 * 4)),  # layer 1, then 10^9 - 1 on 4 inputs
    ([3, 10**9, 8], "adaptiveavgpool: {output: [100000000, 4]}", 0),
    ([1, 10**18, 10**18], "conv: {filters: 1, kernel: 3, stride: 2, rounding: floor}", 3 * 3 + 1),
    ([1, 10**18, 10**18], "conv: {filters: 1, kernel: 3, stride: 2}", None),            # not whole: refused
    ([3, 1000, 1000], "conv: {filters: 1, kernel: 1000000000}", None),                   # does not fit
    ([3, 10**9, 10**9], "conv: {filters: 1, kernel: 999999999, stride: 999999998}", None),
    ([3, 10**9, 10**9], "maxpool: {kernel: 1000000000, stride: 999999999}", 0),
]


@pytest.mark.parametrize("shape,layer,params", GIANTS, ids=[g[1] for g in GIANTS])
def test_giant_sizes_are_exact_and_instant(tmp_path, shape, layer, params):
    path = tmp_path / "giant.yaml"
    path.write_text(spec_text(shape, layer))
    start = time.perf_counter()
    spec = archcalc.load(str(path))
    if params is None:
        with pytest.raises(archcalc.SpecError):
            archcalc.analyze(spec)
    else:
        assert archcalc.analyze(spec).totals.params == params
    for command in (["inspect"], ["inspect", "-f", "json"], ["explain"]):  # every report of it too
        result = CliRunner().invoke(main, [*command, str(path)])
        assert result.exit_code == (2 if params is None else 0), result.output
    assert time.perf_counter() - start < 10  # milliseconds in fact; generous for a busy machine
