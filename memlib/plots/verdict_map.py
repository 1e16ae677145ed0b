"""The verdict map of one claim (the appendix "Where each claim holds"): the verdict word of each cell as its
colour, the shown criterion's estimate and interval written in it, the quick setting outlined."""
from __future__ import annotations

import matplotlib.patches as mpatches
import pandas as pd

from ..claims import (CONTRADICTED, INCONCLUSIVE, NOT_REPRODUCED, NOT_SUPPORTED, NOT_TESTABLE, PARTLY, REPRODUCED,
                      SUPPORTED)
from ..measure import fmt
from .style import COLUMN_IN, figure

# Colour-blind-safe (Okabe-Ito based): for the claim green, against it vermilion, undecided grey, not testable white.
COLOURS = {REPRODUCED: "#009E73", SUPPORTED: "#009E73", PARTLY: "#8FD1B8", INCONCLUSIVE: "#C8C8C8",
           NOT_REPRODUCED: "#E69F00", NOT_SUPPORTED: "#E69F00", CONTRADICTED: "#D55E00", NOT_TESTABLE: "#FFFFFF"}
SHORT = {NOT_TESTABLE: "not testable"}
MAP_IN = min(COLUMN_IN, 4.2)  # inches


def short_value(value: float, unit: str) -> str:
    """A cell's number, short: '+35.7' for points, '21%' for a percent, '0.62' otherwise."""
    if value != value:  # NaN
        return "—"
    if unit == "points":
        return f"{100 * value:+.1f}"
    if unit == "percent":
        return f"{100 * value:.0f}%"
    return fmt(value, unit)


def map_figure(rows: pd.DataFrame, x: str, y: str, quick: dict, title: str):
    """One heatmap: ``x`` and ``y`` are the grid's knobs; ``quick`` the chapter's setting of them (outlined)."""
    xs, ys = sorted(rows[x].unique()), sorted(rows[y].unique())
    # Narrower than the column: on a phone (about 340 CSS px of column) it shrinks to about four fifths, and the
    # cells' text stays at about 12 px.
    fig, ax = figure(figsize=(MAP_IN, 1.0 + 1.2 * len(ys)))
    for _, r in rows.iterrows():
        i, j = xs.index(r[x]), ys.index(r[y])
        face = COLOURS.get(r["status"], "#FFFFFF")
        ax.add_patch(mpatches.Rectangle((i, j), 1, 1, facecolor=face, edgecolor="#666666", linewidth=0.8,
                                        hatch="//" if r["status"] == NOT_TESTABLE else None))
        word = SHORT.get(r["status"], r["status"])
        number = short_value(r["estimate"], r["unit"])
        if r["low"] == r["low"] and r["high"] == r["high"]:
            number += f"\n[{short_value(r['low'], r['unit'])}, {short_value(r['high'], r['unit'])}]"
        seeds = f"{int(r['seeds'])} seed{'s' * (int(r['seeds']) != 1)}"
        ax.text(i + 0.5, j + 0.5, f"{word}\n{number}\n{seeds}", ha="center", va="center", fontsize=11,
                linespacing=1.25,
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.5}
                if r["status"] == NOT_TESTABLE else None)
    if quick.get(x) in xs and quick.get(y) in ys:
        ax.add_patch(mpatches.Rectangle((xs.index(quick[x]), ys.index(quick[y])), 1, 1, fill=False,
                                        edgecolor="black", linewidth=3))
    ax.set_xlim(0, len(xs))
    ax.set_ylim(0, len(ys))
    ax.set_xticks([i + 0.5 for i in range(len(xs))], [str(v) for v in xs])
    ax.set_yticks([j + 0.5 for j in range(len(ys))], [str(v) for v in ys])
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(y.replace("_", " "))
    ax.grid(False)
    ax.set_title(title, loc="left")
    return fig
