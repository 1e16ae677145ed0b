"""Lottery tickets (Frankle & Carbin 2019; Frankle et al. 2020), written once.

Used by chapter 5 (``memlib.experiments.lth_vs_dropout``: iterative pruning) and chapter 4's rewinding
(``early_learning``: one-shot pruning, rewound to each iteration of a grid).

The procedure, after open_lth's ``lottery`` runner (facebookresearch/open_lth):

1. **capture** -- train the dense network once with a :class:`CaptureAt` callback, saving its weights at
   iteration 0 and at every iteration of a grid; :meth:`CaptureAt.points` gives the :class:`RewindPoints` of any
   ``k`` on it;
2. **prune** -- :func:`magnitude_prune` removes a fraction ``rate`` of the *remaining* weights, by smallest
   ``|w|``, over every conv and linear weight together (``scope="global"``, open_lth's ``sparse_global``: 20% a
   round) or within each layer (``scope="layer"``, Frankle & Carbin's small nets); :func:`one_shot_prune` prunes a
   dense network to a target sparsity at once; biases and BatchNorm are never pruned;
3. **rewind** -- :func:`start` puts a fresh network at the start named by an :class:`Arm` (open_lth's branches):
   the magnitude mask with the weights of iteration ``k`` (the lottery ticket) or of iteration 0, the magnitude
   mask with a random re-initialisation (``randomly_reinitialize``), or a random mask with the same number of kept
   weights in every layer, rewound to ``k`` (``randomly_prune``);
4. **retrain** -- :func:`retrain` trains it under the mask (:class:`MaskCallback` keeps pruned weights at zero),
   resuming where its weights come from, as open_lth does (its ``train(start_step=...)``): a network rewound to
   iteration ``k`` trains only the iterations ``k+1 .. T`` of the dense training, with that training's
   learning-rate schedule and batch order from ``k`` on (:meth:`Arm.start_step`); the optimizer state (momentum)
   starts empty, as in open_lth.  Rewinding to 0 and random re-initialisation train all ``T`` iterations (open_lth
   starts ``randomly_reinitialize`` at ``k`` unless asked to start at 0; a fresh initialisation is iteration 0's).

:class:`LotteryTicket` repeats 2--4 (iterative magnitude pruning, IMP): each level's mask is pruned from the
previous level's trained ticket, so its :meth:`LotteryTicket.levels` yield the tickets at sparsities
``1 - (1 - rate)^r``.  The training itself is a function the caller passes, ``train(model, callbacks, description,
start_step)`` (any architecture, any data, the one loop of :mod:`memlib.train`, resumed at ``start_step``), so the
procedure has no Config and no data of its own.

Masks are ``{parameter name: bool tensor}`` over the prunable weights; ``True`` = kept.  Random streams come from
:func:`memlib.seeds.derive` (the run's seed, the arm and the level), never from the global generator.

Per-channel weight statistics of the pruned networks (which channels magnitude pruning removes) are
:mod:`memlib.probes.channels`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterator

import pandas as pd
import torch
from torch import nn

from .seeds import derive

Masks = dict[str, torch.Tensor]
State = dict[str, torch.Tensor]
SCOPES = ("global", "layer")


# ----------------------------------------------------------------------------- masks

def prunable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights that pruning may remove: every conv and linear layer's ``weight``."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            out[f"{name}.weight" if name else "weight"] = mod.weight
    return out


def full_masks(model: nn.Module) -> Masks:
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable(model).items()}


def sparsity(masks: Masks) -> float:
    """Fraction of prunable weights removed."""
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return 1.0 - kept / max(1, total)


def _prune_scores(scores: torch.Tensor, mask: torch.Tensor, n_remove: int) -> torch.Tensor:
    """Remove the ``n_remove`` kept entries with the lowest score (ties broken by position)."""
    new = mask.clone()
    if n_remove <= 0:
        return new
    flat = scores.flatten().clone().float()
    flat[~mask.flatten()] = float("inf")
    order = torch.argsort(flat, stable=True)[:n_remove]
    new.view(-1)[order] = False
    return new


def magnitude_prune(model: nn.Module, masks: Masks | None, rate: float, scope: str = "layer") -> Masks:
    """One round of magnitude pruning: remove ``round(rate * remaining)`` of the smallest-|w| kept weights.

    ``scope="layer"`` removes that fraction in every layer; ``"global"`` ranks all layers' weights together.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"pruning rate must be in [0, 1), got {rate}")
    if scope not in SCOPES:
        raise ValueError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(SCOPES)}")
    params = prunable(model)
    masks = masks if masks is not None else full_masks(model)
    if set(masks) != set(params):
        raise ValueError("masks do not match the model's prunable weights")
    scores = {n: p.detach().abs().cpu() for n, p in params.items()}
    cpu_masks = {n: m.cpu() for n, m in masks.items()}
    if scope == "layer":
        out = {n: _prune_scores(scores[n], cpu_masks[n], round(rate * int(cpu_masks[n].sum()))) for n in params}
    else:
        names = list(params)
        s = torch.cat([scores[n].flatten() for n in names])
        m = torch.cat([cpu_masks[n].flatten() for n in names])
        new = _prune_scores(s, m, round(rate * int(m.sum())))
        out, i = {}, 0
        for n in names:
            k = cpu_masks[n].numel()
            out[n] = new[i:i + k].view_as(cpu_masks[n])
            i += k
    return {n: out[n].to(params[n].device) for n in params}


def one_shot_prune(model: nn.Module, target: float, scope: str = "global") -> Masks:
    """Prune the dense ``model`` to sparsity ``target`` in one round (Frankle et al. 2020's one-shot pruning,
    which rewinding is studied with): ``round(target * n)`` of the ``n`` weights ranked together (``"global"``)
    or in each layer (``"layer"``) are removed."""
    if not 0.0 <= target < 1.0:
        raise ValueError(f"target sparsity must be in [0, 1), got {target}")
    return magnitude_prune(model, None, target, scope)


def random_masks(masks: Masks, seed: int) -> Masks:
    """Random masks with the same number of kept weights in every layer as ``masks`` (the control)."""
    g = torch.Generator().manual_seed(int(seed))
    out = {}
    for n, m in masks.items():
        k = int(m.sum())
        perm = torch.randperm(m.numel(), generator=g)[:k]
        r = torch.zeros(m.numel(), dtype=torch.bool)
        r[perm] = True
        out[n] = r.view_as(m).to(m.device)
    return out


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights in place."""
    params = prunable(model)
    for n, m in masks.items():
        params[n].mul_(m.to(params[n].device, params[n].dtype))


class MaskCallback:
    """A :func:`memlib.train.fit` callback that keeps pruned weights at exactly zero.

    At the start of training it zeroes the pruned weights and registers gradient hooks that zero their
    gradients (so the momentum buffers never accumulate anything for them); after every step it re-zeroes the
    weights and any ``momentum_buffer`` entries (a safeguard for optimizers that change weights otherwise).
    """

    def __init__(self, masks: Masks):
        self.masks = masks
        self._hooks: list = []

    def _float_masks(self, model):
        params = prunable(model)
        return [(params[n], m.to(params[n].device, params[n].dtype)) for n, m in self.masks.items()]

    def on_fit_start(self, run):
        self._pairs = self._float_masks(run.model)
        with torch.no_grad():
            for p, m in self._pairs:
                p.mul_(m)
        self._hooks = [p.register_hook(lambda g, m=m: g * m) for p, m in self._pairs]

    @torch.no_grad()
    def on_step_end(self, run):
        for p, m in self._pairs:
            p.mul_(m)
            buf = run.optimizer.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf.mul_(m)

    def on_fit_end(self, run):
        for h in self._hooks:
            h.remove()
        self._hooks = []


# ----------------------------------------------------------------------------- capture and rewind

def snapshot(model: nn.Module) -> State:
    """A detached copy of the model's parameters and buffers (what rewinding restores)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rewind(model: nn.Module, saved: State, masks: Masks | None = None) -> nn.Module:
    """Load the saved weights into ``model`` (keys the model lacks are ignored, e.g. dropout masks of another
    variant of the same architecture) and zero the pruned ones."""
    own = model.state_dict()
    missing = [k for k in own if k not in saved]
    if missing:
        raise ValueError(f"saved weights lack {missing[:3]}: not the same architecture")
    model.load_state_dict({k: saved[k] for k in own})
    if masks is not None:
        apply_masks(model, masks)
    return model


def reinit(model: nn.Module, seed: int, masks: Masks | None = None) -> nn.Module:
    """Random re-initialisation (each layer's default init, from a seeded generator), then masking."""
    state = torch.random.get_rng_state()
    torch.manual_seed(int(seed))
    try:
        for mod in model.modules():
            if mod is not model and hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
    finally:
        torch.random.set_rng_state(state)
    if masks is not None:
        apply_masks(model, masks)
    return model


class CaptureAt:
    """A :func:`memlib.train.fit` callback saving :func:`snapshot`\\ s at the given iterations (0 = before the
    first step).  ``saved[k]`` holds the weights after ``k`` optimizer steps."""

    def __init__(self, steps):
        self.steps = sorted(set(int(s) for s in steps))
        self.saved: dict[int, State] = {}

    def on_fit_start(self, run):
        if 0 in self.steps:
            self.saved[0] = snapshot(run.model)

    def on_step_end(self, run):
        if run.step in self.steps:
            self.saved[run.step] = snapshot(run.model)

    def points(self, k: int) -> RewindPoints:
        """Where the branches start when rewinding to iteration ``k`` of the grid (and to iteration 0)."""
        k = int(k)
        if 0 not in self.steps or k not in self.steps:
            raise ValueError(f"iterations 0 and {k} must both be on the capture grid {self.steps}")
        for s in (0, k):
            if s not in self.saved:
                raise ValueError(f"iteration {s} is beyond the end of the training: it was never captured")
        return RewindPoints(self.saved[0], self.saved[k], k)


@dataclass(frozen=True)
class RewindPoints:
    """The dense training's weights at iteration 0 (``init``) and after ``k`` iterations (``at_k``)."""

    init: State
    at_k: State
    k: int


# ----------------------------------------------------------------------------- the branches

class Arm(str, Enum):
    """Where a network starts its (re)training: the unpruned reference and open_lth's lottery branches.

    The value is the label used in tables, figures and on the page; claims and plots import this enum.
    """

    DENSE = "dense"
    MAGNITUDE_K = "magnitude / rewind to k"
    MAGNITUDE_0 = "magnitude / rewind to 0"
    REINIT = "magnitude / random re-init"
    RANDOM_K = "random mask / rewind to k"

    def __str__(self) -> str:
        return self.value

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def pruned(self) -> bool:
        return self is not Arm.DENSE

    def start_step(self, k: int) -> int:
        """The iteration of the dense training that this arm's training resumes at when rewinding to ``k``:
        ``k`` for the arms whose weights are iteration ``k``'s (open_lth's lottery and ``randomly_prune``
        branches), 0 for the others."""
        return int(k) if self in (Arm.MAGNITUDE_K, Arm.RANDOM_K) else 0


_DESCRIPTIONS = {
    Arm.DENSE: "no pruning, from iteration 0 (the reference)",
    Arm.MAGNITUDE_K: "magnitude mask, surviving weights rewound to iteration k and trained from k to the end (the "
                     "lottery ticket; open_lth's main line with rewinding)",
    Arm.MAGNITUDE_0: "magnitude mask, surviving weights reset to iteration 0 (Frankle & Carbin 2019)",
    Arm.REINIT: "magnitude mask, weights randomly re-initialised, trained from iteration 0 (open_lth's "
                "randomly_reinitialize)",
    Arm.RANDOM_K: "random mask with the magnitude mask's per-layer counts, rewound to iteration k and trained "
                  "from k (open_lth's randomly_prune)",
}


def start(arm: Arm, model: nn.Module, masks: Masks, points: RewindPoints, seed: int, level: int = 0) -> Masks:
    """Put ``model`` (a fresh network of the ticket's architecture) at ``arm``'s start for the mask ``masks`` of
    pruning level ``level``; returns the mask it must train under.  Random choices (re-initialisation, random
    mask) are drawn from ``derive(seed, arm, level)``."""
    arm = Arm(arm)
    if arm is Arm.DENSE:
        rewind(model, points.init)
        return full_masks(model)
    if arm is Arm.MAGNITUDE_K:
        rewind(model, points.at_k, masks)
        return masks
    if arm is Arm.MAGNITUDE_0:
        rewind(model, points.init, masks)
        return masks
    if arm is Arm.REINIT:
        reinit(model, derive(seed, arm.name, level), masks)
        return masks
    rmasks = random_masks(masks, derive(seed, arm.name, level))
    rewind(model, points.at_k, rmasks)
    return rmasks


Build = Callable[[], nn.Module]
# (model, callbacks, description, start_step) -> per-epoch history of the training resumed at start_step
Train = Callable[[nn.Module, list, str, int], pd.DataFrame]


def retrain(arm: Arm, build: Build, train: Train, masks: Masks, points: RewindPoints, seed: int,
            level: int = 0) -> tuple[nn.Module, pd.DataFrame, Masks]:
    """Build a network, :func:`start` it as ``arm``, train it under its mask from iteration
    ``arm.start_step(points.k)``: ``(model, history, mask)``."""
    arm = Arm(arm)
    model = build()
    used = start(arm, model, masks, points, seed, level)
    callbacks = [MaskCallback(used)] if arm.pruned else []
    return model, train(model, callbacks, f"level {level}: {arm.value}", arm.start_step(points.k)), used


@dataclass
class Level:
    """One level of iterative magnitude pruning.

    ``masks`` is this level's mask (all True at level 0), pruned from ``previous`` by the magnitudes of
    ``ranked_by`` (the previous level's trained network); ``model`` / ``history`` are the network trained under
    ``masks`` from iteration ``k`` to the end (the dense network from iteration 0 at level 0), or None when the
    level was only pruned, not trained.
    """

    round: int
    masks: Masks
    model: nn.Module | None
    history: pd.DataFrame | None
    previous: Masks | None = None
    ranked_by: nn.Module | None = None

    @property
    def sparsity(self) -> float:
        return sparsity(self.masks)


class LotteryTicket:
    """Iterative magnitude pruning with rewinding (open_lth's lottery runner), for any network.

    ``build()`` returns a fresh network of the chain's architecture (its initial weights do not matter after
    level 0: every level is rewound); ``train(model, callbacks, description, start_step)`` trains it from
    iteration ``start_step`` and returns the history.  :meth:`levels` trains the dense network (capturing
    :attr:`points`), then per round prunes ``rate`` of the remaining weights (``scope``) and retrains the ticket
    from iteration ``k`` to the end of the dense training's schedule.
    """

    def __init__(self, build: Build, train: Train, rate: float, scope: str = "global", rewind_step: int = 0):
        if not 0.0 < rate < 1.0:
            raise ValueError(f"pruning rate must be in (0, 1), got {rate}")
        if scope not in SCOPES:
            raise ValueError(f"unknown pruning scope {scope!r}; choose one of: {', '.join(SCOPES)}")
        if rewind_step < 0:
            raise ValueError(f"rewind_step must be >= 0, got {rewind_step}")
        self.build, self.train, self.rate, self.scope, self.rewind_step = build, train, rate, scope, rewind_step
        self.points: RewindPoints | None = None

    def levels(self, rounds: int, train_last: bool = True) -> Iterator[Level]:
        """Level 0 (dense) to ``rounds``; with ``train_last=False`` the last level is pruned but not trained
        (when only its mask is needed)."""
        model = self.build()
        cap = CaptureAt([0, self.rewind_step])
        hist = self.train(model, [cap], "level 0: dense", 0)
        self.points = cap.points(self.rewind_step)
        level = Level(0, full_masks(model), model, hist)
        yield level
        for rnd in range(1, rounds + 1):
            masks = magnitude_prune(level.model, level.masks, self.rate, self.scope)
            if rnd == rounds and not train_last:
                yield Level(rnd, masks, None, None, level.masks, level.model)
                return
            # the ticket's start draws nothing at random: the seed is unused
            model, hist, _ = retrain(Arm.MAGNITUDE_K, self.build, self.train, masks, self.points, 0, rnd)
            level = Level(rnd, masks, model, hist, level.masks, level.model)
            yield level
