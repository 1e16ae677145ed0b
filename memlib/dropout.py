"""Channel-dropout variants for Maini et al.'s comparison (claim 2) and the lottery-ticket test (claim 5).

* :class:`ExampleTiedDropout`: the first ``int(p_gen * C)`` channels are *generalization* channels,
  active for every example; each remaining *memorization* channel is active for a training example with
  probability ``p_mem``, drawn once per (site, example) from a seeded generator.  Masks are stored as
  booleans ``[n_examples, C_mem]``; the global RNG is never touched.
* :class:`UntiedChannelDropout`: the matched control of example-tied dropout: the same generalization channels
  (always active) and memorization channels, each memorization channel active with probability ``p_mem`` -- but
  drawn afresh for every example at every training step (from torch's global generator, as standard dropout), so
  no channel is tied to an example.  It is evaluated exactly as example-tied dropout (same modes, same rescaling;
  there is no ``own`` mask).
* :class:`StandardDropout`: ordinary element-wise dropout with probability ``p``.
* :class:`FixedChannelMask`: a "sparse network": the same random ``sparsity`` fraction of channels is
  zeroed for every example, at training and at test time.

Evaluation modes of example-tied and untied channel dropout (set with :func:`set_etd_mode`):

* ``"drop"`` (default, the paper's test-time mode): memorization channels zeroed, generalization
  channels scaled by ``(p_gen + p_mem) / p_gen``; with ``p_gen = 1`` there are no memorization channels, every
  channel was active for every example in training, and nothing is dropped or rescaled;
* ``"own"``: each training example uses its own training-time mask (needs ``idx``; example-tied dropout only);
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


class _SplitChannelDropout(nn.Module):
    """What example-tied and untied channel dropout share: the first ``max(1, int(p_gen * C))`` channels are
    generalization channels (always active), the others memorization channels, each active with probability
    ``p_mem`` in training; and the evaluation modes (:data:`ETD_MODES` but ``own``, which needs tied masks)."""

    def __init__(self, channels: int, p_gen: float, p_mem: float):
        super().__init__()
        if not 0.0 < p_gen <= 1.0:
            raise ValueError(f"p_gen must be in (0, 1], got {p_gen}")
        if not 0.0 <= p_mem <= 1.0:
            raise ValueError(f"p_mem must be in [0, 1], got {p_mem}")
        self.channels = channels
        self.n_gen = max(1, int(p_gen * channels))
        self.p_gen, self.p_mem = p_gen, p_mem
        self.mode = "drop"

    @property
    def n_mem(self) -> int:
        return self.channels - self.n_gen

    def _evaluate(self, x: torch.Tensor, mode: str) -> torch.Tensor:
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


class ExampleTiedDropout(_SplitChannelDropout):
    def __init__(self, channels: int, p_gen: float, p_mem: float, n_examples: int, seed: int = 0):
        super().__init__(channels, p_gen, p_mem)
        if n_examples <= 0:
            raise ValueError("example-tied dropout needs the number of training examples (n_examples > 0)")
        self.seed = int(seed)
        g = torch.Generator().manual_seed(self.seed)
        # Row i is drawn from the stream after rows 0..i-1, so it depends only on (seed, i, C).
        mem = torch.rand(n_examples, channels - self.n_gen, generator=g) < p_mem
        self.register_buffer("mem_mask", mem, persistent=True)

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
        return self._evaluate(x, mode)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, n_gen={self.n_gen}, p_mem={self.p_mem}, mode={self.mode}"


class UntiedChannelDropout(_SplitChannelDropout):
    """Example-tied dropout's matched control: the same generalization and memorization channels, but in training
    each memorization channel is active with probability ``p_mem`` independently for every example *at every
    step* (a fresh mask per forward call, from torch's global generator, so a seeded training repeats), tied to
    no example.  Masks act on whole channels and are not rescaled in training, as example-tied dropout's.  In
    evaluation it behaves exactly as :class:`ExampleTiedDropout` (``drop``, ``all``, ``mean``); it has no ``own``
    mode."""

    def random_masks(self, n: int, device=None) -> torch.Tensor:
        """Boolean [n, C] training-time masks: generalization channels on, each memorization channel on with
        probability ``p_mem``, drawn afresh on every call."""
        gen = torch.ones(n, self.n_gen, dtype=torch.bool, device=device)
        return torch.cat([gen, torch.rand(n, self.n_mem, device=device) < self.p_mem], dim=1)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            if self.n_mem == 0:
                return x
            return x * _broadcast(self.random_masks(x.shape[0], x.device), x)
        if self.mode == "own":
            raise ValueError("untied channel dropout ties no mask to an example: it has no 'own' mode")
        return self._evaluate(x, self.mode)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, n_gen={self.n_gen}, p_mem={self.p_mem}, untied, mode={self.mode}"


class StandardDropout(nn.Module):
    """Element-wise dropout: in training each unit is zeroed with probability ``p`` and the kept ones scaled by
    ``1 / (1 - p)``; the identity in evaluation.

    The mask is drawn as uniform fp32 numbers compared with ``p`` (``torch.rand_like``), the same distribution as
    ``nn.Dropout``; on a CPU that takes about two thirds of ``nn.Dropout``'s time, whose Bernoulli sampler is slower
    (claim 2's standard-dropout arm: ~9 of ~46 ms a step in ``nn.Dropout``; ``benchmarks/dropout_mask.py``)."""

    def __init__(self, p: float, channels: int | None = None, site: int | None = None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = float(p)
        self.channels, self.site = channels, site

    def forward(self, x, idx=None):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x, dtype=torch.float32).ge_(self.p).mul_(1.0 / (1.0 - self.p))
        return x * keep.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


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
    elif kind == "untied":
        make = lambda c, site: UntiedChannelDropout(c, p_gen, p_mem)  # noqa: E731
    else:
        raise ValueError(f"unknown dropout kind {kind!r}; choose one of: none, dropout, sparse, example_tied, "
                         f"untied")
    if sites is None:
        return make
    chosen = frozenset(sites)
    return lambda c, site: make(c, site) if site in chosen else Identity()


def etd_modules(model: nn.Module) -> list[ExampleTiedDropout]:
    return [m for m in model.modules() if isinstance(m, ExampleTiedDropout)]


def set_etd_mode(model: nn.Module, mode: str) -> None:
    """Set the evaluation mode of every example-tied (or untied channel) dropout layer in ``model``."""
    if mode not in ETD_MODES:
        raise ValueError(f"unknown example-tied dropout mode {mode!r}; choose one of {ETD_MODES}")
    mods = [m for m in model.modules() if isinstance(m, _SplitChannelDropout)]
    if mode == "own" and any(isinstance(m, UntiedChannelDropout) for m in mods):
        raise ValueError("untied channel dropout ties no mask to an example: it has no 'own' mode")
    for m in mods:
        m.mode = mode
