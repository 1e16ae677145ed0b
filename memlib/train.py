"""The one training loop.

Whole datasets live on the device as tensors (small images fit), batches are index slices, so there is
no DataLoader.  Claims differ by the model, the loss and *callbacks*, not by copies of this loop.

Callbacks implement any of ``on_fit_start(run)``, ``on_step_end(run)``, ``on_epoch_end(run)`` and
``on_fit_end(run)``; ``on_fit_start`` and ``on_epoch_end`` may return a dict that is merged into the
epoch's record (epoch 0 is the untrained model).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from tqdm.std import tqdm

from .data import DataBundle, Split, augment_batch
from .device import DEFAULT_WORKLOAD, Workload, autocast, resolve_precision
from .models import MLP, ResNet9, SmallCNN
from .seeds import derive
from .specs import TrainSpec

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Run:
    """What callbacks see: the model, optimizer, data and counters of the current fit."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    data: DataBundle
    spec: TrainSpec
    device: torch.device
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    loss: float = float("nan")
    batch_idx: torch.Tensor | None = None
    history: list = field(default_factory=list)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.spec.epochs


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def batch_orders(seed: int, n: int) -> Iterator[torch.Tensor]:
    """The batch order of a training with ``seed`` over ``n`` examples: one permutation per epoch, forever.

    The one batch-order generator of :func:`fit` and of the stacked trainer (:mod:`memlib.multitrain`), so that
    a model trained either way sees the same batches.
    """
    g = torch.Generator().manual_seed(derive(seed, "batch order"))
    while True:
        yield torch.randperm(n, generator=g)


def lr_lambda(spec: TrainSpec, total_steps: int) -> Callable[[int], float]:
    warm = int(spec.warmup_frac * total_steps)

    def f(step: int) -> float:
        if spec.schedule == "constant":
            return 1.0
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def make_optimizer(params, spec: TrainSpec, total_steps: int, optimizer: torch.optim.Optimizer | None = None,
                   start_step: int = 0):
    """SGD (plain momentum unless ``spec.nesterov``) and its per-iteration warm-up/cosine schedule: the one
    optimizer set-up of :func:`fit` and of the stacked trainer.  The schedule starts at iteration ``start_step``
    of the ``total_steps``-iteration schedule (a resumed training)."""
    if optimizer is None:
        optimizer = torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                                    nesterov=spec.nesterov and spec.momentum > 0)
    f = lr_lambda(spec, total_steps)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: f(step + start_step))


def workload_of(model: nn.Module, data: DataBundle, batch_size: int) -> Workload:
    """The training shape of ``model`` on ``data`` at ``batch_size``, as the precision probe times it (a model
    that is none of :mod:`memlib.models`' networks: :data:`memlib.device.DEFAULT_WORKLOAD`)."""
    for cls, name, width in ((ResNet9, "resnet9", lambda m: m.conv1[0].out_channels),
                             (SmallCNN, "smallcnn", lambda m: m.conv1[0].out_channels),
                             (MLP, "mlp", lambda m: m.fc1.out_features)):
        if isinstance(model, cls):
            return Workload(name, int(width(model)), tuple(data.image_shape), int(data.num_classes), int(batch_size))
    return DEFAULT_WORKLOAD


def channels_last_ok(x: torch.Tensor) -> bool:
    """Image batches (N, C, H, W) run faster in channels_last memory format on CPU and GPU alike."""
    return x.dim() == 4


# Evaluation batch: on a CPU, 512 images keep a narrow ResNet-9's activations in cache (ResNet-9 w16, one thread:
# 3,660 img/s at 512 against 2,380 at 2,048; w8: 8,620 against 7,140); a GPU wants large batches.
EVAL_BATCH = {"cpu": 512}


@contextmanager
def folded_batchnorm(model: nn.Module):
    """``model`` in evaluation mode with every BatchNorm2d that directly follows a Conv2d in an ``nn.Sequential``
    folded into that convolution (``w * gamma / sqrt(var + eps)``, and a bias), restored on exit.

    In evaluation mode BatchNorm is an affine map of the running statistics, so the folded network computes the
    same function with one memory-bound pass less per block: ResNet-9 width 8 evaluated 1.4x faster at one thread;
    its logits moved by about 3e-8 (float rounding).  Convolutions with hooks are left alone."""
    swaps = []
    try:
        for seq in model.modules():
            if not isinstance(seq, nn.Sequential):
                continue
            for i in range(len(seq) - 1):
                conv, bn = seq[i], seq[i + 1]
                if (type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and not bn.training
                        and bn.running_mean is not None and bn.running_var is not None
                        and not (conv._forward_hooks or conv._forward_pre_hooks or bn._forward_hooks
                                 or bn._forward_pre_hooks)):
                    fused = fuse_conv_bn_eval(conv, bn)
                    swaps.append((seq, i, conv, bn))
                    seq[i], seq[i + 1] = fused, nn.Identity()
        yield model
    finally:
        for seq, i, conv, bn in reversed(swaps):
            seq[i], seq[i + 1] = conv, bn


@torch.inference_mode()
def predict(model: nn.Module, x: torch.Tensor, idx: torch.Tensor | None = None, batch_size: int | None = None,
            precision: str = "fp32") -> torch.Tensor:
    """Logits of ``model`` in eval mode (restores the previous mode; BatchNorm folded into the convolution before
    it, :func:`folded_batchnorm`), in batches (default :data:`EVAL_BATCH` for the device, else 2,048), as fp32.

    ``precision`` is ``fp32``, ``bf16`` or ``auto`` (resolved for ``x``'s device, see :mod:`memlib.device`).
    """
    was = model.training
    model.eval()
    dev = x.device
    batch_size = batch_size or EVAL_BATCH.get(dev.type, 2048)
    prec = resolve_precision(precision, dev)
    cl = channels_last_ok(x)
    out = []
    with folded_batchnorm(model):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            if cl:
                xb = xb.contiguous(memory_format=torch.channels_last)
            ib = None if idx is None else idx[i:i + batch_size]
            with autocast(dev, prec):
                out.append(model(xb, idx=ib).float())
    model.train(was)
    return torch.cat(out) if out else torch.empty(0)


def split_metrics(pred: torch.Tensor, split: Split, prefix: str = "") -> dict[str, float]:
    """Accuracy on clean examples, and for mislabeled ones: predicted as given label / as true label."""
    clean = ~split.noisy
    out = {f"{prefix}clean_acc": (pred[clean] == split.y[clean]).float().mean().item() if clean.any() else float("nan")}
    if split.noisy.any():
        n = split.noisy
        out[f"{prefix}noisy_acc"] = (pred[n] == split.y[n]).float().mean().item()  # memorized
        out[f"{prefix}noisy_true"] = (pred[n] == split.y_true[n]).float().mean().item()  # early-learned
    else:
        out[f"{prefix}noisy_acc"] = float("nan")
        out[f"{prefix}noisy_true"] = float("nan")
    return out


def evaluate(model: nn.Module, data: DataBundle, precision: str = "fp32") -> dict[str, float]:
    """Per-group training accuracies (in eval mode) and test accuracy."""
    tr = data.train
    pos = torch.arange(len(tr), device=tr.x.device)
    pred = predict(model, tr.x, pos, precision=precision).argmax(1)
    out = split_metrics(pred, tr, prefix="train_")
    out["train_acc"] = (pred == tr.y).float().mean().item()
    tpred = predict(model, data.test.x, None, precision=precision).argmax(1)
    out["test_acc"] = (tpred == data.test.y).float().mean().item()
    return out


def cross_entropy(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _call(callbacks, hook: str, run: Run) -> dict:
    rec: dict = {}
    for cb in callbacks:
        fn = getattr(cb, hook, None)
        if fn is not None:
            r = fn(run)
            if isinstance(r, dict):
                rec.update(r)
    return rec


def fit(model: nn.Module, data: DataBundle, spec: TrainSpec, callbacks: Iterable = (),
        loss_fn: LossFn | None = None, device: torch.device | str | None = None,
        optimizer: torch.optim.Optimizer | None = None, start_step: int = 0) -> pd.DataFrame:
    """Train ``model`` on ``data.train`` with SGD + warm-up/cosine, returning one record per epoch.

    ``start_step = k`` resumes the training at iteration ``k`` (open_lth's ``start_step``, used when rewinding a
    lottery ticket to ``k``): only the iterations ``k+1 .. T`` of the ``T = spec.epochs`` epochs run, with the
    learning rate and the batches those iterations have in a training from 0 (same ``spec.seed``); the optimizer
    state (momentum) starts empty, and augmentation draws start afresh.  Epochs keep the full training's
    numbers: the first record is the model as given, at epoch ``k // steps_per_epoch``.

    Records hold ``epoch``, ``train_loss``, ``lr``, ``seconds`` and, every ``eval_every`` epochs (and
    at epoch 0 if ``eval_at_start``), ``train_clean_acc``, ``train_noisy_acc`` (mislabeled predicted as the given wrong label),
    ``train_noisy_true`` (mislabeled predicted as their true label), ``train_acc`` and ``test_acc``;
    plus whatever callbacks return.
    """
    device = torch.device(device) if device is not None else data.train.x.device
    callbacks = list(callbacks)
    loss_fn = loss_fn or cross_entropy
    model.to(device)
    prec = resolve_precision(spec.precision, device, workload_of(model, data, spec.batch_size),
                             threads=torch.get_num_threads())
    spec = spec.replace(precision=prec)  # callbacks (and their evaluations) see what auto resolved to
    channels_last = channels_last_ok(data.train.x)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    n = len(data.train)
    if n == 0:
        raise ValueError("cannot train on an empty training set")
    steps_per_epoch = math.ceil(n / spec.batch_size)
    total_steps = steps_per_epoch * spec.epochs
    if not 0 <= start_step < total_steps:
        raise ValueError(f"start_step must be in [0, {total_steps}) (the training has {spec.epochs} epochs x "
                         f"{steps_per_epoch} iterations), got {start_step}")
    optimizer, sched = make_optimizer(model.parameters(), spec, total_steps, optimizer, start_step)
    first_epoch, skip = divmod(start_step, steps_per_epoch)  # epochs done, iterations done in the next one
    run = Run(model, optimizer, data, spec, device, steps_per_epoch, epoch=first_epoch, step=start_step)
    orders = batch_orders(spec.seed, n)
    for _ in range(first_epoch):  # the batch orders of the epochs before start_step
        next(orders)
    ga = torch.Generator(device=device).manual_seed(derive(spec.seed, "augmentation")) if spec.augment else None

    rec = {"epoch": first_epoch, "train_loss": float("nan"), "lr": 0.0, "seconds": 0.0}
    if spec.eval_at_start:
        rec.update(evaluate(model, data, prec))
    rec.update(_call(callbacks, "on_fit_start", run))
    run.history.append(rec)
    x_all, y_all = data.train.x, data.train.y
    bar = tqdm(range(first_epoch + 1, spec.epochs + 1), desc=spec.desc, disable=not spec.progress, leave=False)
    t_start = time.perf_counter()
    trained = 0
    for epoch in bar:
        run.epoch = epoch
        model.train()
        perm = next(orders).to(device)
        total, count = torch.zeros((), device=device), 0
        t0 = time.perf_counter()
        for s in range(skip if epoch == first_epoch + 1 else 0, steps_per_epoch):
            ib = perm[s * spec.batch_size:(s + 1) * spec.batch_size]
            xb, yb = x_all[ib], y_all[ib]
            if spec.augment:
                xb = augment_batch(xb, pad=4 if xb.shape[-1] >= 32 else 2, flip=data.mirror_invariant, generator=ga)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device, prec):
                logits = model(xb, idx=ib)
            loss = loss_fn(logits.float(), yb, ib)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            sched.step()
            run.step += 1
            run.batch_idx = ib
            total += loss.detach() * len(ib)
            count += len(ib)
            if callbacks:
                run.loss = loss.item()
                _call(callbacks, "on_step_end", run)
        # Checked once per epoch (a non-finite batch loss makes the sum non-finite), not per step: a per-step
        # check would synchronise with the GPU at every iteration.
        train_loss = (total / count).item()
        trained += count
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} in epoch {epoch}: lower lr "
                                     f"(now {spec.lr})")
        rec = {"epoch": epoch, "train_loss": train_loss, "lr": optimizer.param_groups[0]["lr"],
               "seconds": time.perf_counter() - t0}
        if epoch % spec.eval_every == 0 or epoch == spec.epochs:
            rec.update(evaluate(model, data, prec))
        rec.update(_call(callbacks, "on_epoch_end", run))
        run.history.append(rec)
        bar.set_postfix(loss=f"{rec['train_loss']:.3f}", test=f"{rec.get('test_acc', float('nan')):.3f}")
    _call(callbacks, "on_fit_end", run)
    hist = pd.DataFrame(run.history)
    hist.attrs["train_seconds"] = time.perf_counter() - t_start
    hist.attrs["images_per_second"] = trained / max(1e-9, hist["seconds"].sum())
    hist.attrs["precision"] = prec
    return hist
