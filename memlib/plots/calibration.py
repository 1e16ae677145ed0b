"""Appendix "How the quick scale was chosen": one figure per claim from its calibration record (a dict read from
``calibration/<claim>.json``; nothing is trained here)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .style import figure


def record_frame(record: dict) -> pd.DataFrame:
    """One row per setting: each precondition's worst value over the calibration seeds (the lowest for an 'above'
    threshold, the highest for a 'below' one), whether all preconditions held in every seed, seconds per seed."""
    rows = pd.DataFrame(record["rows"])
    knobs = list(record["grid"])
    agg = {"seconds": ("seconds", "mean"), "all_ok": ("all_ok", "all"), "seeds": ("seed", "count")}
    for p in record["preconditions"]:
        agg[p["name"]] = (p["name"], "min" if p["direction"] == "above" else "max")
    return rows.groupby(knobs, sort=False).agg(**agg).reset_index()


def heatmap(record: dict, precondition: str = "pre0"):
    """A precondition's worst value over seeds across the two plotted knobs (``record['axes']``); cells where every
    precondition held in every seed are marked ✔ (✘: a seed failed, and the setting's later seeds were not run), the
    pick is outlined, each cell shows its seconds per seed, and settings the rule did not need say "not run".
    Knobs beyond the two axes are shown as separate panels' titles (their values are joined)."""
    import matplotlib.pyplot as plt

    frame = record_frame(record)
    x, y = record["axes"]
    others = [k for k in record["grid"] if k not in (x, y)]
    groups = list(frame.groupby(others, sort=False)) if others else [((), frame)]
    meta = next(p for p in record["preconditions"] if p["name"] == precondition)
    fig, axes = figure(1, len(groups), figsize=(6.5, 2.2 + 0.35 * frame[y].nunique()), squeeze=False)
    pick = record.get("pick") or {}
    for ax, (key, g) in zip(axes[0], groups):
        xs, ys = list(record["grid"][x]), list(record["grid"][y])
        val = np.full((len(ys), len(xs)), np.nan)
        for r in g.itertuples():
            i, j = ys.index(getattr(r, y)), xs.index(getattr(r, x))
            val[i, j] = getattr(r, precondition)
            mark = "✔" if r.all_ok else "✘"
            ax.text(j, i, f"{mark} {getattr(r, precondition):.0%}\n{r.seconds:.0f} s", ha="center", va="center",
                    fontsize=9)
            if pick and all(pick.get(k) == getattr(r, k) for k in record["grid"]):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, color="black"))
        for i, j in zip(*np.nonzero(np.isnan(val))):  # settings the rule did not need
            ax.text(j, i, "not run", ha="center", va="center", fontsize=9, color="#777777")
        ax.imshow(val, cmap="RdYlGn" if meta["direction"] == "above" else "RdYlGn_r", vmin=0, vmax=1,
                  aspect="auto")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(x)
        ax.set_ylabel(y)
        ax.grid(False)
        if others:
            vals = key if isinstance(key, tuple) else (key,)
            ax.set_title(", ".join(f"{k} = {v}" for k, v in zip(others, vals)), fontsize=10)
    fig.suptitle(f"{meta['text'][:70]}{'…' if len(meta['text']) > 70 else ''}", fontsize=10)
    return fig
