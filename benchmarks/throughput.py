"""Training throughput of memlib's loop on the quick model, against a DataLoader baseline in the same run.

    .venv/bin/python benchmarks/throughput.py [--experiment gradient_similarity] [--profile quick] [--epochs 2]

Both loops train the same model (same config, same seed) for the same number of epochs on the same data with the
same optimizer; the baseline draws batches from a ``torch.utils.data.DataLoader`` over a ``TensorDataset`` (the
textbook way), memlib slices tensors that already live on the device.  The ratio is memlib / baseline images/s.
Evaluation passes are excluded from both (memlib's per-epoch ``seconds`` cover the batch loop only).
"""
from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from memlib.config import resolve
from memlib.device import describe
from memlib.train import TrainSpec, fit, make_model_and_data


def baseline(model, data, spec: TrainSpec, device) -> float:
    ds = torch.utils.data.TensorDataset(data.train.x.cpu(), data.train.y.cpu())
    loader = torch.utils.data.DataLoader(ds, batch_size=spec.batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(spec.seed))
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay,
                          nesterov=True)
    model.train()
    n, t0 = 0, time.perf_counter()
    for _ in range(spec.epochs):
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(yb)
    return n / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiment", default="gradient_similarity")
    p.add_argument("--profile", default="quick")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    cfg = resolve(args.experiment, args.profile, epochs=args.epochs, progress=False)
    rows = []
    for rep in range(args.repeats + 1):  # repeat 0 warms up (library initialisation, allocator) and is dropped
        model, data, device = make_model_and_data(cfg)
        spec = TrainSpec.from_config(cfg)
        hist = fit(model, data, spec)
        ours = hist.attrs["images_per_second"]
        model, data, device = make_model_and_data(cfg)
        base = baseline(model, data, spec, device)
        if rep == 0:
            continue
        rows.append({"repeat": rep, "memlib_img_s": round(ours, 1), "dataloader_img_s": round(base, 1),
                     "ratio": round(ours / base, 3)})
        print(json.dumps(rows[-1]))
    best = {k: max(r[k] for r in rows) for k in ("memlib_img_s", "dataloader_img_s")}
    print(json.dumps({"config": f"{cfg.model} width {cfg.width}, {cfg.dataset}, n_train {cfg.n_train}, "
                                f"batch {cfg.batch_size}", "device": describe(device), **best,
                      "ratio_of_best": round(best["memlib_img_s"] / best["dataloader_img_s"], 3)}))


if __name__ == "__main__":
    main()
