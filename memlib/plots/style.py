"""The book's one figure style."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "inline")) else None

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

PALETTE = {"clean": "#1f77b4", "noisy": "#d62728", "true": "#2ca02c", "test": "#555555",
           "ours": "#1f77b4", "paper": "#ff7f0e"}


def apply_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind",
                  rc={"figure.dpi": 110, "savefig.dpi": 110, "axes.titleweight": "bold",
                      "figure.autolayout": False})


def figure(*args, **kw):
    apply_style()
    return plt.subplots(*args, constrained_layout=True, **kw)


def image_grid(images, titles, ncols: int = 8, cmap: str = "gray", size: float = 1.4, suptitle: str | None = None):
    """A grid of images ([N, C, H, W] in [0, 1]) with a caption under each; returns the figure."""
    import numpy as np

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    fig, axes = figure(nrows, ncols, figsize=(size * ncols, size * 1.25 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles):
        img = np.asarray(img)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap=cmap, vmin=0, vmax=1)
        else:
            ax.imshow(np.transpose(img, (1, 2, 0)))
        ax.set_title(t, fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
