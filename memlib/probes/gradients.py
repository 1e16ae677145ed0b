"""Per-layer gradient similarity between two groups of examples (e.g. clean vs mislabeled).

Two protocols (claim 1):

* ``training`` (Maini et al.'s accounting, :class:`TrainingGradientAccounting`): in every training batch, the
  batch's mean loss is split into the part of its clean examples and the part of its mislabeled examples (each
  divided by the batch size, so the two add up to the batch loss); each part's gradient is taken at the current
  weights with BatchNorm in training mode, from the batch's one forward pass, and summed over the epoch.
* ``probe`` (:class:`GradientSimilarityProbe`): at the end of every epoch, at fixed weights, the gradient of the
  mean loss of a fixed subset of clean examples and of mislabeled examples, with BatchNorm in evaluation mode.

Either way, for every parameter tensor we take the cosine between the two groups' gradients; a layer group's
cosine is the mean over its tensors (as in Maini et al.'s accounting).  Norms are of the whole layer group's
gradient, per group of examples.

Both also measure a *placebo* (with ``placebo_seed``): a random clean subset of the mislabeled group's size
(:func:`placebo_positions`, fixed for the run), whose gradient is accounted exactly as the mislabeled group's and
compared with that of the rest of the clean examples (``placebo_cosine``).  It shows what the cosine of a group that
the network has *no* reason to memorize looks like.

With ``hard=True`` both also measure a *difficulty-matched* clean group, a described comparison (no verdict reads
it): the clean examples of highest loss (:func:`hard_positions`, as many as the placebo), against the rest of the
clean examples (``hard_cosine``).  The talk says atypical examples behave like mislabeled ones; this group asks
whether hard clean examples pull against the rest as the mislabeled do.  The group is chosen again at every epoch
from per-example losses in evaluation mode: by the training accounting at the epoch's start (the weights at the
end of the previous epoch, one extra forward pass over the training set per epoch), by the probe at its own fixed
weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models import layer_groups


def placebo_positions(noisy: torch.Tensor, seed: int) -> torch.Tensor:
    """Positions of a random clean subset of the mislabeled group's size (at most half of the clean examples, so
    that a rest remains), in the random order drawn from ``seed`` (take a prefix for a smaller placebo)."""
    noisy = noisy.cpu().bool()
    clean = torch.nonzero(~noisy).flatten()
    size = min(int(noisy.sum()), len(clean) // 2)
    g = torch.Generator().manual_seed(int(seed))
    return clean[torch.randperm(len(clean), generator=g)[:size]]


def hard_positions(losses: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """Positions of the clean examples of highest ``losses`` (per training position), as many as
    :func:`placebo_positions` takes (the mislabeled group's size, at most half of the clean examples), sorted."""
    noisy = noisy.cpu().bool()
    clean = torch.nonzero(~noisy).flatten()
    size = min(int(noisy.sum()), len(clean) // 2)
    top = torch.topk(losses.detach().float().cpu()[clean], size).indices
    return clean[top].sort().values


def eval_losses(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None,
                precision: str = "fp32") -> torch.Tensor:
    """Per-example cross-entropy of ``model`` in evaluation mode (as the book's training accuracies are read)."""
    from ..train import predict  # memlib.train imports the models, not the probes: imported here to keep it so

    with torch.no_grad():
        return F.cross_entropy(predict(model, x, idx, precision=precision), y, reduction="none")


def mean_loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor | None = None,
                       chunk: int = 512, loss_fn=None, denominator: int | None = None) -> dict[str, torch.Tensor]:
    """Gradient of the mean loss over (x, y), per named parameter, accumulated over chunks (``denominator``: divide
    the summed loss by it instead of ``len(x)``, e.g. 1 for the gradient of the sum)."""
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    n_total = len(x)
    if n_total == 0:
        raise ValueError("cannot average a gradient over an empty group of examples")
    denominator = n_total if denominator is None else denominator
    for i in range(0, n_total, chunk):
        ib = None if idx is None else idx[i:i + chunk]
        loss = loss_fn(model(x[i:i + chunk], idx=ib).float(), y[i:i + chunk]) / denominator
        gs = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        for (n, _), g in zip(params.items(), gs):
            if g is not None:
                grads[n] += g
    return grads


def disjoint_blocks(groups: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], dict[str, list[int]]]:
    """Split overlapping groups of positions into disjoint blocks: the blocks (sorted positions, none empty) and,
    for every group, the indices of the blocks it is the union of.  Examples in the same groups share a block."""
    names = list(groups)
    member: dict[int, tuple] = {}
    for k, name in enumerate(names):
        for pos in groups[name].cpu().tolist():
            member[pos] = member.get(pos, ()) + (k,)
    by_sig: dict[tuple, list[int]] = {}
    for pos, sig in member.items():
        by_sig.setdefault(sig, []).append(pos)
    sigs = sorted(by_sig)
    dev = next(iter(groups.values())).device
    blocks = [torch.tensor(sorted(by_sig[sig]), dtype=torch.long, device=dev) for sig in sigs]
    return blocks, {name: [b for b, sig in enumerate(sigs) if k in sig] for k, name in enumerate(names)}


def group_gradients(model: nn.Module, split, groups: dict[str, torch.Tensor],
                    eval_mode: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """The gradient of the mean loss of each group of training positions (of ``split``: x, y), per named parameter,
    with BatchNorm in evaluation mode: every example's loss then depends on it alone, so overlapping groups cost
    one forward and backward pass per example (over :func:`disjoint_blocks`), not one per group membership."""
    if not eval_mode:
        raise ValueError("group_gradients shares examples between groups, which needs evaluation mode")
    was = model.training
    model.eval()
    try:
        blocks, parts = disjoint_blocks(groups)
        sums = [mean_loss_gradient(model, split.x[b], split.y[b], b, denominator=1) for b in blocks]
    finally:
        model.train(was)
    out = {}
    for name, pos in groups.items():
        n = len(pos)
        if n == 0:
            raise ValueError("cannot average a gradient over an empty group of examples")
        out[name] = {p: sum(sums[b][p] for b in parts[name]) / n for p in sums[0]}
    return out


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    na, nb = a.norm(), b.norm()
    if na == 0 or nb == 0:
        return float("nan")
    return (a.flatten() @ b.flatten() / (na * nb)).item()


def layer_rows(model: nn.Module, ga: dict[str, torch.Tensor], gb: dict[str, torch.Tensor]) -> list[dict]:
    """Per layer group of ``model``: the mean over its tensors of the cosine between ``ga`` and ``gb`` (dicts of
    gradients by parameter name), and each side's norm over the whole group."""
    rows = []
    for layer, named in layer_groups(model).items():
        cosines = [_cos(ga[n], gb[n]) for n, _ in named]
        cosines = [c for c in cosines if c == c]
        va = torch.cat([ga[n].flatten() for n, _ in named])
        vb = torch.cat([gb[n].flatten() for n, _ in named])
        rows.append({"layer": layer, "cosine": sum(cosines) / len(cosines) if cosines else float("nan"),
                     "norm_a": va.norm().item(), "norm_b": vb.norm().item()})
    return rows


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
    return layer_rows(model, ga, gb)


class GradientSimilarityProbe:
    """Training callback: per-layer clean-vs-mislabeled gradient similarity on a fixed probe subset.

    Recorded at epoch 0 (initialisation) and after every epoch into ``self.rows``
    (epoch, layer, cosine, norm_clean, norm_noisy).  The probe runs in eval mode (BatchNorm running
    statistics, no dropout) so that it does not disturb training; there every example's gradient is its own, so
    the four groups (clean, mislabeled, placebo, rest of the clean; the last is part of the first and the placebo
    may overlap it) are computed from one pass over each example (:func:`group_gradients`).

    With ``placebo_seed``, each row also has ``placebo_cosine``: the same similarity between a placebo group (the
    first of :func:`placebo_positions`, as many as the probe's mislabeled examples) and the probe's clean examples
    outside the placebo.  With ``hard``, each row also has ``hard_cosine``: the same for the probe's clean
    examples of highest loss at the probe's weights (as many as its mislabeled examples, at most half of its clean
    ones) against its other clean examples (a described comparison).
    """

    def __init__(self, probe_size: int = 512, seed: int = 0, placebo_seed: int | None = None, hard: bool = False):
        self.probe_size = probe_size
        self.seed = seed
        self.placebo_seed = placebo_seed
        self.hard = hard
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
        if self.placebo_seed is not None:
            placebo = placebo_positions(tr.noisy, self.placebo_seed)
            rest = self.clean_pos.cpu()[~torch.isin(self.clean_pos.cpu(), placebo)]
            self.placebo_pos = placebo[: len(self.noisy_pos)].sort().values.to(dev)
            self.rest_pos = rest.to(dev)

    def _probe(self, run) -> None:
        groups = {"clean": self.clean_pos, "noisy": self.noisy_pos}
        if self.placebo_seed is not None:
            groups.update(placebo=self.placebo_pos, rest=self.rest_pos)
        if self.hard:
            tr = run.data.train
            c = self.clean_pos
            losses = eval_losses(run.model, tr.x[c], tr.y[c], c)
            k = min(len(self.noisy_pos), len(c) // 2)
            top = torch.zeros(len(c), dtype=torch.bool, device=c.device)
            top[torch.topk(losses.to(c.device), k).indices] = True
            self.hard_pos, self.hard_rest_pos = c[top], c[~top]
            groups.update(hard=self.hard_pos, hard_rest=self.hard_rest_pos)
        g = group_gradients(run.model, run.data.train, groups)
        rows = layer_rows(run.model, g["clean"], g["noisy"])
        placebo = layer_rows(run.model, g["placebo"], g["rest"]) if self.placebo_seed is not None else None
        hard = layer_rows(run.model, g["hard"], g["hard_rest"]) if self.hard else None
        for i, r in enumerate(rows):
            row = {"epoch": run.epoch, "layer": r["layer"], "cosine": r["cosine"], "norm_clean": r["norm_a"],
                   "norm_noisy": r["norm_b"]}
            if placebo is not None:
                row["placebo_cosine"] = placebo[i]["cosine"]
            if hard is not None:
                row["hard_cosine"] = hard[i]["cosine"]
            self.rows.append(row)

    def on_fit_start(self, run):
        self._pick(run)
        self._probe(run)

    def on_epoch_end(self, run):
        self._probe(run)


class TrainingGradientAccounting:
    """Maini et al.'s gradient accounting during training: a loss function for :func:`memlib.train.fit` that is
    also its callback.

    Called as ``loss_fn(logits, y, idx)`` on every training batch, it splits the batch's mean cross-entropy into
    the clean part and the mislabeled part (per-example losses masked by ``data.train.noisy[idx]``, each summed
    and divided by the batch size), takes each part's gradient with :func:`torch.autograd.grad` from the batch's
    one forward pass (BatchNorm in training mode, as the optimizer sees it), adds them in fp32 to the epoch's two
    sums, and returns a surrogate loss whose value is the batch loss and whose gradient is the sum of the two parts
    -- exactly the batch gradient -- so the optimizer step is unchanged and no third backward pass is needed.

    At the end of every epoch (``on_epoch_end``), one row per layer group is appended to ``self.rows`` (epoch,
    layer, cosine, norm_clean, norm_noisy); the epoch's sums are kept as ``self.last_sums`` and new ones started.

    With ``placebo_seed``, a third part is accounted the same way (a third gradient per batch, not used by the
    optimizer): the loss of the placebo group (:func:`placebo_positions`) over the batch size, summed over the epoch;
    each row's ``placebo_cosine`` is its cosine with the rest of the clean examples' sum (the clean sum minus it).
    With ``hard``, a fourth part likewise, for the difficulty-matched clean group (:func:`hard_positions` of the
    per-example losses in evaluation mode at the epoch's start, chosen anew every epoch): ``hard_cosine``, against
    the clean sum minus its own.  The gradients are taken outside autocast, from
    fp32 logits; under bf16 training the backward pass through the model follows its forward dtypes, so they are
    exactly the gradients that training used.
    """

    def __init__(self, placebo_seed: int | None = None, hard: bool = False):
        self.rows: list[dict] = []
        self.placebo_seed = placebo_seed
        self.hard = hard
        self._noisy: torch.Tensor | None = None
        self._placebo: torch.Tensor | None = None
        self._hard: torch.Tensor | None = None
        self._params: dict[str, torch.Tensor] = {}

    def on_fit_start(self, run) -> None:
        if not bool(run.data.train.noisy.any()):
            raise ValueError("gradient accounting needs mislabeled examples: set noise_rate > 0")
        self._noisy = run.data.train.noisy
        if self.placebo_seed is not None:
            self._placebo = torch.zeros_like(self._noisy, dtype=torch.bool)
            self._placebo[placebo_positions(self._noisy, self.placebo_seed).to(self._noisy.device)] = True
        self._model = run.model
        self._params = {n: p for n, p in run.model.named_parameters() if p.requires_grad}
        self._pick_hard(run)
        self._reset()

    def _pick_hard(self, run) -> None:
        """The difficulty-matched group for the next epoch: highest loss at the current weights, evaluation mode."""
        if not self.hard:
            return
        tr = run.data.train
        pos = torch.arange(len(tr), device=tr.x.device)
        losses = eval_losses(run.model, tr.x, tr.y, pos, precision=run.spec.precision)
        self._hard = torch.zeros_like(self._noisy, dtype=torch.bool)
        self._hard[hard_positions(losses, self._noisy).to(self._noisy.device)] = True

    def _reset(self) -> None:
        self.sum_clean = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self._params.items()}
        self.sum_noisy = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self._params.items()}
        self.sum_placebo = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self._params.items()}
        self.sum_hard = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self._params.items()}

    def __call__(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self._noisy is None:
            raise RuntimeError("TrainingGradientAccounting must also be passed to fit as a callback")
        per_example = F.cross_entropy(logits.float(), y, reduction="none")
        noisy = self._noisy[idx].to(per_example.dtype)
        b = len(y)
        parts = ((per_example * (1 - noisy)).sum() / b, (per_example * noisy).sum() / b)
        names, params = list(self._params), list(self._params.values())
        for mask, sums in ((self._placebo, self.sum_placebo), (self._hard, self.sum_hard)):
            if mask is None:
                continue
            part = (per_example * mask[idx].to(per_example.dtype)).sum() / b
            grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    sums[n] += g.float()
        total = []
        for part, sums in zip(parts, (self.sum_clean, self.sum_noisy)):
            grads = torch.autograd.grad(part, params, retain_graph=True, allow_unused=True)
            for n, g in zip(names, grads):
                if g is not None:
                    sums[n] += g.float()
            total.append(grads)
        surrogate = per_example.mean().detach()
        for p, gc, gn in zip(params, *total):
            g = (gc if gc is not None else 0) + (gn if gn is not None else 0)
            if isinstance(g, torch.Tensor):
                surrogate = surrogate + ((p - p.detach()) * g.detach()).sum()  # value 0, gradient g
        return surrogate

    def on_epoch_end(self, run) -> None:
        placebo = None
        if self._placebo is not None:
            rest = {n: self.sum_clean[n] - self.sum_placebo[n] for n in self.sum_clean}
            placebo = layer_rows(self._model, self.sum_placebo, rest)
        hard = None
        if self._hard is not None:
            rest = {n: self.sum_clean[n] - self.sum_hard[n] for n in self.sum_clean}
            hard = layer_rows(self._model, self.sum_hard, rest)
        for i, r in enumerate(layer_rows(self._model, self.sum_clean, self.sum_noisy)):
            row = {"epoch": run.epoch, "layer": r["layer"], "cosine": r["cosine"], "norm_clean": r["norm_a"],
                   "norm_noisy": r["norm_b"]}
            if placebo is not None:
                row["placebo_cosine"] = placebo[i]["cosine"]
            if hard is not None:
                row["hard_cosine"] = hard[i]["cosine"]
            self.rows.append(row)
        self.last_sums = {"clean": self.sum_clean, "noisy": self.sum_noisy, "placebo": self.sum_placebo,
                          "hard": self.sum_hard}
        self.last_hard = self._hard
        if run.epoch < run.spec.epochs:  # the next epoch's group (none after the last)
            self._pick_hard(run)
        self._reset()
