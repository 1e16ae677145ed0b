"""The book's one figure style, made for the page.

The book's text column is 676 CSS px wide (sphinx-book-theme at a 1280 px window).  Figures are drawn at
:data:`DPI` dots per inch and a default width of :data:`COLUMN_IN` inches, so a figure's PNG is about as wide as
the column and shows at (nearly) 1:1: a font of ``s`` points is ``s * DPI / 72`` px on screen (9 pt = 13 px).
A figure wider than the column would be shrunk by the browser together with its fonts, so :func:`figure` clamps
the width to the column (stack wide multi-panel figures vertically instead: :func:`stacked`).  Legends go outside
the data: :func:`legend_outside`.
"""
from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "inline")) else None

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = {"clean": "#1f77b4", "noisy": "#d62728", "true": "#2ca02c", "test": "#555555",
           "ours": "#1f77b4", "paper": "#ff7f0e"}

COLUMN_PX = 676            # the book's text column, CSS px
DPI = 100                  # figure dots per inch (PNG px per inch); also the on-screen scale at 1:1
COLUMN_IN = 6.5            # default figure width, inches: 650 px (about 670 px with the tight bbox's padding)
MIN_FONT_PT = 9            # smallest font in a figure (13 px on screen)
PANEL_HEIGHT_IN = 2.6      # height of one panel of a stacked figure

RC = {"figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (COLUMN_IN, 3.6), "axes.titleweight": "bold",
      "figure.autolayout": False, "font.size": 11, "axes.titlesize": 11, "axes.labelsize": 10.5,
      "xtick.labelsize": MIN_FONT_PT + 0.5, "ytick.labelsize": MIN_FONT_PT + 0.5, "legend.fontsize": 10,
      "legend.title_fontsize": 10, "figure.titlesize": 12, "legend.frameon": False}


def apply_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", rc=RC)


def _clamp(figsize):
    w, h = figsize
    if w > COLUMN_IN + 1e-9:
        warnings.warn(f"figure width {w:g} in is wider than the book's column ({COLUMN_IN:g} in at {DPI} dpi): "
                      f"drawn {COLUMN_IN:g} in wide; stack wide panels vertically (memlib.plots.style.stacked)",
                      stacklevel=3)
        w = COLUMN_IN
    return (w, h)


def figure(*args, **kw):
    """``plt.subplots`` in the book's style with constrained layout; width clamped to the column (default: the
    column's width, 3.6 in high)."""
    apply_style()
    kw["figsize"] = _clamp(kw.get("figsize") or (COLUMN_IN, 3.6))
    return plt.subplots(*args, layout="constrained", **kw)


def stacked(n: int, panel_height: float = PANEL_HEIGHT_IN, **kw):
    """``n`` panels stacked vertically at the column's width (``squeeze=False``-style list of axes)."""
    fig, axes = figure(n, 1, figsize=(COLUMN_IN, panel_height * n), squeeze=False, **kw)
    return fig, list(axes[:, 0])


def legend_outside(fig_or_ax, where: str = "right", title: str | None = None, ncol: int | None = None, **kw):
    """One legend outside the data: to the ``right`` of the axes or ``below`` them (constrained layout makes room).

    Takes the handles of the given axes (or of every axes of a figure, de-duplicated by label) and removes the
    axes' own legends."""
    fig = fig_or_ax if isinstance(fig_or_ax, matplotlib.figure.Figure) else fig_or_ax.figure
    axes = fig.axes if fig_or_ax is fig else [fig_or_ax]
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not handles:
        return None
    if where == "right":
        return fig.legend(handles, labels, loc="outside right center", title=title, ncol=ncol or 1, **kw)
    if where == "below":
        return fig.legend(handles, labels, loc="outside lower center", title=title,
                          ncol=ncol or min(len(labels), 4), **kw)
    raise ValueError(f"where must be 'right' or 'below', got {where!r}")


def image_grid(images, titles, ncols: int = 8, cmap: str = "gray", size: float | None = None,
               suptitle: str | None = None):
    """A grid of images ([N, C, H, W]: floats in [0, 1] or uint8 in 0-255, as the store keeps them) with a caption
    under each, at the column's width; returns the figure."""
    import numpy as np

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    size = min(size or COLUMN_IN / ncols, COLUMN_IN / ncols)
    fig, axes = figure(nrows, ncols, figsize=(size * ncols, size * 1.3 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        img = np.asarray(img)
        if img.dtype == np.uint8:
            img = img / 255
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap=cmap, vmin=0, vmax=1)
        else:
            ax.imshow(np.transpose(img, (1, 2, 0)))
        ax.set_title(t, fontsize=MIN_FONT_PT)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
