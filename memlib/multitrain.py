"""Training K small models at once: parameters stacked with ``torch.func``, forward and backward under ``vmap``.

This is the book's one sanctioned second trainer (claim 3 trains dozens of small models on windows of a few
hundred examples; one at a time, each step is too small to keep a device busy).  It follows
:func:`memlib.train.fit` step for step so that the two are interchangeable:

* model ``k`` is whatever module you pass (build it after ``seed_everything(seed_k)`` as ``fit``'s callers do);
* its batch order comes from :func:`memlib.train.batch_orders` (``seed_k``), one permutation per epoch over its own
  subset of the shared training tensor (exactly ``fit``'s order on ``data.train.subset(...)``);
* SGD with momentum (plain unless ``spec.nesterov``) and weight decay, linear warm-up then cosine decay stepped per iteration
  (``memlib.train.lr_lambda``), mean cross-entropy per model.

Stacked parameters have shape ``[K, ...]`` and every SGD operation is element-wise, so one ``torch.optim.SGD``
over the stacked tensors updates each model exactly as its own optimizer would; the loss is the *sum* of the
models' mean losses, so each model's gradient is its own.  The test (``tests/test_outliers_multitrain.py``)
checks that K stacked models end where ``fit`` takes each of them.

Models must not have buffers (no BatchNorm): ``MLP`` and ``SmallCNN`` qualify; use ``fit`` for ``ResNet9``.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .train import TrainSpec, batch_orders, make_optimizer


def can_stack(model: nn.Module) -> bool:
    """True for models without buffers (BatchNorm's running statistics cannot be updated under vmap)."""
    return next(iter(model.buffers()), None) is None


class Stack:
    """K models of one architecture as stacked parameters, with vmapped forward passes."""

    def __init__(self, models: Sequence[nn.Module]):
        if not models:
            raise ValueError("need at least one model to stack")
        for m in models:
            if not can_stack(m):
                raise ValueError(f"{type(m).__name__} has buffers (BatchNorm?) and cannot be trained stacked; "
                                 "use memlib.train.fit for it")
        self.models = list(models)
        params, _ = stack_module_state(self.models)
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        base = copy.deepcopy(self.models[0]).to("meta")

        def f(p, x):
            return functional_call(base, p, (x,))

        self._each = vmap(f)  # params [K, ...], inputs [K, B, ...]
        self._shared = vmap(f, in_dims=(0, None))  # params [K, ...], one input batch [B, ...] for all

    def __len__(self) -> int:
        return len(self.models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [K, B, classes] for per-model inputs x [K, B, ...]."""
        return self._each(self.params, x)

    @torch.no_grad()
    def predict_shared(self, x: torch.Tensor, batch_size: int = 2048) -> torch.Tensor:
        """Logits [K, N, classes] of every model on the same inputs x [N, ...] (fp32)."""
        out = []
        for s in range(0, len(x), batch_size):
            out.append(self._shared(self.params, x[s:s + batch_size]).float())
        return torch.cat(out, 1)

    def unstack(self) -> list[nn.Module]:
        """Copy the stacked parameters back into the K modules and return them."""
        with torch.no_grad():
            for k, m in enumerate(self.models):
                for name, p in m.named_parameters():
                    p.copy_(self.params[name][k])
                m.eval()
        return self.models


def fit_stacked(models: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, subsets: torch.Tensor,
                spec: TrainSpec, seeds: Sequence[int]) -> tuple[Stack, dict]:
    """Train ``models[k]`` on ``(x, y)[subsets[k]]`` with seed ``seeds[k]``, all at once.

    ``subsets`` is a [K, n] tensor of positions into ``x`` (every model gets the same number of examples).
    Returns the trained :class:`Stack` (``.unstack()`` copies the parameters back into the modules, in eval
    mode) and timing info ``{"seconds", "steps"}``.
    """
    k_models = len(models)
    subsets = torch.as_tensor(subsets, device=x.device)
    if subsets.dim() != 2 or subsets.shape[0] != k_models:
        raise ValueError(f"subsets must be [K={k_models}, n], got shape {tuple(subsets.shape)}")
    if len(seeds) != k_models:
        raise ValueError(f"need one seed per model: {k_models} models, {len(seeds)} seeds")
    n = subsets.shape[1]
    if n == 0:
        raise ValueError("cannot train on an empty training set")
    device = x.device
    for m in models:
        m.to(device)
    stack = Stack(models)
    steps_per_epoch = math.ceil(n / spec.batch_size)
    opt, sched = make_optimizer(list(stack.params.values()), spec, steps_per_epoch * spec.epochs)
    orders = [batch_orders(int(s), n) for s in seeds]
    rows = torch.arange(k_models, device=device)[:, None]
    t0 = time.perf_counter()
    for epoch in range(1, spec.epochs + 1):
        perms = torch.stack([next(o) for o in orders]).to(device)  # [K, n]
        total = torch.zeros(k_models, device=device)
        for s in range(steps_per_epoch):
            ib = perms[:, s * spec.batch_size:(s + 1) * spec.batch_size]  # [K, B] positions in each subset
            pos = subsets[rows, ib]  # [K, B] positions in x
            xb, yb = x[pos], y[pos]
            logits = stack.forward(xb)  # fp32: under CPU autocast a vmapped functional_call gains nothing
            b = ib.shape[1]
            loss = F.cross_entropy(logits.float().reshape(k_models * b, -1), yb.reshape(-1),
                                   reduction="none").view(k_models, b).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            sched.step()
            total += loss.detach()
        # once per epoch, as in ``fit`` (a per-step check would synchronise with the GPU every iteration)
        if not torch.isfinite(total).all():
            bad = torch.nonzero(~torch.isfinite(total)).flatten().tolist()
            raise FloatingPointError(f"the training loss of model(s) {bad} became non-finite in epoch {epoch}: "
                                     f"lower lr (now {spec.lr})")
    seconds = time.perf_counter() - t0
    stack.unstack()
    return stack, {"seconds": seconds, "steps": steps_per_epoch * spec.epochs}


@torch.no_grad()
def accuracy_stacked(stack: Stack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Accuracy of each stacked model on the same data: [K]."""
    pred = stack.predict_shared(x).argmax(2)
    return (pred == y[None]).float().mean(1)
