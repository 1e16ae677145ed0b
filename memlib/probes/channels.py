"""Per-channel weight statistics at example-tied dropout sites (chapter 5).

For every example-tied dropout site, the weights of the conv / linear layer that precedes it (:func:`etd_sites`),
split into its generalization and memorization channels (the layer's output channels / units):

* :func:`channel_stats`: each channel's size ``|w|`` and L2 norm, and how far it moved from initialisation
  ``|w - w0|``;
* :func:`pruned_share`: of the weights a pruning step removed (two masks of :mod:`memlib.pruning`), the share that
  fell in memorization channels, against the share expected by chance.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from ..dropout import ExampleTiedDropout

Masks = dict[str, torch.Tensor]  # {parameter name: bool tensor}, True = kept (memlib.pruning's masks)


def etd_sites(model: nn.Module) -> list[tuple[int, str, nn.Module, ExampleTiedDropout]]:
    """``(site, layer name, layer, dropout)`` for each example-tied dropout module and the conv / linear
    layer registered just before it (the layer whose output channels it masks)."""
    out, last = [], None
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            last = (name, mod)
        elif isinstance(mod, ExampleTiedDropout):
            if last is None or last[1].weight.shape[0] != mod.channels:
                raise ValueError(f"cannot find the layer feeding example-tied dropout {name!r}")
            out.append((len(out), last[0], last[1], mod))
    return out


GENERALIZATION, MEMORIZATION = "generalization", "memorization"


def channel_stats(model: nn.Module, init: dict[str, torch.Tensor] | None = None) -> pd.DataFrame:
    """Per output channel of each layer before an example-tied dropout site: group (generalization /
    memorization), mean |w| and L2 norm of its incoming weights, and with ``init`` (the weights at iteration 0)
    ``moved``: the mean |w - w0| of its incoming weights, how far the channel moved from its initialisation."""
    rows = []
    for site, lname, layer, etd in etd_sites(model):
        w = layer.weight.detach().float().flatten(1).cpu()
        mean_abs, l2 = w.abs().mean(1), w.norm(dim=1)
        moved = None
        if init is not None:
            w0 = init[f"{lname}.weight"].detach().float().flatten(1).cpu()
            moved = (w - w0).abs().mean(1)
        for c in range(w.shape[0]):
            row = {"site": site, "layer": lname, "channel": c,
                   "group": GENERALIZATION if c < etd.n_gen else MEMORIZATION,
                   "mean_abs": mean_abs[c].item(), "l2": l2[c].item()}
            if moved is not None:
                row["moved"] = moved[c].item()
            rows.append(row)
    return pd.DataFrame(rows)


def pruned_share(model: nn.Module, before: Masks, after: Masks) -> pd.DataFrame:
    """Per example-tied site layer: of the weights removed between ``before`` and ``after``, how many fall in
    memorization channels, against the share expected by chance (the memorization channels' share of the
    weights that were still there)."""
    rows = []
    for site, lname, layer, etd in etd_sites(model):
        b, a = before[f"{lname}.weight"].flatten(1).cpu(), after[f"{lname}.weight"].flatten(1).cpu()
        removed = b & ~a
        is_mem = torch.zeros(b.shape[0], dtype=torch.bool)
        is_mem[etd.n_gen:] = True
        rem_mem, rem_all = int(removed[is_mem].sum()), int(removed.sum())
        avail_mem, avail_all = int(b[is_mem].sum()), int(b.sum())
        rows.append({"site": site, "layer": lname, "available": avail_all, "available_mem": avail_mem,
                     "removed": rem_all, "removed_mem": rem_mem,
                     "share_mem": rem_mem / rem_all if rem_all else float("nan"),
                     "chance_mem": avail_mem / avail_all if avail_all else float("nan"),
                     "pruned_frac_mem": rem_mem / avail_mem if avail_mem else float("nan"),
                     "pruned_frac_gen": (rem_all - rem_mem) / (avail_all - avail_mem)
                     if avail_all > avail_mem else float("nan")})
    return pd.DataFrame(rows)
