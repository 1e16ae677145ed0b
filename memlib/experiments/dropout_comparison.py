"""Claim 2: standard dropout, a fixed sparse network and example-tied dropout (Maini et al. 2023, Table 3).

Per seed, four models are trained from the same data, label noise, initialisation and batch order with
:func:`memlib.train.fit`, differing only in the channel-dropout module at the model's dropout sites
(:mod:`memlib.dropout`):

* ``dropout``: standard element-wise dropout with probability ``dropout_p`` (training only);
* ``sparse``: a fixed random ``sparsity`` fraction of channels zeroed at training and test time;
* ``example_tied``: ``p_gen`` of the channels always active, each training example activating its own
  ``p_mem`` fraction of the remaining memorization channels;
* ``untied``, the matched control of ``example_tied`` (:class:`memlib.dropout.UntiedChannelDropout`): the same
  generalization and memorization channels, each memorization channel active with probability ``p_mem``, but drawn
  afresh for every example at every step, so that no channel is tied to an example.  It differs from
  ``example_tied`` in the tying only, and is evaluated exactly as it is.

The dropout sites (``dropout_sites``) are by default the six of the authors' ``ResNet9_dropout`` (after the first
two convolutional blocks, both residual blocks, the third and the fourth convolutional block; never after the linear
layer): our reading of the public code, which wires example-tied dropout only into its ResNet-18/50 (after layer2
and layer3); ``residual`` is that other reading, after ResNet-9's two residual blocks only.

Per seed, a fourth part estimates each training example's held-out consistency score (a C-score estimate, Jiang et
al. 2021; :mod:`memlib.probes.consistency`): ``cscore_models`` small MLPs, in rounds of ``cscore_folds``-fold
cross-validation over the training set (with its labels as given), and the score of an example is the accuracy on
it of the models that did not see it.

After training, every model is evaluated on the training and test sets; the example-tied model in each of its
evaluation modes (``drop``: memorization channels dropped, the paper's; ``own``: each training example with its
own training-time mask, i.e. memorization channels kept; ``all``; ``mean``), the untied control in ``drop`` (the
deciding one, exactly as example-tied dropout's) and ``mean`` (every channel, memorization channels scaled by
``p_mem``: its expected training-time network, the analogue of ``own`` for masks that are not tied to examples).
The standard-dropout model also records, every ``eval_every`` epochs, each training example's margin (logit of the
given label minus the largest other logit, in evaluation mode); its mean over training (the area under the margin)
measures how hard an example is to fit.

Tables:

* ``accuracy``: one row per seed, method and evaluation mode (``eval`` for the baselines; example-tied dropout's
  modes; ``drop`` and ``mean`` for the untied control): ``train_clean_acc``, ``train_noisy_acc`` (mislabeled
  predicted as the given, wrong label), ``train_noisy_true``, ``test_acc``;
* ``history``: the per-epoch fit records of every training (``seed``, ``method`` columns added);
* ``examples``: one row per seed and training example: given and true label, noise flag, the example-tied
  model's predictions with memorization channels dropped / kept, the untied control's with them dropped / at their
  expected scale (``untied_pred_drop``, ``untied_pred_mean``), the standard-dropout model's prediction
  (``dropout_pred``), final loss, final margin and area under the margin, the held-out consistency score
  (``cscore``, ``cscore_models``), and two flags: ``forgotten`` (:func:`forgotten_mask`) and ``untied_forgotten``
  (:func:`untied_forgotten_mask`);
* ``grid``: up to ``grid_size`` clean training examples of the first seed that are forgotten when the
  memorization channels are dropped, least consistent first: one row per image (``image``: its row in the
  ``grid`` array; seed, position, index, labels, prediction with memorization channels dropped, margins,
  consistency score).

Arrays:

* ``grid``: the images of the ``grid`` table, ``N x C x H x W`` uint8 pixels in 0-255 (divide by 255 to display).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..config import (CPU_BOOK, ConfigError, Param, check_flips_labels, check_fraction,
                      check_nonneg, check_positive, check_rate, common, paper_values)
from ..device import describe
from ..dropout import make_factory, set_etd_mode
from ..probes.consistency import consistency_scores
from ..result import Result
from ..store import Store
from ..specs import MAINI_2023
from ..train import fit, predict, split_metrics
from .base import concat, merge_scalars, run_parts, seed_list
from .setup import load_data, make_model, part_config, train_spec

NAME = "dropout_comparison"
NOTEBOOK = "02_dropout_comparison"
TITLE = "Example-tied dropout localizes memorization"

DROPOUT, SPARSE, EXAMPLE_TIED, UNTIED = "dropout", "sparse", "example_tied", "untied"
METHODS = (DROPOUT, SPARSE, EXAMPLE_TIED, UNTIED)
CONSISTENCY = "consistency"  # the per-seed part that estimates held-out consistency scores
# Evaluation modes: "eval" for the baselines; example-tied dropout's modes (memlib.dropout.ETD_MODES); the untied
# control's ("own" needs masks tied to examples).
EVAL, DROP, OWN, ALL, MEAN = "eval", "drop", "own", "all", "mean"
ETD_EVAL_MODES = (DROP, OWN, ALL, MEAN)
UNTIED_EVAL_MODES = (DROP, MEAN)
# Where the dropout modules sit in ResNet-9 (sites numbered in forward order, memlib.models.ResNet9): all six of the
# authors' ResNet9_dropout, or only after the two residual blocks (as their ResNet-18/50 wiring, after layer2 and
# layer3).  Smaller models use all their sites.
ALL_SITES, RESIDUAL_SITES = "all", "residual"
SITES = {ALL_SITES: None, RESIDUAL_SITES: (2, 4)}


PARAMS = common("data", "model", "training", "run") + [
    Param("p_gen", float, "example-tied dropout: fraction of generalization channels (always active)",
          check=check_fraction),
    Param("p_mem", float, "example-tied dropout: fraction of memorization channels each example activates (the "
          "untied control: each example at each step)", check=check_fraction),
    Param("dropout_p", float, "standard dropout: probability of zeroing a unit during training", check=check_rate),
    Param("sparsity", float, "sparse network: fraction of channels zeroed for every example, in training and test",
          check=check_rate),
    Param("dropout_sites", str, "ResNet-9 sites of the dropout modules: 'all' six of the authors' ResNet9_dropout, "
          "or 'residual' (after the two residual blocks only, as their ResNet-18/50 wiring)", choices=tuple(SITES)),
    Param("eval_every", int, "evaluate (accuracies, standard-dropout margins) every n epochs", check=check_positive),
    Param("grid_size", int, "most forgotten clean examples kept for the image grid", check=check_nonneg),
    Param("cscore_models", int, "held-out consistency score: number of small models (one random subset each)",
          check=check_positive),
    Param("cscore_folds", int, "held-out consistency score: folds per cross-validation round (2 = train on halves)",
          check=check_positive),
    Param("cscore_width", int, "held-out consistency score: hidden units of each small MLP", check=check_positive),
    Param("cscore_epochs", int, "held-out consistency score: training epochs of each small MLP", check=check_positive),
]

_paper = paper_values(MAINI_2023, dataset="cifar10", model="resnet9", width=64, noise_rate=0.1, n_train=0, n_test=0,
                      seed=0, seeds=3, device="auto", progress=True, p_gen=0.4, p_mem=0.2, dropout_p=0.4,
                      dropout_sites=ALL_SITES, sparsity=0.4, eval_every=5, grid_size=32, cscore_models=32,
                      cscore_folds=2, cscore_width=512, cscore_epochs=30)
PROFILES = {
    "smoke": {**_paper, **CPU_BOOK, "seed_stages": False,
              "dataset": "mnist5k", "model": "mlp", "width": 64, "n_train": 400, "n_test": 200,
              "epochs": 3, "batch_size": 100, "lr": 0.05, "seeds": 1, "eval_every": 1, "grid_size": 8,
              "progress": False, "cscore_models": 4, "cscore_width": 32, "cscore_epochs": 2},
    # Capacity and training length from the calibration record (calibration/02_dropout_comparison.json; memlib
    # calibrate 02): width 16 on 1,000 images, batch 32, 40 epochs (1,250 optimizer steps), standard dropout p = 0.1
    # at the six sites -- the cheapest setting at which standard dropout and example-tied dropout with its own masks
    # fit the mislabeled examples in both calibration seeds (standard dropout: 97-99%; 35 epochs: 84%, 30: 72%; p = 0.2
    # at 35 epochs: 27%).  Hand trials before it: width 8,
    # 500 images, batch 128, 100 epochs (400 steps), p = 0.4 fitted 5-7%.
    "quick": {**_paper, **CPU_BOOK, "dataset": "fashion-mnist", "model": "resnet9", "width": 16, "n_train": 1000,
              "n_test": 1000, "epochs": 40, "batch_size": 32, "lr": 0.05, "dropout_p": 0.1, "seeds": 3,
              "eval_every": 10, "grid_size": 32, "cscore_models": 16, "cscore_width": 256, "cscore_epochs": 20},
    "paper": _paper,
}



def validate(values: dict) -> None:
    check_flips_labels(values, NAME)  # the verdict compares clean with mislabeled training accuracy
    if values["cscore_folds"] < 2 or values["cscore_models"] % values["cscore_folds"]:
        raise ConfigError(f"cscore_models ({values['cscore_models']}) must be a multiple of cscore_folds "
                          f"({values['cscore_folds']}), which must be at least 2")
    if values["dropout_sites"] != ALL_SITES and values["model"] != "resnet9":
        raise ConfigError(f"dropout_sites={values['dropout_sites']!r} names ResNet-9 sites; with model="
                          f"{values['model']!r} use dropout_sites='all'")
    w, p_gen = values["width"], values["p_gen"]
    # The narrowest dropout site of every model has ``width`` channels.
    if p_gen < 1.0 and max(1, int(p_gen * w)) >= w:
        raise ConfigError(f"width {w} is too narrow for p_gen={p_gen}: the narrowest layer would have no "
                          f"memorization channels; use a larger width or a smaller p_gen")


def factory(cfg, method: str, n_examples: int, seed: int):
    sites = SITES[cfg.dropout_sites]
    if method == DROPOUT:
        return make_factory("dropout", p=cfg.dropout_p, sites=sites)
    if method == SPARSE:
        return make_factory("sparse", sparsity=cfg.sparsity, seed=seed, sites=sites)
    if method == EXAMPLE_TIED:
        return make_factory("example_tied", p_gen=cfg.p_gen, p_mem=cfg.p_mem, n_examples=n_examples, seed=seed,
                            sites=sites)
    if method == UNTIED:
        return make_factory("untied", p_gen=cfg.p_gen, p_mem=cfg.p_mem, sites=sites)
    raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Logit of label ``y`` minus the largest other logit (negative = misclassified)."""
    given = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return given - other


class MarginRecorder:
    """Callback: every ``every`` epochs, each training example's margin on its given label (eval mode)."""

    def __init__(self, every: int):
        self.every = every
        self.margins: list[torch.Tensor] = []

    def on_epoch_end(self, run):
        if run.epoch % self.every == 0 or run.epoch == run.spec.epochs:
            tr = run.data.train
            pos = torch.arange(len(tr), device=tr.x.device)
            self.margins.append(margins(predict(run.model, tr.x, pos, precision=run.spec.precision), tr.y).cpu())

    def area(self) -> torch.Tensor:
        return torch.stack(self.margins).mean(0)


def _accuracy_row(model, data, seed, method, mode, test: bool = True) -> dict:
    """Accuracies of one trained model in one evaluation mode, measured in fp32."""
    tr = data.train
    pos = torch.arange(len(tr), device=tr.x.device)
    logits = predict(model, tr.x, pos, precision="fp32")
    row = {"seed": seed, "method": method, "mode": mode, **split_metrics(logits.argmax(1), tr, prefix="train_")}
    row["test_acc"] = (float((predict(model, data.test.x, None, precision="fp32").argmax(1) == data.test.y)
                             .float().mean()) if test else float("nan"))
    return row, logits


def _consistency(cfg) -> Result:
    seed = cfg.seed  # the part's own Config: its seed is this part's
    data = load_data(cfg, seed)
    tr = data.train
    # the small models train like the compared ones (batch, lr, schedule), for their own epochs, unaugmented
    spec = train_spec(cfg, epochs=cfg.cscore_epochs, seed=seed, progress=False, augment=False)
    t0 = time.perf_counter()
    score, count, _ = consistency_scores(tr.x, tr.y, k=cfg.cscore_models, folds=cfg.cscore_folds, model="mlp",
                                         width=cfg.cscore_width, spec=spec, seed=seed, num_classes=data.num_classes)
    wall = time.perf_counter() - t0
    ex = pd.DataFrame({"seed": seed, "position": np.arange(len(tr)), "cscore": score.numpy(),
                       "cscore_models": count.numpy()})
    return Result({"examples": ex}, {"seed": seed, "method": CONSISTENCY, "train_seconds": wall,
                                     "n_train": len(tr), "n_noisy": int(tr.noisy.sum()), "data_source": data.source,
                                     "device": describe(tr.x.device)})


def _one(cfg, method: str) -> Result:
    seed = cfg.seed  # the part's own Config: its seed is this part's
    data = load_data(cfg, seed)
    device = data.train.x.device
    # the same seed before building: the same initialisation draws for the four methods
    model = make_model(cfg, data, seed, factory(cfg, method, len(data.train), seed))
    spec = train_spec(cfg, seed=seed, eval_every=cfg.eval_every, desc=f"claim 2, {method}, seed {seed}")
    recorder = MarginRecorder(cfg.eval_every) if method == DROPOUT else None
    t0 = time.perf_counter()
    hist = fit(model, data, spec, callbacks=[recorder] if recorder else [])
    wall = time.perf_counter() - t0
    hist.insert(0, "method", method)
    hist.insert(0, "seed", seed)

    tr = data.train
    ex = pd.DataFrame({"seed": seed, "position": np.arange(len(tr)), "index": tr.index.cpu().numpy(),
                       "label": tr.y.cpu().numpy(), "true_label": tr.y_true.cpu().numpy(),
                       "noisy": tr.noisy.cpu().numpy()})
    rows = []
    if method in (EXAMPLE_TIED, UNTIED):
        kept = OWN if method == EXAMPLE_TIED else MEAN  # the memorization channels as in training
        for mode in (ETD_EVAL_MODES if method == EXAMPLE_TIED else UNTIED_EVAL_MODES):
            set_etd_mode(model, mode)
            row, logits = _accuracy_row(model, data, seed, method, mode, test=mode != OWN)
            rows.append(row)
            if mode in (DROP, kept):
                ex[f"pred_{mode}"] = logits.argmax(1).cpu().numpy()
                ex[f"margin_{mode}"] = margins(logits, tr.y).cpu().numpy()
        set_etd_mode(model, DROP)
    else:
        row, logits = _accuracy_row(model, data, seed, method, EVAL)
        rows.append(row)
        ex["pred"] = logits.argmax(1).cpu().numpy()
        if method == DROPOUT:
            ex["loss"] = F.cross_entropy(logits, tr.y, reduction="none").cpu().numpy()
            ex["margin"] = margins(logits, tr.y).cpu().numpy()
            ex["aum"] = recorder.area().numpy()
    return Result({"history": hist, "accuracy": pd.DataFrame(rows), "examples": ex},
                  {"seed": seed, "method": method, "train_seconds": wall,
                   "images_per_second": hist.attrs["images_per_second"], "n_train": len(tr),
                   "n_noisy": int(tr.noisy.sum()), "data_source": data.source, "device": describe(device),
                   "classes": list(data.classes), "image_shape": list(data.image_shape)})


def forgotten_mask(examples: pd.DataFrame) -> pd.Series:
    """Clean training examples that the example-tied model fits with its memorization channels kept (own mask)
    but misclassifies with them dropped."""
    clean = ~examples["noisy"].astype(bool)
    return clean & (examples["pred_own"] == examples["label"]) & (examples["pred_drop"] != examples["label"])


def untied_forgotten_mask(examples: pd.DataFrame) -> pd.Series:
    """Clean training examples that the untied control fits with its memorization channels at their expected scale
    (``mean`` mode) but misclassifies with them dropped (the control's forgotten set)."""
    clean = ~examples["noisy"].astype(bool)
    return (clean & (examples["untied_pred_mean"] == examples["label"])
            & (examples["untied_pred_drop"] != examples["label"]))


def merge_examples(parts: list[Result]) -> pd.DataFrame:
    """One row per (seed, training example) with columns from the four models and the consistency score."""
    by_seed: dict[int, pd.DataFrame] = {}
    for p in sorted(parts, key=lambda p: p.scalars["method"] == CONSISTENCY):  # its rows join on (seed, position)
        ex = p.tables["examples"].copy()
        seed, method = p.scalars["seed"], p.scalars["method"]
        keys = ["seed", "position", "index", "label", "true_label", "noisy"]
        if method == CONSISTENCY:
            keys = ["seed", "position"]
        extra = [c for c in ex.columns if c not in keys]
        if method == DROPOUT:
            ex = ex.rename(columns={"pred": "dropout_pred", "loss": "dropout_loss", "margin": "dropout_margin",
                                    "aum": "dropout_aum"})
        elif method == SPARSE:
            ex = ex.rename(columns={"pred": "sparse_pred"})
        elif method == EXAMPLE_TIED:
            ex = ex.rename(columns={c: f"etd_{c}" for c in extra})
        elif method == UNTIED:
            ex = ex.rename(columns={c: f"untied_{c}" for c in extra})
        by_seed[seed] = ex if seed not in by_seed else by_seed[seed].merge(ex, on=keys)
    out = pd.concat([by_seed[s] for s in sorted(by_seed)], ignore_index=True)
    out["noisy"] = out["noisy"].astype(bool)
    if {"etd_pred_own", "etd_pred_drop"} <= set(out.columns):
        out["forgotten"] = forgotten_mask(out.rename(columns={"etd_pred_own": "pred_own",
                                                              "etd_pred_drop": "pred_drop"}))
    if {"untied_pred_mean", "untied_pred_drop"} <= set(out.columns):
        out["untied_forgotten"] = untied_forgotten_mask(out)
    return out


def forgotten_images(cfg, examples: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Up to ``grid_size`` forgotten clean examples of ``seed``, least consistent (lowest held-out consistency
    score) first: one row per image, and the images (uint8, ``N x C x H x W``) in the rows' order."""
    ex = examples[(examples.seed == seed) & examples.get("forgotten", False)]
    if "cscore" in ex.columns:
        ex = ex.sort_values("cscore")
    ex = ex.head(cfg.grid_size)
    data = load_data(cfg, seed, device="cpu")
    images = data.pixels(data.train.x[torch.tensor(ex.position.to_numpy(), dtype=torch.long)])
    cols = ["seed", "position", "index", "label", "true_label", "etd_pred_drop", "dropout_margin", "dropout_aum",
            "cscore"]
    meta = ex[[c for c in cols if c in ex.columns]].reset_index(drop=True)
    return meta.assign(image=np.arange(len(meta))), images


def _part(cfg, key: dict) -> Result:
    cfg, method = part_config(cfg, key["seed"]), key["method"]
    return _consistency(cfg) if method == CONSISTENCY else _one(cfg, method)


def run(cfg, store: Store | None = None) -> Result:
    store = store or Store()

    def compute() -> Result:
        keys = [{"seed": s, "method": m} for s in seed_list(cfg) for m in METHODS + (CONSISTENCY,)]
        # Each (seed, method) is its own stored part, so adding an arm trains only that arm.  The consistency
        # score trains many small MLPs: seconds, against a minute per ResNet-9 method.
        parts = run_parts(cfg, store, "part", keys, _part, cost=lambda k: k["method"] != CONSISTENCY)
        examples = merge_examples(parts)
        trained = [p for p in parts if p.scalars["method"] != CONSISTENCY]
        scalars = merge_scalars(trained, ("classes", "image_shape"))
        scalars["cscore_seconds"] = sum(p.scalars["train_seconds"] for p in parts if p.scalars["method"] == CONSISTENCY)
        grid, images = forgotten_images(cfg, examples, cfg.seed)
        return Result({"accuracy": concat(trained, "accuracy"), "history": concat(trained, "history"),
                       "examples": examples, "grid": grid}, scalars, arrays={"grid": images})

    return store.cached(NAME, cfg.hashed_dict(), compute)
