"""Channel-dropout variants for Maini et al.'s comparison (claim 2) and the lottery-ticket test (claim 5).

* :class:`ExampleTiedDropout`: the first ``int(p_gen * C)`` channels are *generalization* channels,
  active for every example; each remaining *memorization* channel is active for a training example with
  probability ``p_mem``, drawn once per (site, example) from a seeded generator.  Masks are stored as
  booleans ``[n_examples, C_mem]``; the global RNG is never touched.
* :class:`StandardDropout`: ordinary element-wise dropout with probability ``p``; after training it can carry a
  *matched random ablation* (:func:`ablate_channels`): the share of channels that example-tied dropout's ``drop``
  mode removes, chosen at random (seeded, per site), the kept ones rescaled the same way -- the control that asks
  whether dropping that many channels of *any* network erases its least-supported fits first.
* :class:`FixedChannelMask`: a "sparse network": the same random ``sparsity`` fraction of channels is
  zeroed for every example, at training and at test time.

Evaluation modes of example-tied dropout (set with :func:`set_etd_mode`):

* ``"drop"`` (default, the paper's test-time mode): memorization channels zeroed, generalization
  channels scaled by ``(p_gen + p_mem) / p_gen``; with ``p_gen = 1`` there are no memorization channels, every
  channel was active for every example in training, and nothing is dropped or rescaled;
* ``"own"``: each training example uses its own training-time mask (needs ``idx``);
* ``"all"``: every channel active, no scaling;
* ``"mean"``: every channel active, memorization channels scaled by ``p_mem`` (their expected training-time
  mask; the authors' "test" mode).
"""
from __future__ import annotations

from typing import Collection

import torch
from torch import nn

from .models import Identity
from .seeds import derive

ETD_MODES = ("drop", "own", "all", "mean")


def _broadcast(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B, C] mask -> shape broadcastable over x ([B, C] or [B, C, H, W])."""
    return mask.view(*mask.shape, *([1] * (x.dim() - 2))).to(x.dtype)


class ExampleTiedDropout(nn.Module):
    def __init__(self, channels: int, p_gen: float, p_mem: float, n_examples: int, seed: int = 0):
        super().__init__()
        if not 0.0 < p_gen <= 1.0:
            raise ValueError(f"p_gen must be in (0, 1], got {p_gen}")
        if not 0.0 <= p_mem <= 1.0:
            raise ValueError(f"p_mem must be in [0, 1], got {p_mem}")
        if n_examples <= 0:
            raise ValueError("example-tied dropout needs the number of training examples (n_examples > 0)")
        self.channels = channels
        self.n_gen = max(1, int(p_gen * channels))
        self.p_gen, self.p_mem = p_gen, p_mem
        self.seed = int(seed)
        g = torch.Generator().manual_seed(self.seed)
        # Row i is drawn from the stream after rows 0..i-1, so it depends only on (seed, i, C).
        mem = torch.rand(n_examples, channels - self.n_gen, generator=g) < p_mem
        self.register_buffer("mem_mask", mem, persistent=True)
        self.mode = "drop"

    @property
    def n_mem(self) -> int:
        return self.channels - self.n_gen

    def example_masks(self, idx: torch.Tensor) -> torch.Tensor:
        """Boolean [B, C] training-time masks for examples ``idx`` (generalization channels always on)."""
        gen = torch.ones(len(idx), self.n_gen, dtype=torch.bool, device=self.mem_mask.device)
        return torch.cat([gen, self.mem_mask[idx.to(self.mem_mask.device)]], dim=1)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        mode = "own" if self.training else self.mode
        if mode == "own":
            if idx is None:
                raise ValueError("example-tied dropout needs example indices: call model(x, idx=positions)")
            return x * _broadcast(self.example_masks(idx), x)
        if mode == "all" or self.n_mem == 0:  # p_gen = 1: no memorization channels, nothing to drop or rescale
            return x
        if mode == "mean":
            keep = torch.full((self.channels,), self.p_mem, dtype=x.dtype, device=x.device)
            keep[: self.n_gen] = 1.0
            return x * keep.view(1, -1, *([1] * (x.dim() - 2)))
        if mode == "drop":
            keep = torch.zeros(self.channels, dtype=x.dtype, device=x.device)
            keep[: self.n_gen] = (self.p_gen + self.p_mem) / self.p_gen
            return x * keep.view(1, -1, *([1] * (x.dim() - 2)))
        raise ValueError(f"unknown example-tied dropout mode {mode!r}; choose one of {ETD_MODES}")

    def extra_repr(self) -> str:
        return f"channels={self.channels}, n_gen={self.n_gen}, p_mem={self.p_mem}, mode={self.mode}"


class StandardDropout(nn.Module):
    """Element-wise dropout: in training each unit is zeroed with probability ``p`` and the kept ones scaled by
    ``1 / (1 - p)``; the identity in evaluation (unless :func:`ablate_channels` set an ablation).

    The mask is drawn as uniform fp32 numbers compared with ``p`` (``torch.rand_like``), the same distribution as
    ``nn.Dropout``; on a CPU that takes about two thirds of ``nn.Dropout``'s time, whose Bernoulli sampler is slower
    (claim 2's standard-dropout arm: ~9 of ~46 ms a step in ``nn.Dropout``; ``benchmarks/dropout_mask.py``)."""

    def __init__(self, p: float, channels: int | None = None, site: int | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.channels, self.site = channels, site
        self.ablation: torch.Tensor | None = None  # per-channel factors applied in evaluation (ablate_channels)

    def forward(self, x, idx=None):
        if not self.training:
            if self.ablation is None:
                return x
            return x * self.ablation.to(device=x.device, dtype=x.dtype).view(1, -1, *([1] * (x.dim() - 2)))
        if self.p == 0.0:
            return x
        keep = torch.rand_like(x, dtype=torch.float32).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def ablation_factors(channels: int, p_gen: float, p_mem: float, seed: int) -> torch.Tensor:
    """Per-channel factors of a random ablation matched to :class:`ExampleTiedDropout`'s ``drop`` mode on a layer of
    ``channels``: as many channels kept as it keeps (``max(1, int(p_gen * channels))``), chosen at random from
    ``seed``, scaled by ``(p_gen + p_mem) / p_gen``; the others zeroed.  With ``p_gen = 1`` nothing is dropped or
    rescaled (as the ``drop`` mode)."""
    if not 0.0 < p_gen <= 1.0:
        raise ValueError(f"p_gen must be in (0, 1], got {p_gen}")
    n_keep = max(1, int(p_gen * channels))
    if n_keep >= channels:
        return torch.ones(channels)
    g = torch.Generator().manual_seed(int(seed))
    factors = torch.zeros(channels)
    factors[torch.randperm(channels, generator=g)[:n_keep]] = (p_gen + p_mem) / p_gen
    return factors


def ablate_channels(model: nn.Module, p_gen: float, p_mem: float, seed: int) -> int:
    """Give every :class:`StandardDropout` site of ``model`` the matched random ablation of
    :func:`ablation_factors` (site ``s`` draws from ``derive(seed, "matched ablation", s)``), applied in evaluation
    mode until :func:`clear_ablation`.  Returns the number of sites ablated."""
    sites = [m for m in model.modules() if isinstance(m, StandardDropout)]
    for m in sites:
        if m.channels is None or m.site is None:
            raise ValueError("a matched ablation needs each dropout site's channels and number: build the model "
                             "with make_factory('dropout', ...)")
        m.ablation = ablation_factors(m.channels, p_gen, p_mem, derive(seed, "matched ablation", m.site))
    return len(sites)


def clear_ablation(model: nn.Module) -> None:
    """Undo :func:`ablate_channels`: standard dropout's ordinary evaluation (identity) again."""
    for m in model.modules():
        if isinstance(m, StandardDropout):
            m.ablation = None


class FixedChannelMask(nn.Module):
    def __init__(self, channels: int, sparsity: float, seed: int = 0):
        super().__init__()
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        g = torch.Generator().manual_seed(int(seed))
        off = torch.randperm(channels, generator=g)[: int(sparsity * channels)]
        keep = torch.ones(channels, dtype=torch.bool)
        keep[off] = False
        self.register_buffer("keep", keep)

    def forward(self, x, idx=None):
        return x * self.keep.to(x.dtype).view(1, -1, *([1] * (x.dim() - 2)))


def make_factory(kind: str, *, p: float = 0.0, p_gen: float = 1.0, p_mem: float = 0.0,
                 sparsity: float = 0.0, n_examples: int = 0, seed: int = 0, sites: Collection[int] | None = None):
    """A ``channel_dropout(channels, site)`` factory for :func:`memlib.models.build_model`.

    With ``sites``, only those sites (numbered in forward order, see the model's docstring) get the module; the
    others pass their input through.  A site's masks depend on its number, not on which other sites are used.
    """
    if kind == "none":
        return None
    if kind == "dropout":
        make = lambda c, site: StandardDropout(p, c, site)  # noqa: E731
    elif kind == "sparse":
        make = lambda c, site: FixedChannelMask(c, sparsity, seed=derive(seed, "sparse mask", site))  # noqa: E731
    elif kind == "example_tied":
        make = lambda c, site: ExampleTiedDropout(  # noqa: E731
            c, p_gen, p_mem, n_examples, seed=derive(seed, "example-tied mask", site))
    else:
        raise ValueError(f"unknown dropout kind {kind!r}; choose one of: none, dropout, sparse, example_tied")
    if sites is None:
        return make
    chosen = frozenset(sites)
    return lambda c, site: make(c, site) if site in chosen else Identity()


def etd_modules(model: nn.Module) -> list[ExampleTiedDropout]:
    return [m for m in model.modules() if isinstance(m, ExampleTiedDropout)]


def set_etd_mode(model: nn.Module, mode: str) -> None:
    """Set the evaluation mode of every example-tied dropout layer in ``model``."""
    if mode not in ETD_MODES:
        raise ValueError(f"unknown example-tied dropout mode {mode!r}; choose one of {ETD_MODES}")
    for m in etd_modules(model):
        m.mode = mode
