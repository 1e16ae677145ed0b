"""Early-phase probes after Frankle, Schwab & Morcos (2020), as callbacks of the one training loop.

Per iteration, for the first ``max_steps`` iterations: the norm of the mini-batch gradient, the L2 distance of
the weights from their initialization (absolute and relative to the initial norm), and the fraction of weights
whose sign differs from initialization.  "Weights" are the tensors with more than one dimension (convolution
kernels and linear matrices); BatchNorm scales/shifts and biases are left out.

A null with the same schedule: alongside training, :class:`EarlyPhaseProbe` can move a *random walk* that starts
at the initial weights and takes, at every iteration, a step of exactly the length the real weights just moved
(which carries the learning-rate schedule, momentum and gradient sizes) in a uniformly random direction.  The
same statistics (distance from init, sign changes) of the walk say how "front-loaded" a trajectory with these
step sizes is by chance; the real trajectory is front-loaded only if it is more so than the walk.

Rewinding: :class:`EarlyPhaseProbe` also keeps copies of the whole model state at chosen iterations ``k``, which
:mod:`memlib.pruning` rewinds a magnitude-pruned network to (the lottery-ticket procedure with rewinding).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def tracked_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The model's weight tensors (dimension > 1), by name, in definition order."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad and p.dim() > 1}


def _flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    ts = [t.detach().float().flatten() for t in tensors]
    return torch.cat(ts) if ts else torch.zeros(0)


def gradient_norm(params: dict[str, nn.Parameter]) -> float:
    """L2 norm of the gradients currently stored in ``params`` (missing gradients count as zero)."""
    sq = sum((p.grad.detach().float() ** 2).sum() for p in params.values() if p.grad is not None)
    return float(torch.as_tensor(sq).sqrt())


class EarlyPhaseProbe:
    """Training callback: early-phase statistics per iteration (rewinding captures its states with
    :class:`memlib.pruning.CaptureAt`).

    ``rows`` gets one dict per probed iteration: ``step`` (iterations done; 0 = initialization), ``epoch``
    (fractional), ``grad_norm`` (of the mini-batch loss just used; NaN at step 0), ``step_norm`` (how far the
    weights moved in that iteration), ``lr`` (the learning rate that iteration used; NaN at step 0), ``dist_init``, ``rel_dist_init``, ``sign_changed``, ``batch_loss`` and,
    with ``null_seed``, the random walk's ``null_dist_init`` and ``null_sign_changed`` (see the module
    docstring).  Iterations ``1..max_steps`` are probed every ``every`` steps (the walk steps every iteration).
    """

    def __init__(self, max_steps: int, every: int = 1, null_seed: int | None = None):
        if max_steps < 0 or every < 1:
            raise ValueError(f"EarlyPhaseProbe needs max_steps >= 0 and every >= 1, got {max_steps}, {every}")
        self.max_steps, self.every = int(max_steps), int(every)
        self.null_seed = null_seed
        self.rows: list[dict] = []

    def _record(self, run, grad_norm: float, step_norm: float, w: torch.Tensor, lr: float = float("nan")) -> None:
        d = (w - self.w0).norm().item()
        row = {"step": run.step, "epoch": run.step / run.steps_per_epoch, "grad_norm": grad_norm,
               "step_norm": step_norm, "lr": lr, "dist_init": d, "rel_dist_init": d / self.n0 if self.n0 > 0 else float("nan"),
               "sign_changed": (torch.sign(w) != self.s0).float().mean().item(), "batch_loss": run.loss}
        if self.null is not None:
            row["null_dist_init"] = (self.null - self.w0).norm().item()
            row["null_sign_changed"] = (torch.sign(self.null) != self.s0).float().mean().item()
        self.rows.append(row)

    def on_fit_start(self, run):
        self.params = tracked_parameters(run.model)
        self.w0 = _flat(self.params.values())
        self.n0, self.s0 = self.w0.norm().item(), torch.sign(self.w0)
        self.prev = self.w0
        self.lr = _lr(run)  # the learning rate of the next iteration (the scheduler has set it)
        self.null, self.gen = None, None
        if self.null_seed is not None:
            self.null = self.w0.clone()
            self.gen = torch.Generator(device=self.w0.device).manual_seed(int(self.null_seed))
        self._record(run, float("nan"), float("nan"), self.w0)

    def on_step_end(self, run):
        if run.step > self.max_steps:
            return
        w = _flat(self.params.values())
        step = (w - self.prev).norm()
        self.prev = w
        used, self.lr = self.lr, _lr(run)  # the scheduler has stepped: its lr is the next iteration's
        if self.null is not None:
            direction = torch.randn(w.numel(), generator=self.gen, device=w.device)
            self.null += step * direction / direction.norm()
        if run.step % self.every == 0:
            self._record(run, gradient_norm(self.params), step.item(), w, used)


def _lr(run) -> float:
    opt = getattr(run, "optimizer", None)  # None: a run without an optimizer (a hand-driven test)
    return float(opt.param_groups[0]["lr"]) if opt is not None else float("nan")
