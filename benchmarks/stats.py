"""Pure helpers for the benchmarks: order statistics, a least-squares line, markdown and text tables.

No I/O and no third-party imports, so tests/unit/test_benchmark_stats.py can check them on known inputs.
"""

from __future__ import annotations

import math


def median(values) -> float:
    """Median of a non-empty sequence (mean of the two middle values for an even count)."""
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("median of an empty sequence")
    mid = len(data) // 2
    if len(data) % 2:
        return data[mid]
    return (data[mid - 1] + data[mid]) / 2.0


def percentile(values, pct: float) -> float:
    """Nearest-rank percentile: the smallest value with at least pct % of the data at or below it.

    percentile(range(1, 101), 95) == 95; percentile([x], p) == x for any p.
    """
    data = sorted(float(v) for v in values)
    if not data:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= pct <= 100:
        raise ValueError("pct must be within [0, 100], got %r" % pct)
    rank = max(1, int(math.ceil(pct / 100.0 * len(data))))
    return data[min(rank, len(data)) - 1]


def p95(values) -> float:
    return percentile(values, 95)


def spread(values) -> tuple:
    """(min, max) of a non-empty sequence."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("spread of an empty sequence")
    return min(data), max(data)


def summary(values) -> dict:
    """median, min, max, p95 and n of a sample."""
    lo, hi = spread(values)
    return {"median": median(values), "min": lo, "max": hi, "p95": p95(values), "n": len(list(values))}


def linear_fit(xs, ys) -> dict:
    """Ordinary least squares y = slope * x + intercept; r2 is the coefficient of determination.

    Needs at least two distinct x. When every y is the same, the line explains everything: r2 = 1.
    """
    xs = [float(x) for x in xs]
    ys = [float(y) for y in ys]
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length (%d != %d)" % (len(xs), len(ys)))
    n = len(xs)
    if n < 2:
        raise ValueError("a line needs at least two points")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ValueError("a line needs at least two distinct x values")
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys))
    ss_tot = sum((y - my) ** 2 for y in ys)
    r2 = 1.0 if ss_tot == 0 else 1.0 - ss_res / ss_tot
    return {"slope": slope, "intercept": intercept, "r2": r2, "n": n}


def ratio(num: float, den: float) -> float:
    """num / den, or nan when den is 0."""
    return float(num) / float(den) if den else float("nan")


def fmt(value, digits: int = 2) -> str:
    """A number for a table: fixed digits, '-' for None, 'n/a' for nan; strings pass through."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "n/a"
    return "%.*f" % (digits, value)


def _cells(rows, digits):
    return [[fmt(c, digits) for c in row] for row in rows]


def markdown_table(header, rows, digits: int = 2) -> str:
    """A GitHub markdown table; numbers formatted with fmt()."""
    head = [str(h) for h in header]
    body = _cells(rows, digits)
    for row in body:
        if len(row) != len(head):
            raise ValueError("row %r has %d cells, header has %d" % (row, len(row), len(head)))
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _h in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines)


def text_table(header, rows, digits: int = 2) -> str:
    """A fixed-width table for stdout."""
    head = [str(h) for h in header]
    body = _cells(rows, digits)
    widths = [max([len(head[i])] + [len(r[i]) for r in body]) for i in range(len(head))]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(out)


def range_text(lo: float, hi: float, digits: int = 2) -> str:
    """'lo-hi' for the spread column."""
    return "%s-%s" % (fmt(lo, digits), fmt(hi, digits))
