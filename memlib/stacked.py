"""K ResNet-9s of one shape trained side by side, as one grouped network.

A narrow ResNet-9 (width 8) makes convolutions too small to keep a CPU core busy; K of them as one network make
K-times-wider layers in the same number of kernel calls.  :class:`StackedResNet9` is that network:

* channels concatenated: model ``k`` owns channels ``[k*C, (k+1)*C)`` of every layer, and every convolution has
  ``groups=K``, so no model ever sees another's channels;
* batch norm per channel, hence per model (its statistics are over model ``k``'s own batch);
* its own batch per model: the input is ``[B, K*c_in, H, W]``, model ``k``'s images in its channel block, drawn in
  its own batch order, with its own labels; the loss is the sum of the K models' mean losses, so each model's
  gradient is its own, and SGD (momentum and weight decay act element by element) updates each exactly as its
  own optimizer would;
* dropout per model: the stacked network applies each model's own dropout modules (example-tied masks, fixed
  channel masks, standard dropout) to its channel block, with that model's example positions.

:func:`stack_state` / :func:`unstack_state` convert K plain :class:`~memlib.models.ResNet9` state dicts to the
stacked one and back (every tensor is concatenated along its first dimension).  :func:`fit_stacked` trains K
models as :func:`memlib.train.fit` trains each of them -- same batch orders, augmentation, optimizer, schedule and
per-epoch records -- and copies the weights back into them (``tests/test_stacked.py`` checks that the weights
and records match).  Callbacks and custom losses are not supported: a claim whose probes hook into the training
loop trains with ``fit``.

Seeds of one arm, or arms of one seed (any mix of seeds, labels and dropout modules with one architecture and
one schedule), in an experiment::

    datas = [load_data(cfg, s) for s in seeds]                  # each seed's own label noise
    models = [make_model(cfg, d, s, channel_dropout=make_factory(...)) for d, s in zip(datas, seeds)]
    models, histories = fit_stacked(models, datas, train_spec(cfg), seeds)   # K plain ResNet9s, K fit histories
"""
from __future__ import annotations

import math
import time
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .data import DataBundle, augment_batch
from .device import autocast, resolve_precision
from .models import Identity, ResNet9, Residual, conv_bn
from .seeds import derive
from .specs import TrainSpec
from .train import EVAL_BATCH, batch_orders, make_optimizer, split_metrics

DROP_SITES = ("drop1", "drop2", "drop3", "drop4", "drop5", "drop6")


def _is_counter(name: str) -> bool:
    return name.endswith("num_batches_tracked")


def _own(name: str) -> bool:
    """A tensor of the network itself (not of a dropout module, which the stacked network shares)."""
    return name.split(".", 1)[0] not in DROP_SITES


def stack_state(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One stacked state dict from K ResNet-9 state dicts (dropout modules' buffers left out)."""
    out = {}
    for name in (n for n in states[0] if _own(n)):
        ts = [s[name] for s in states]
        if _is_counter(name):  # batch norm's step counter: the same for models trained together
            out[name] = ts[0].clone()
        else:
            out[name] = torch.cat(ts, 0)
    return out


def unstack_state(state: dict[str, torch.Tensor], k: int) -> list[dict[str, torch.Tensor]]:
    """The K ResNet-9 state dicts (without dropout buffers) inside a stacked state dict."""
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(k)]
    for name, t in state.items():
        if not _own(name) or name.startswith("drops."):
            continue
        parts = [t] * k if _is_counter(name) else t.chunk(k, 0)
        for d, p in zip(out, parts):
            d[name] = p.clone()
    return out


class StackedResNet9(nn.Module):
    """K ResNet-9s (:class:`memlib.models.ResNet9`) as one network; build it with :meth:`from_models`.

    ``forward(x, idx)`` takes ``x`` of shape ``[B, K*c_in, H, W]`` (model k's images in channels
    ``[k*c_in, (k+1)*c_in)``) and ``idx`` ``[B, K]`` (each model's example positions, for example-tied dropout)
    and returns logits ``[B, K, classes]``.
    """

    def __init__(self, k: int, width: int = 64, in_channels: int = 3, num_classes: int = 10,
                 scale: float = 0.2, drops: Sequence[Sequence[nn.Module]] | None = None):
        super().__init__()
        self.k, self.width, self.num_classes, self.scale = k, width, num_classes, scale
        w = width
        self.conv1 = conv_bn(k * in_channels, k * w, k=3, groups=k)
        self.conv2 = conv_bn(k * w, k * 2 * w, k=5, stride=2, padding=2, groups=k)
        self.res1 = Residual(k * 2 * w, groups=k)
        self.conv3 = nn.Sequential(conv_bn(k * 2 * w, k * 4 * w, k=3, groups=k), nn.MaxPool2d(2))
        self.res2 = Residual(k * 4 * w, groups=k)
        self.conv4 = conv_bn(k * 4 * w, k * 2 * w, k=3, padding=0, groups=k)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(2 * w, k * num_classes, bias=False)  # weight: the K heads' [classes, 2w], stacked
        # drops[site][k]: model k's dropout module at that site (None: no site has one)
        self.drops = None
        if drops is not None and any(not isinstance(m, Identity) for site in drops for m in site):
            self.drops = nn.ModuleList(nn.ModuleList(site) for site in drops)

    @classmethod
    def from_models(cls, models: Sequence[ResNet9]) -> "StackedResNet9":
        """The K models as one network: their weights and batch-norm statistics copied in, their dropout modules
        shared (not copied)."""
        if not models:
            raise ValueError("need at least one model to stack")
        first = models[0]
        for m in models:
            if not isinstance(m, ResNet9):
                raise ValueError(f"only ResNet9 models can be stacked this way, got {type(m).__name__}")
            if m.conv1[0].weight.shape != first.conv1[0].weight.shape or m.fc.weight.shape != first.fc.weight.shape \
                    or m.scale != first.scale:
                raise ValueError("stacked models must share width, input channels, classes and logit scale")
        c_in = first.conv1[0].in_channels
        width = first.conv1[0].out_channels
        drops = [[getattr(m, site) for m in models] for site in DROP_SITES]
        net = cls(len(models), width, c_in, first.fc.out_features, first.scale, drops)
        net.to(first.fc.weight.device)
        missing, unexpected = net.load_state_dict(stack_state([m.state_dict() for m in models]), strict=False)
        if unexpected or any(not n.startswith("drops.") for n in missing):  # only the shared dropout modules
            raise ValueError(f"stacked ResNet-9 does not match the models: missing {missing}, unexpected {unexpected}")
        return net

    def unstack_into(self, models: Sequence[ResNet9]) -> None:
        """Copy each model's weights and batch-norm statistics back into ``models``."""
        for m, part in zip(models, unstack_state(self.state_dict(), self.k)):
            m.load_state_dict({**m.state_dict(), **{n: t.to(m.fc.weight.device) for n, t in part.items()}})

    def _drop(self, site: int, x: torch.Tensor, idx: torch.Tensor | None) -> torch.Tensor:
        if self.drops is None:
            return x
        blocks = x.chunk(self.k, 1)
        return torch.cat([d(b, None if idx is None else idx[:, j]) for j, (d, b) in
                          enumerate(zip(self.drops[site], blocks))], 1)

    def forward(self, x: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
        x = self._drop(0, self.conv1(x), idx)
        x = self._drop(1, self.conv2(x), idx)
        x = self._drop(2, self.res1(x), idx)
        x = self._drop(3, self.conv3(x), idx)
        x = self._drop(4, self.res2(x), idx)
        x = self._drop(5, self.conv4(x), idx)
        h = self.pool(x).flatten(1).view(len(x), self.k, 2 * self.width)
        w = self.fc.weight.view(self.k, self.num_classes, 2 * self.width)
        return torch.einsum("bkc,koc->bko", h, w) * self.scale


def _stack_inputs(xs: Sequence[torch.Tensor], channels_last: bool) -> torch.Tensor:
    x = torch.cat(list(xs), 1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@torch.inference_mode()
def predict_stacked(net: StackedResNet9, xs: Sequence[torch.Tensor], batch_size: int | None = None,
                    precision: str = "fp32", with_idx: bool = True) -> torch.Tensor:
    """Logits ``[N, K, classes]`` (fp32) of the K models, model k on ``xs[k]`` (all of length N), in eval mode, in
    batches (default: :func:`memlib.train.predict`'s batch shared by the K models).  With ``with_idx`` each
    example's position is passed as its index (for example-tied dropout's ``own`` mode)."""
    was = net.training
    net.eval()
    dev = xs[0].device
    batch_size = batch_size or max(64, EVAL_BATCH.get(dev.type, 2048) // net.k)
    n = len(xs[0])
    out = []
    for i in range(0, n, batch_size):
        xb = _stack_inputs([x[i:i + batch_size] for x in xs], True)
        ib = torch.arange(i, i + len(xb), device=dev)[:, None].expand(-1, net.k) if with_idx else None
        with autocast(dev, precision):
            out.append(net(xb, ib).float())
    net.train(was)
    return torch.cat(out) if out else torch.empty(0, net.k, net.num_classes)


def evaluate_stacked(net: StackedResNet9, datas: Sequence[DataBundle], precision: str = "fp32") -> list[dict]:
    """:func:`memlib.train.evaluate`'s records for each of the K models, all evaluated in one pass per split."""
    tr = predict_stacked(net, [d.train.x for d in datas], precision=precision).argmax(2)
    te = predict_stacked(net, [d.test.x for d in datas], precision=precision, with_idx=False).argmax(2)
    out = []
    for j, d in enumerate(datas):
        rec = split_metrics(tr[:, j], d.train, prefix="train_")
        rec["train_acc"] = (tr[:, j] == d.train.y).float().mean().item()
        rec["test_acc"] = (te[:, j] == d.test.y).float().mean().item()
        out.append(rec)
    return out


def _check(models, datas, seeds) -> None:
    k = len(models)
    if len(datas) != k or len(seeds) != k:
        raise ValueError(f"need one data bundle and one seed per model: {k} models, {len(datas)} data bundles, "
                         f"{len(seeds)} seeds")
    t0 = datas[0]
    for d in datas:
        if len(d.train) != len(t0.train) or len(d.test) != len(t0.test) or d.image_shape != t0.image_shape:
            raise ValueError("models trained side by side need training and test sets of equal size and image "
                             f"shape; got {len(d.train)}/{len(d.test)} {d.image_shape} against "
                             f"{len(t0.train)}/{len(t0.test)} {t0.image_shape}")
    if len(t0.train) == 0:
        raise ValueError("cannot train on an empty training set")


def fit_stacked(models: Sequence[ResNet9], data: DataBundle | Sequence[DataBundle], spec: TrainSpec,
                seeds: Sequence[int]) -> tuple[list[ResNet9], list[pd.DataFrame]]:
    """Train ``models[k]`` on ``data`` (or ``data[k]``: its own labels, noise or examples) with batch order and
    augmentation of ``seeds[k]``, all K at once; ``spec``'s seed is not used.

    Every model follows :func:`memlib.train.fit` with ``spec.replace(seed=seeds[k])`` step for step.  Returns the
    models (trained in place) and one history per model with ``fit``'s columns; a history's ``seconds`` and its
    attrs ``train_seconds`` are the stack's wall time, ``images_per_second`` counts the images of all K models,
    ``stacked`` is K.
    """
    k_models = len(models)
    datas = [data] * k_models if isinstance(data, DataBundle) else list(data)
    _check(models, datas, seeds)
    device = datas[0].train.x.device
    for m in models:
        m.to(device)
    net = StackedResNet9.from_models(models).to(memory_format=torch.channels_last)
    prec = resolve_precision(spec.precision, device)
    n = len(datas[0].train)
    steps_per_epoch = math.ceil(n / spec.batch_size)
    optimizer, sched = make_optimizer(net.parameters(), spec, steps_per_epoch * spec.epochs)
    orders = [batch_orders(int(s), n) for s in seeds]
    gens = [torch.Generator(device=device).manual_seed(derive(int(s), "augmentation")) for s in seeds] \
        if spec.augment else None
    xs, ys = [d.train.x for d in datas], torch.stack([d.train.y for d in datas], 1)  # ys: [n, K]
    pad = 4 if xs[0].shape[-1] >= 32 else 2

    start = evaluate_stacked(net, datas, prec) if spec.eval_at_start else [{}] * k_models
    histories: list[list[dict]] = [[{"epoch": 0, "train_loss": float("nan"), "lr": 0.0, "seconds": 0.0, **r}]
                                   for r in start]
    t_start = time.perf_counter()
    for epoch in range(1, spec.epochs + 1):
        net.train()
        perms = torch.stack([next(o) for o in orders], 1).to(device)  # [n, K]
        total = torch.zeros(k_models, device=device)
        t0 = time.perf_counter()
        for s in range(steps_per_epoch):
            ib = perms[s * spec.batch_size:(s + 1) * spec.batch_size]  # [B, K]
            blocks = [x[ib[:, j]] for j, x in enumerate(xs)]
            if gens is not None:
                blocks = [augment_batch(b, pad=pad, flip=d.mirror_invariant, generator=g)
                          for b, d, g in zip(blocks, datas, gens)]
            xb, yb = _stack_inputs(blocks, True), ys.gather(0, ib)
            with autocast(device, prec):
                logits = net(xb, ib)
            b = len(ib)
            losses = F.cross_entropy(logits.float().reshape(b * k_models, -1), yb.reshape(-1),
                                     reduction="none").view(b, k_models).mean(0)  # [K]: each model's mean loss
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            sched.step()
            total += losses.detach() * b
        train_loss = (total / n).tolist()
        bad = [j for j, v in enumerate(train_loss) if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"the training loss of stacked model(s) {bad} became non-finite in epoch "
                                     f"{epoch}: lower lr (now {spec.lr})")
        seconds = time.perf_counter() - t0
        evals = evaluate_stacked(net, datas, prec) if epoch % spec.eval_every == 0 or epoch == spec.epochs \
            else [{}] * k_models
        for hist, loss, ev in zip(histories, train_loss, evals):
            hist.append({"epoch": epoch, "train_loss": loss, "lr": optimizer.param_groups[0]["lr"],
                         "seconds": seconds, **ev})
    wall = time.perf_counter() - t_start
    net.unstack_into(models)
    out = []
    for hist in histories:
        df = pd.DataFrame(hist)
        df.attrs.update(train_seconds=wall, precision=prec, stacked=k_models,
                        images_per_second=k_models * n * spec.epochs / max(1e-9, df["seconds"].sum()))
        out.append(df)
    return list(models), out
