"""Unit tests of the benchmarks' pure helpers (benchmarks/stats.py) on inputs with known answers."""

from __future__ import annotations

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks"))

import stats  # noqa: E402  pylint: disable=wrong-import-position


def test_median_odd_and_even():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([7]) == 7


def test_median_empty_raises():
    with pytest.raises(ValueError):
        stats.median([])


def test_p95_of_1_to_100_is_95():
    assert stats.p95(range(1, 101)) == 95
    assert stats.percentile(range(1, 101), 50) == 50
    assert stats.percentile(range(1, 101), 100) == 100
    assert stats.percentile(range(1, 101), 0) == 1


def test_p95_of_50_samples_is_the_48th_smallest():
    values = list(range(50, 0, -1))  # unsorted input
    assert stats.p95(values) == 48


def test_percentile_single_value_and_bad_pct():
    assert stats.percentile([4.5], 95) == 4.5
    with pytest.raises(ValueError):
        stats.percentile([1, 2], 101)


def test_spread_and_summary():
    assert stats.spread([5, 2, 9]) == (2, 9)
    s = stats.summary([5, 2, 9])
    assert s == {"median": 5, "min": 2, "max": 9, "p95": 9, "n": 3}


def test_linear_fit_exact_line():
    xs = [1, 5, 10, 20, 30]
    ys = [2.5 * x + 4 for x in xs]
    fit = stats.linear_fit(xs, ys)
    assert fit["slope"] == pytest.approx(2.5)
    assert fit["intercept"] == pytest.approx(4)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["n"] == 5


def test_linear_fit_known_noisy_data():
    # mean x 1, mean y 4/3: slope 2/2 = 1, intercept 1/3, ss_res 2/3, ss_tot 8/3, r2 = 0.75
    fit = stats.linear_fit([0, 1, 2], [0, 2, 2])
    assert fit["slope"] == pytest.approx(1.0)
    assert fit["intercept"] == pytest.approx(1 / 3)
    assert fit["r2"] == pytest.approx(0.75)


def test_linear_fit_flat_and_invalid():
    assert stats.linear_fit([1, 2, 3], [4, 4, 4]) == {"slope": 0.0, "intercept": 4.0, "r2": 1.0, "n": 3}
    with pytest.raises(ValueError):
        stats.linear_fit([1], [1])
    with pytest.raises(ValueError):
        stats.linear_fit([2, 2], [1, 3])
    with pytest.raises(ValueError):
        stats.linear_fit([1, 2], [1])


def test_ratio():
    assert stats.ratio(1, 4) == 0.25
    assert math.isnan(stats.ratio(1, 0))


def test_fmt():
    assert stats.fmt(1.23456) == "1.23"
    assert stats.fmt(1.23456, 1) == "1.2"
    assert stats.fmt(7) == "7"
    assert stats.fmt(None) == "-"
    assert stats.fmt(float("nan")) == "n/a"
    assert stats.fmt("x") == "x"
    assert stats.fmt(True) == "yes"


def test_markdown_table():
    text = stats.markdown_table(["N", "s"], [[1, 0.5], [10, 2.25]])
    assert text.splitlines() == ["| N | s |", "|---|---|", "| 1 | 0.50 |", "| 10 | 2.25 |"]
    with pytest.raises(ValueError):
        stats.markdown_table(["a", "b"], [[1]])


def test_markdown_table_escapes_pipes():
    assert stats.markdown_table(["a"], [["x|y"]]).splitlines()[-1] == "| x\\|y |"


def test_text_table_aligns_columns():
    lines = stats.text_table(["N", "seconds"], [[1, 0.5], [10, 12.25]]).splitlines()
    assert lines[0] == "N   seconds"
    assert lines[1] == "--  -------"
    assert lines[2] == "1   0.50"
    assert lines[3] == "10  12.25"


def test_range_text():
    assert stats.range_text(1, 2.5) == "1-2.50"
    assert stats.range_text(1.0, 2.5, 1) == "1.0-2.5"
