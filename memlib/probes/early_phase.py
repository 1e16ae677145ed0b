"""Early-phase probes after Frankle, Schwab & Morcos (2020), as callbacks of the one training loop.

Per iteration, for the first ``max_steps`` iterations: the norm of the mini-batch gradient, the L2 distance of
the weights from their initialization (absolute and relative to the initial norm), and the fraction of weights
whose sign differs from initialization.  "Weights" are the tensors with more than one dimension (convolution
kernels and linear matrices); BatchNorm scales/shifts and biases are left out.

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


def snapshot(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in params.items()}


def _flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    ts = [t.detach().float().flatten() for t in tensors]
    return torch.cat(ts) if ts else torch.zeros(0)


def gradient_norm(params: dict[str, nn.Parameter]) -> float:
    """L2 norm of the gradients currently stored in ``params`` (missing gradients count as zero)."""
    sq = sum((p.grad.detach().float() ** 2).sum() for p in params.values() if p.grad is not None)
    return float(torch.as_tensor(sq).sqrt())


def distance_from_init(params: dict[str, torch.Tensor], init: dict[str, torch.Tensor]) -> tuple[float, float]:
    """``(||w - w0||, ||w - w0|| / ||w0||)`` over all tracked weights."""
    w, w0 = _flat(params[n] for n in init), _flat(init.values())
    d = (w - w0).norm().item()
    n0 = w0.norm().item()
    return d, (d / n0 if n0 > 0 else float("nan"))


def sign_change_fraction(params: dict[str, torch.Tensor], init: dict[str, torch.Tensor]) -> float:
    """Fraction of weights whose sign differs from their sign at initialization (zero counts as its own sign)."""
    w, w0 = _flat(params[n] for n in init), _flat(init.values())
    if w.numel() == 0:
        return float("nan")
    return (torch.sign(w) != torch.sign(w0)).float().mean().item()


class EarlyPhaseProbe:
    """Training callback: early-phase statistics per iteration, and model states kept for rewinding.

    ``rows`` gets one dict per probed iteration: ``step`` (iterations done; 0 = initialization), ``epoch``
    (fractional), ``grad_norm`` (of the mini-batch loss just used; NaN at step 0), ``dist_init``,
    ``rel_dist_init``, ``sign_changed`` and ``batch_loss``.  Iterations ``1..max_steps`` are probed every
    ``every`` steps.  ``states[k]`` is a deep copy of the model's ``state_dict`` after ``k`` iterations for each
    ``k`` in ``keep_steps`` (``k = 0``: the initialization).
    """

    def __init__(self, max_steps: int, every: int = 1, keep_steps: Iterable[int] = ()):
        if max_steps < 0 or every < 1:
            raise ValueError(f"EarlyPhaseProbe needs max_steps >= 0 and every >= 1, got {max_steps}, {every}")
        self.max_steps, self.every = int(max_steps), int(every)
        self.keep_steps = sorted(set(int(k) for k in keep_steps))
        self.rows: list[dict] = []
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def _keep(self, run) -> None:
        if run.step in self.keep_steps:
            self.states[run.step] = {k: v.detach().clone() for k, v in run.model.state_dict().items()}

    def _record(self, run, grad_norm: float) -> None:
        d, rel = distance_from_init(self.params, self.init)
        self.rows.append({"step": run.step, "epoch": run.step / run.steps_per_epoch, "grad_norm": grad_norm,
                          "dist_init": d, "rel_dist_init": rel,
                          "sign_changed": sign_change_fraction(self.params, self.init),
                          "batch_loss": run.loss})

    def on_fit_start(self, run):
        self.params = tracked_parameters(run.model)
        self.init = snapshot(self.params)
        self._keep(run)
        self._record(run, float("nan"))

    def on_step_end(self, run):
        self._keep(run)
        if run.step <= self.max_steps and run.step % self.every == 0:
            self._record(run, gradient_norm(self.params))

    def missing_states(self) -> list[int]:
        return [k for k in self.keep_steps if k not in self.states]
