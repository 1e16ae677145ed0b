"""Per-layer gradient similarity between two groups of examples (e.g. clean vs mislabeled).

Each group's *average gradient* is the gradient of its mean loss, so no per-example gradients are needed.
For every parameter tensor we take the cosine between the two groups' average gradients; a layer group's
cosine is the mean over its tensors (as in Maini et al.'s accounting).  Norms are of the whole layer
group's gradient, per group of examples.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import layer_groups


def mean_loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None,
                       chunk: int = 512, loss_fn=None) -> dict[str, torch.Tensor]:
    """Gradient of the mean loss over (x, y), per named parameter, accumulated over chunks."""
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    n_total = len(x)
    if n_total == 0:
        raise ValueError("cannot average a gradient over an empty group of examples")
    for i in range(0, n_total, chunk):
        ib = None if idx is None else idx[i:i + chunk]
        loss = loss_fn(model(x[i:i + chunk], idx=ib).float(), y[i:i + chunk]) / n_total
        gs = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), gs):
            if g is not None:
                grads[n] += g
    return grads


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return float("nan")
    return (a.flatten() @ b.flatten() / (na * nb)).item()


def group_similarity(model: nn.Module, group_a: tuple, group_b: tuple, eval_mode: bool = True) -> list[dict]:
    """Cosine similarity and norms of two groups' average gradients, per layer group of ``model``.

    ``group_a`` / ``group_b`` are ``(x, y)`` or ``(x, y, idx)``.  Returns one dict per layer group with
    ``layer``, ``cosine``, ``norm_a``, ``norm_b``, in forward order.
    """
    was = model.training
    model.train(not eval_mode)
    try:
        ga = mean_loss_gradient(model, *group_a)
        gb = mean_loss_gradient(model, *group_b)
    finally:
        model.train(was)
    rows = []
    for layer, named in layer_groups(model).items():
        cosines = [_cos(ga[n], gb[n]) for n, _ in named]
        cosines = [c for c in cosines if c == c]
        va = torch.cat([ga[n].flatten() for n, _ in named])
        vb = torch.cat([gb[n].flatten() for n, _ in named])
        rows.append({"layer": layer, "cosine": sum(cosines) / len(cosines) if cosines else float("nan"),
                     "norm_a": va.norm().item(), "norm_b": vb.norm().item()})
    return rows


class GradientSimilarityProbe:
    """Training callback: per-layer clean-vs-mislabeled gradient similarity on a fixed probe subset.

    Recorded at epoch 0 (initialisation) and after every epoch into ``self.rows``
    (epoch, layer, cosine, norm_clean, norm_noisy).  The probe runs in eval mode (BatchNorm running
    statistics, no dropout) so that it does not disturb training.
    """

    def __init__(self, probe_size: int = 512, seed: int = 0):
        self.probe_size = probe_size
        self.seed = seed
        self.rows: list[dict] = []

    def _pick(self, run):
        tr = run.data.train
        g = torch.Generator().manual_seed(self.seed)
        noisy = torch.nonzero(tr.noisy.cpu()).flatten()
        clean = torch.nonzero(~tr.noisy.cpu()).flatten()
        if len(noisy) == 0:
            raise ValueError("the gradient-similarity probe needs mislabeled examples: set noise_rate > 0")
        pick = lambda ix: ix[torch.randperm(len(ix), generator=g)[: self.probe_size]].sort().values
        dev = tr.x.device
        self.clean_pos, self.noisy_pos = pick(clean).to(dev), pick(noisy).to(dev)

    def _probe(self, run) -> None:
        tr = run.data.train
        a = (tr.x[self.clean_pos], tr.y[self.clean_pos], self.clean_pos)
        b = (tr.x[self.noisy_pos], tr.y[self.noisy_pos], self.noisy_pos)
        for r in group_similarity(run.model, a, b):
            self.rows.append({"epoch": run.epoch, "layer": r["layer"], "cosine": r["cosine"],
                              "norm_clean": r["norm_a"], "norm_noisy": r["norm_b"]})

    def on_fit_start(self, run):
        self._pick(run)
        self._probe(run)

    def on_epoch_end(self, run):
        self._probe(run)
