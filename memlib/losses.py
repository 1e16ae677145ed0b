"""Loss functions for the one training loop (``fit(..., loss_fn=...)``), called as ``loss_fn(logits, y, idx)``.

:class:`ELRLoss` is the early-learning regularization of Liu et al. (2020): cross-entropy plus
``lambda * mean_i log(1 - <p_i, t_i>)``, where ``p_i`` is the softmax output for example ``i`` and ``t_i`` a
per-example running average (momentum ``beta``) of the model's past (detached) predictions.  Because
``log(1 - <p, t>)`` decreases as ``p`` moves towards ``t``, the regularizer pulls each prediction towards the
targets the network formed during early learning, which counteracts the gradient of cross-entropy on a wrong
label.

Facts taken from the authors' description and public code (shengliu66/ELR): probabilities are clamped to
``[1e-4, 1 - 1e-4]`` before use; the targets start at zero and are updated *before* the loss is computed, with
the clamped probabilities renormalized to sum to one: ``t_i <- beta * t_i + (1 - beta) * p_i / sum(p_i)``;
CIFAR-10 uses ``beta = 0.7`` and ``lambda = 3``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ConfigError

CLAMP = 1e-4


class ELRLoss:
    """Cross-entropy + early-learning regularization, with per-example targets on the device.

    ``num_examples`` is the size of the training split; ``idx`` passed at each call holds the batch's
    positions in that split (what :func:`memlib.train.fit` passes).  The targets live in ``self.target``
    ``[num_examples, num_classes]`` on ``device``.  The parts of the last batch's loss are kept in
    ``self.last`` (``ce``, ``reg``) for logging.
    """

    def __init__(self, num_examples: int, num_classes: int, beta: float = 0.7, lam: float = 3.0,
                 device: torch.device | str | None = None, clamp: float = CLAMP):
        if num_examples <= 0 or num_classes <= 1:
            raise ConfigError(f"ELR needs num_examples > 0 and num_classes > 1, got {num_examples}, {num_classes}")
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"ELR momentum beta must be in [0, 1), got {beta!r}")
        if lam < 0:
            raise ConfigError(f"ELR weight lambda must be >= 0, got {lam!r}")
        self.beta, self.lam, self.clamp = float(beta), float(lam), float(clamp)
        self.target = torch.zeros(num_examples, num_classes, device=device)
        self.last: dict[str, float] = {}

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return F.softmax(logits.float(), dim=1).clamp(self.clamp, 1.0 - self.clamp)

    @torch.no_grad()
    def update_targets(self, idx: torch.Tensor, probs: torch.Tensor) -> None:
        """``t[idx] <- beta * t[idx] + (1 - beta) * probs / probs.sum(1)`` (``probs`` detached)."""
        p = probs.detach().float()
        p = p / p.sum(dim=1, keepdim=True)
        self.target[idx] = self.beta * self.target[idx] + (1.0 - self.beta) * p

    def regularizer(self, probs: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``mean_i log(1 - <p_i, t_i>)`` over the batch (differentiable in ``probs``)."""
        inner = (self.target[idx] * probs).sum(dim=1)
        return torch.log(1.0 - inner).mean()

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if idx is None:
            raise ValueError("ELRLoss needs the examples' positions (idx) in the training split")
        probs = self.probabilities(logits)
        self.update_targets(idx, probs)
        ce = F.cross_entropy(logits.float(), y)
        reg = self.regularizer(probs, idx)
        self.last = {"ce": ce.detach(), "reg": reg.detach()}
        return ce + self.lam * reg


class LossTracker:
    """Training callback: per-epoch means of an :class:`ELRLoss`'s two parts (``elr_ce``, ``elr_reg``)."""

    def __init__(self, loss: ELRLoss):
        self.loss = loss
        self._sum: dict = {"ce": 0.0, "reg": 0.0}
        self._n = 0

    def on_step_end(self, run):
        # summed as (device) tensors and read once per epoch: no synchronisation at every step
        for k in self._sum:
            v = self.loss.last.get(k)
            if v is not None:
                self._sum[k] = self._sum[k] + v
        self._n += 1

    def on_epoch_end(self, run):
        out = {f"elr_{k}": float(v) / max(1, self._n) for k, v in self._sum.items()}
        self._sum = {"ce": 0.0, "reg": 0.0}
        self._n = 0
        return out
