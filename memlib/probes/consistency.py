"""Held-out consistency score: an estimate of the C-score of Jiang et al. (2021).

The C-score of a training example is the expected accuracy on it of models trained on random subsets of the
training set that do *not* contain it.  We estimate it at any scale by repeated cross-validation: in each of
``k / folds`` rounds the training set is shuffled and cut into ``folds`` blocks, and one small model is trained on
all blocks but one (all ``k`` models at once with :func:`memlib.multitrain.fit_stacked`); each example's score is
the mean accuracy, on its given label, of the models that did not see it (``k / folds`` of them, or one more where
the blocks' sizes were evened out).  Low scores mark examples that the rest of the data does not predict: atypical,
ambiguous or mislabeled ones.
"""
from __future__ import annotations

import math

import torch

from ..models import build_model
from ..multitrain import fit_stacked
from ..seeds import derive
from ..train import TrainSpec, seed_everything


def random_subsets(n: int, k: int, folds: int, seed: int) -> torch.Tensor:
    """Training subsets of ``k / folds`` rounds of ``folds``-fold cross-validation over ``n`` positions: a [k, m]
    tensor, rows sorted, every row of the same size ``m = n - ceil(n / folds)`` (so that the models can be stacked)."""
    if folds < 2 or k % folds:
        raise ValueError(f"need folds >= 2 and a number of models that is a multiple of folds; got k={k}, "
                         f"folds={folds}")
    m = n - math.ceil(n / folds)
    if m < 1:
        raise ValueError(f"{n} examples are too few for {folds} folds")
    g = torch.Generator().manual_seed(derive(seed, "consistency subsets"))
    rows = []
    for _ in range(k // folds):
        blocks = torch.tensor_split(torch.randperm(n, generator=g), folds)
        for b in range(folds):
            rows.append(torch.cat([blk for i, blk in enumerate(blocks) if i != b])[:m].sort().values)
    return torch.stack(rows)


def held_out_scores(correct: torch.Tensor, subsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example: the mean of ``correct`` ([k, n] booleans) over the models whose subset excluded it, and how
    many models that was (the score is NaN where no model held the example out)."""
    k, n = correct.shape
    held_out = torch.ones(k, n, dtype=torch.bool)
    held_out[torch.arange(k)[:, None], subsets.cpu()] = False
    count = held_out.sum(0)
    score = (correct.cpu() & held_out).sum(0).float() / count.clamp(min=1)
    score[count == 0] = float("nan")
    return score, count


def consistency_scores(x: torch.Tensor, y: torch.Tensor, *, k: int, folds: int, model: str, width: int,
                       spec: TrainSpec, seed: int, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Held-out consistency score of every example of ``(x, y)`` (``y``: the labels the models train on and are
    scored against).  Returns (score [n], number of held-out models [n], timing info)."""
    n = len(x)
    subsets = random_subsets(n, k, folds, seed).to(x.device)
    models = []
    for i in range(k):
        seed_everything(derive(seed, "consistency model", i))
        models.append(build_model(model, width, tuple(x.shape[1:]), num_classes))
    seeds = [derive(seed, "consistency batches", i) for i in range(k)]
    stack, info = fit_stacked(models, x, y, subsets, spec, seeds)
    pred = stack.predict_shared(x).argmax(2)  # [k, n]
    score, count = held_out_scores(pred == y[None], subsets)
    return score, count, info
