"""Measured values that carry their own format, and intervals over seeds or examples.

A number on a page is declared with what it measures (``Measured(0.783, "percent")``), never formatted by
guessing from its value.  Units:

=========== ============================================== ===================
unit        value stored as                                 shown as
=========== ============================================== ===================
percent     a fraction (0.783)                              78.3%
points      a difference of fractions (0.037)               +3.7 points
cosine      a cosine similarity                             −0.19
ratio       a dimensionless ratio                           0.926
count       an integer                                      4,000
epoch       an epoch number                                 12
iteration   an iteration number                             1,200
seconds     seconds                                         87 s
number      anything else                                   3 significant digits
=========== ============================================== ===================

``None`` (e.g. "the window never started") is shown as "never"; NaN as "—".
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

UNITS = ("percent", "points", "cosine", "ratio", "count", "epoch", "iteration", "seconds", "number")
MISSING = "—"
NEVER = "never"


def fmt(value, unit: str = "number", signed: bool | None = None) -> str:
    """``value`` formatted as a ``unit`` (see the module docstring)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; choose one of: {', '.join(UNITS)}")
    if value is None:
        return NEVER
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        if math.isnan(float(value)):
            return MISSING
        return "∞" if value > 0 else "−∞"
    v = float(value)
    if unit == "percent":
        s = f"{100 * v:.1f}%"
    elif unit == "points":
        s = f"{100 * v:+.1f} points"
        if s.startswith(("+0.0 ", "-0.0 ")):
            s = "0.0 points"
    elif unit == "cosine":
        s = f"{v:.2f}"
        if s == "-0.00":
            s = "0.00"
    elif unit == "ratio":
        s = f"{v:.3f}"
    elif unit in ("count", "epoch", "iteration"):
        s = f"{int(round(v)):,}"
    elif unit == "seconds":
        s = f"{v:,.0f} s" if abs(v) >= 10 else f"{v:.1f} s"
    else:
        s = f"{v:,.3g}"
    if signed and unit != "points" and v > 0:
        s = "+" + s
    return s.replace("-", "−") if s.startswith("-") else s



def show(v) -> str:
    """Text of a value on a page: :class:`Measured` values and intervals format themselves; other values must
    already be text or integers (no format is guessed from a number's range: a bare float is refused)."""
    if isinstance(v, (Measured, Interval)):
        return str(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        raise TypeError(f"a bare float ({v!r}) has no declared format: wrap it in memlib.measure.Measured(value, "
                        f"unit)")
    if v is None:
        return MISSING
    return str(v)

@dataclass(frozen=True)
class Measured:
    """A measured value with its unit; ``str()`` formats it."""

    value: float | int | None
    unit: str = "number"

    def __post_init__(self):
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; choose one of: {', '.join(UNITS)}")

    def __str__(self) -> str:
        return fmt(self.value, self.unit)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


# ---------------------------------------------------------------------------------------------------------
# Intervals
# ---------------------------------------------------------------------------------------------------------

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided confidence interval ``[low, high]`` at ``level``.

    ``n`` is the number of independent values behind it (seeds, or examples) and ``method`` says how it was
    made.  With a single value the interval is unbounded: one seed decides nothing.
    """

    estimate: float
    low: float
    high: float
    n: int
    method: str
    unit: str = "number"
    level: float = LEVEL
    kind: str = ""  # how it was made: "t", "bootstrap", "wilson" or "fisher" (:meth:`at` re-levels by it)

    def at(self, level: float) -> "Interval":
        """The same estimate's interval at another ``level`` (e.g. 1 − 5%/m for one of m tests): exact for t,
        Wilson and Fisher-z intervals, a normal approximation of each side for a bootstrap.  An unbounded or
        empty interval stays so."""
        import dataclasses

        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level}")
        lo, hi, est = self.low, self.high, self.estimate
        if level == self.level or self.n < 2 or not all(map(math.isfinite, (lo, hi, est))):
            return dataclasses.replace(self, level=level)
        from scipy import stats

        if self.kind == "wilson":
            return dataclasses.replace(wilson_interval(int(round(est * self.n)), self.n, level), method=self.method)
        if self.kind == "t":  # the half-width scales with the t quantile; a clipped side is read from the other
            half = max(est - lo, hi - est) * _t_quantile(level, self.n - 1) / _t_quantile(self.level, self.n - 1)
            lo, hi = est - half, est + half
            if self.unit == "percent":
                lo, hi = max(0.0, lo), min(1.0, hi)
            return dataclasses.replace(self, low=lo, high=hi, level=level)
        r = float(stats.norm.ppf(0.5 + level / 2) / stats.norm.ppf(0.5 + self.level / 2))
        if self.kind == "fisher":
            clamp = lambda v: math.atanh(min(max(v, -0.999999), 0.999999))  # noqa: E731
            z, zl, zh = clamp(est), clamp(lo), clamp(hi)
            return dataclasses.replace(self, low=math.tanh(z - r * (z - zl)), high=math.tanh(z + r * (zh - z)),
                                       level=level)
        return dataclasses.replace(self, low=est - r * (est - lo), high=est + r * (hi - est), level=level)

    def text(self) -> str:
        if self.n == 0 or math.isnan(self.estimate):
            return f"{MISSING} (no values)"
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return f"{fmt(self.estimate, self.unit)} (one value: no interval)"
        return (f"{fmt(self.estimate, self.unit)} [{fmt(self.low, self.unit)}, {fmt(self.high, self.unit)}] "
                f"({self.level:.0%} {self.method})")

    def __str__(self) -> str:
        return self.text()


@functools.lru_cache(maxsize=4096)
def _t_quantile(level: float, df: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def t_interval(values: Iterable[float], unit: str = "number", level: float = LEVEL, what: str = "seeds") -> Interval:
    """Student-t interval of the mean of ``values`` (e.g. one value per seed)."""
    v = np.asarray([float(x) for x in values], dtype=float)
    v = v[~np.isnan(v)]
    n = len(v)
    if unit == "percent" and ((v < 0) | (v > 1)).any():
        raise ValueError(f"unit 'percent' is for shares in [0, 1], got {v.min():.3g} to {v.max():.3g}: a difference "
                         f"of shares is unit 'points'")
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, f"t-interval over {what}", unit, level)
    m = float(v.mean())
    if n == 1:
        return Interval(m, -math.inf, math.inf, 1, f"t-interval over 1 {what.rstrip('s')}", unit, level)
    half = _t_quantile(level, n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    low, high = m - half, m + half
    if unit == "percent":  # a mean share cannot leave [0, 100%]: the interval is clipped to it
        low, high = max(0.0, low), min(1.0, high)
    return Interval(m, low, high, n, f"t-interval over {n} {what}", unit, level, "t")


def bootstrap_interval(values: Sequence, statistic=np.mean, unit: str = "number", level: float = LEVEL,
                       n_boot: int = 2000, seed: int = 0, what: str = "examples") -> Interval:
    """Percentile bootstrap interval of ``statistic`` over resampled ``values`` (rows are resampled)."""
    v = np.asarray(values)
    n = len(v)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, f"bootstrap over {what}", unit, level)
    est = float(statistic(v))
    if n == 1:
        return Interval(est, -math.inf, math.inf, 1, f"bootstrap over 1 {what.rstrip('s')}", unit, level)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(v[rng.integers(0, n, n)]) for _ in range(n_boot)], dtype=float)
    lo, hi = np.nanquantile(stats, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(est, float(lo), float(hi), n, f"bootstrap over {n} {what}", unit, level, "bootstrap")


def bootstrap_two_sample(a: Sequence, b: Sequence, statistic, unit: str = "number", level: float = LEVEL,
                         n_boot: int = 2000, seed: int = 0, what: str = "examples") -> Interval:
    """Bootstrap interval of ``statistic(a, b)``, resampling each group separately (e.g. an AUC)."""
    a, b = np.asarray(a), np.asarray(b)
    n = min(len(a), len(b))
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, f"bootstrap over {what}", unit, level)
    est = float(statistic(a, b))
    if n == 1:
        return Interval(est, -math.inf, math.inf, 1, f"bootstrap over {what}", unit, level)
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                      for _ in range(n_boot)], dtype=float)
    lo, hi = np.nanquantile(stats, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(est, float(lo), float(hi), len(a) + len(b), f"bootstrap over {len(a) + len(b)} {what}", unit,
                    level, "bootstrap")


def wilson_interval(k: int, n: int, level: float = LEVEL, what: str = "examples") -> Interval:
    """Wilson score interval of a proportion ``k / n`` (unit: percent)."""
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0, f"Wilson interval over {what}", "percent", level)
    from scipy import stats

    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n, f"Wilson interval over {n} {what}",
                    "percent", level, "wilson")


def auc(a: Sequence[float], b: Sequence[float]) -> float:
    """Probability that a value drawn from ``a`` exceeds one drawn from ``b`` (ties count half): the
    Mann–Whitney AUC.  0.5 means no separation."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0 or np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    n, m = len(a), len(b)
    # Twice the Mann-Whitney U of a, in integers: per value of a, how many of b lie below it plus how many lie at or
    # below it (a tie counts half).  The shorter sample is looked up in the sorted longer one; counted from b's side,
    # 2U(a) = 2nm - 2U(b), exactly.
    if n <= m:
        b = np.sort(b)
        u2 = int(np.searchsorted(b, a, side="left").sum() + np.searchsorted(b, a, side="right").sum())
    else:
        a = np.sort(a)
        u2 = 2 * n * m - int(np.searchsorted(a, b, side="left").sum() + np.searchsorted(a, b, side="right").sum())
    return float(u2 / 2 / (n * m))


def correlation_interval(r: float, n: int, level: float = LEVEL, what: str = "examples") -> Interval:
    """Fisher-z interval of a (Spearman or Pearson) correlation ``r`` over ``n`` pairs (unit: ratio); for Spearman
    the standard error is widened by sqrt(1.06) (Fieller, Hartley and Pearson 1957)."""
    if n < 4 or math.isnan(r):
        return Interval(float(r), -math.inf, math.inf, n, f"Fisher-z interval over {n} {what}", "ratio", level)
    from scipy import stats

    z = math.atanh(min(max(r, -0.999999), 0.999999))
    half = float(stats.norm.ppf(0.5 + level / 2)) * math.sqrt(1.06 / (n - 3))
    return Interval(float(r), math.tanh(z - half), math.tanh(z + half), n, f"Fisher-z interval over {n:,} {what}",
                    "ratio", level, "fisher")


def setting_text(v, name: str = "") -> str:
    """A configuration value as a reader sees it: ``n_train``/``n_test`` 0 as "all", booleans as yes/no, floats
    short, large integers with separators, ``None`` as "—"."""
    if name in ("n_train", "n_test") and v == 0:
        return "all"
    if v is None:
        return MISSING
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v)
