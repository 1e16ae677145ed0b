"""Batched minimal-perturbation attack: the L2 distance from each input to the model's decision boundary.

:func:`min_l2_distance` runs DeepFool (Moosavi-Dezfooli et al., 2016) on a whole batch at once, then refines
the distance by a bisection along the perturbation it found:

1. DeepFool linearises the classifier at the current point and jumps to the nearest linearised boundary between
   the predicted class ``i`` and any other class ``j`` (distance ``|f_j - f_i| / ||grad f_j - grad f_i||``);
   it repeats from the new point until the prediction changes.  For a linear (affine) classifier the first step
   lands exactly on the nearest boundary, so the distance is exact.
2. The perturbation ``r`` it found is then shortened: a bisection on ``t`` in ``[0, 1 + overshoot]`` finds the
   smallest ``t`` with ``argmax f(x + t r) != i``; the distance is ``t * ||r||``.  This removes the overshoot
   and any overshooting of the linearisation, and gives an upper bound on the true minimal distance that is
   tight for piecewise-linear (ReLU) networks in practice.

Why L2: it is the norm of the minimal-perturbation attacks (DeepFool, Carlini-Wagner L2) used to measure
distance to the boundary, it has a closed form for linear models (which the tests check), and unlike L-inf
it is not dominated by a single pixel.  Distances are measured in the model's input space (normalised
pixels) without a [0, 1] box constraint.

Everything is vectorised over the batch: each step costs one forward pass and one backward pass per class on
the examples that have not flipped yet; there is no Python loop over examples.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttackResult:
    distance: torch.Tensor  # [N] L2 norm of the smallest perturbation found that changes the prediction
    pred: torch.Tensor  # [N] the model's prediction at the clean input
    converged: torch.Tensor  # [N] bool: the perturbation does change the prediction
    steps: torch.Tensor  # [N] DeepFool steps used


def _class_grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [b, K] and their input gradients [b, K, D] (examples are independent in eval mode).

    One batched backward pass (``is_grads_batched``) computes all K gradients; models with an operation that
    cannot be batched that way fall back to K ordinary backward passes.
    """
    x = x.detach().requires_grad_(True)
    logits = model(x).float()
    k = logits.shape[1]
    try:
        eye = torch.eye(k, device=x.device, dtype=logits.dtype)[:, None, :].expand(k, len(x), k)
        (g,) = torch.autograd.grad(logits, x, grad_outputs=eye, is_grads_batched=True, retain_graph=True)
        return logits.detach(), g.flatten(2).transpose(0, 1)
    except RuntimeError:
        grads = []
        for c in range(k):
            (g,) = torch.autograd.grad(logits[:, c].sum(), x, retain_graph=c < k - 1)
            grads.append(g.flatten(1))
        return logits.detach(), torch.stack(grads, 1)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).float().argmax(1)


def _deepfool_batch(model, x0, steps: int, overshoot: float, search_steps: int):
    b = len(x0)
    dev = x0.device
    flat = x0.flatten(1)
    pred0 = _predict(model, x0)
    r = torch.zeros_like(flat)
    active = torch.ones(b, dtype=torch.bool, device=dev)
    used = torch.zeros(b, dtype=torch.long, device=dev)
    for _ in range(steps):
        idx = torch.nonzero(active).flatten()
        if len(idx) == 0:
            break
        xc = (flat[idx] + (1 + overshoot) * r[idx]).view(-1, *x0.shape[1:])
        logits, grads = _class_grads(model, xc)
        i = pred0[idx]
        flipped = logits.argmax(1) != i
        still = ~flipped
        active[idx[flipped]] = False
        if not still.any():
            break
        idx, logits, grads, i = idx[still], logits[still], grads[still], i[still]
        n = len(idx)
        rows = torch.arange(n, device=dev)
        f = logits - logits[rows, i][:, None]  # [n, K], <= 0 for j != i while not flipped
        w = grads - grads[rows, i][:, None, :]  # [n, K, D]
        wn = w.norm(dim=2).clamp_min(1e-12)
        d = f.abs() / wn
        d[rows, i] = float("inf")
        j = d.argmin(1)
        step = (f[rows, j].abs() + 1e-6) / wn[rows, j] ** 2
        r[idx] += step[:, None] * w[rows, j]
        used[idx] += 1
    # Bisection on the scale t of r: hi always flips (checked), lo never does.
    hi = torch.full((b,), 1 + overshoot, device=dev)
    converged = _predict(model, (flat + hi[:, None] * r).view_as(x0)) != pred0
    lo = torch.zeros(b, device=dev)
    for _ in range(search_steps):
        mid = (lo + hi) / 2
        flips = _predict(model, (flat + mid[:, None] * r).view_as(x0)) != pred0
        hi = torch.where(flips & converged, mid, hi)
        lo = torch.where(flips & converged, lo, mid)
    dist = hi * r.norm(dim=1)
    return dist, pred0, converged, used


def min_l2_distance(model: nn.Module, x: torch.Tensor, steps: int = 50, overshoot: float = 0.02,
                    search_steps: int = 20, batch_size: int = 1024) -> AttackResult:
    """Smallest L2 perturbation (found by DeepFool + bisection) that changes ``model``'s prediction on each x.

    ``model`` is put in eval mode (restored afterwards); ``x`` is any batch of inputs on the model's device.
    Examples whose prediction could not be changed within ``steps`` steps get ``converged=False`` and the norm
    of the last perturbation tried as their distance.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if overshoot < 0:
        raise ValueError(f"overshoot must be >= 0, got {overshoot}")
    was = model.training
    model.eval()
    out = []
    try:
        for s in range(0, len(x), batch_size):
            out.append(_deepfool_batch(model, x[s:s + batch_size], steps, overshoot, search_steps))
    finally:
        model.train(was)
    if not out:
        e = torch.empty(0, device=x.device)
        return AttackResult(e, e.long(), e.bool(), e.long())
    return AttackResult(*(torch.cat(t) for t in zip(*out)))


def linear_min_distance(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Closed form for an affine classifier ``W x + b``: min over j != i of ``(f_i - f_j) / ||w_i - w_j||``."""
    flat = x.flatten(1)
    logits = flat @ weight.T + bias
    i = logits.argmax(1)
    rows = torch.arange(len(flat))
    dw = weight[i][:, None, :] - weight[None, :, :]  # [n, K, D]
    df = logits[rows, i][:, None] - logits  # [n, K]
    d = df / dw.norm(dim=2).clamp_min(1e-12)
    d[rows, i] = float("inf")
    return d.min(1).values
