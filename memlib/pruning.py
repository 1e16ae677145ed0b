"""Lottery-ticket pruning (Frankle & Carbin 2019; Frankle et al. 2020) and per-channel weight statistics.

* Masks are ``{parameter name: bool tensor}`` over the *prunable* weights (conv and linear weights; biases and
  BatchNorm parameters are never pruned).  ``True`` = kept.
* :func:`magnitude_prune` removes a fraction ``rate`` of the *remaining* weights per round, by smallest
  ``|w|``, over the whole network (``scope="global"``) or within each layer (``scope="layer"``).
* :func:`random_masks` is the control: random masks with exactly the same number of kept weights per layer.
* Resets: :func:`snapshot` / :func:`rewind` (weights saved at iteration 0 or at iteration k, captured during
  training by :class:`CaptureAt`), or :func:`reinit` (a fresh random initialisation).
* :class:`MaskCallback` keeps pruned weights at exactly zero during :func:`memlib.train.fit`: it masks the
  gradients (so neither momentum nor the gradient moves a pruned weight; weight decay of a zero weight is zero)
  and, after every optimizer step, re-zeroes the weights and the optimizer's momentum buffers.
* :func:`channel_stats` / :func:`pruned_share`: for every example-tied dropout site, the weights of the layer
  that precedes it, split into generalization and memorization channels (its output channels / units).
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .dropout import ExampleTiedDropout

Masks = dict[str, torch.Tensor]
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


def layer_sparsity(masks: Masks) -> dict[str, float]:
    return {n: 1.0 - m.float().mean().item() for n, m in masks.items()}


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


# ----------------------------------------------------------------------------- resets

def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's parameters and buffers (what rewinding restores)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rewind(model: nn.Module, saved: dict[str, torch.Tensor], masks: Masks | None = None) -> nn.Module:
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
        self.saved: dict[int, dict[str, torch.Tensor]] = {}

    def on_fit_start(self, run):
        if 0 in self.steps:
            self.saved[0] = snapshot(run.model)

    def on_step_end(self, run):
        if run.step in self.steps:
            self.saved[run.step] = snapshot(run.model)


def strip_example_tied(model: nn.Module, plain: nn.Module) -> nn.Module:
    """Copy ``model``'s weights into ``plain``, the same architecture built without channel dropout."""
    return rewind(plain, snapshot(model))


# ----------------------------------------------------------------------------- channel statistics

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


def channel_stats(model: nn.Module) -> pd.DataFrame:
    """Per output channel of each layer before an example-tied dropout site: group (generalization /
    memorization), mean |w| and L2 norm of its incoming weights."""
    rows = []
    for site, lname, layer, etd in etd_sites(model):
        w = layer.weight.detach().float().flatten(1).cpu()
        mean_abs, l2 = w.abs().mean(1), w.norm(dim=1)
        for c in range(w.shape[0]):
            rows.append({"site": site, "layer": lname, "channel": c,
                         "group": "generalization" if c < etd.n_gen else "memorization",
                         "mean_abs": mean_abs[c].item(), "l2": l2[c].item()})
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
