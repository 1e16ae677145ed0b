"""Every figure is drawn at most as wide as the book's column, so no run prints the clamping warning of
:func:`memlib.plots.style.figure` (claim 1 printed "figure width 6.8 in is wider than the book's column" each time)."""
import importlib
import re
from pathlib import Path

import pytest

from memlib.plots.style import COLUMN_IN

PLOTS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "memlib" / "plots").glob("*.py")
               if p.stem not in ("__init__", "style"))


@pytest.mark.parametrize("name", PLOTS)
def test_figures_fit_the_column(name):
    mod = importlib.import_module(f"memlib.plots.{name}")
    assert getattr(mod, "WIDTH", COLUMN_IN) <= COLUMN_IN
    literal = [float(w) for w in re.findall(r"figsize=\(\s*(\d+(?:\.\d+)?)", Path(mod.__file__).read_text())]
    assert all(w <= COLUMN_IN for w in literal), literal
