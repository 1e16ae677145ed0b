"""Training throughput alone and beside one busy process, with torch's default OpenMP policy and with memlib's.

    .venv/bin/python benchmarks/contention.py [--width 16] [--steps 30]

Each measurement is a fresh subprocess (the OpenMP wait policy is read when the runtime starts) that trains
ResNet-9 for ``--steps`` steps with memlib's per-step path (benchmarks/throughput.py) and prints images/s:

* ``default``: ``OMP_WAIT_POLICY`` unset in the child, set by nothing (torch's OpenMP threads spin while waiting);
* ``memlib``: memlib's policy (``OMP_WAIT_POLICY=PASSIVE``, threads = cores available).

"busy" runs a single-threaded CPU-bound Python loop beside the measurement.  Printed last, one JSON line: images/s
of each (policy, load) cell and the slowdown factor under load (alone / busy) of each policy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import os, sys, time, torch, torch.nn.functional as F
if os.environ.get("BENCH_POLICY") == "memlib":
    import memlib  # sets OMP_WAIT_POLICY=PASSIVE before torch's OpenMP runtime starts... unless torch came first
from memlib.device import configure_threads
from memlib.models import build_model
configure_threads()
torch.manual_seed(0)
w, steps = int(sys.argv[1]), int(sys.argv[2])
m = build_model("resnet9", w, (1, 28, 28), 10).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
x = torch.randn(128, 1, 28, 28).contiguous(memory_format=torch.channels_last)
y = torch.randint(0, 10, (128,))
def step():
    loss = F.cross_entropy(m(x), y); opt.zero_grad(); loss.backward(); opt.step()
for _ in range(3): step()
t = time.perf_counter()
for _ in range(steps): step()
print(steps * 128 / (time.perf_counter() - t))
"""

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 600: pass\n"


def measure(policy: str, busy: bool, width: int, steps: int) -> float:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    env["BENCH_POLICY"] = policy
    if policy == "memlib":
        env["OMP_WAIT_POLICY"] = "PASSIVE"  # what `import memlib` sets; explicit so the order of imports cannot matter
    hog = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
    try:
        time.sleep(0.5 if busy else 0)
        out = subprocess.run([sys.executable, "-c", CHILD, str(width), str(steps)], env=env, capture_output=True,
                             text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    cells = {(pol, busy): [] for pol in ("default", "memlib") for busy in (False, True)}
    for _ in range(args.repeats):
        for (pol, busy) in cells:  # interleaved
            r = measure(pol, busy, args.width, args.steps)
            cells[(pol, busy)].append(r)
            print(f"{pol:8s} {'busy' if busy else 'alone':5s} {r:8.0f} img/s", flush=True)
    med = {f"{pol}_{'busy' if busy else 'alone'}_img_s": round(statistics.median(v), 1) for (pol, busy), v in cells.items()}
    for pol in ("default", "memlib"):
        med[f"{pol}_slowdown"] = round(med[f"{pol}_alone_img_s"] / med[f"{pol}_busy_img_s"], 2)
    med["ratio"] = round(med["default_slowdown"] / med["memlib_slowdown"], 3)  # above 1: memlib's policy suffers less
    print(json.dumps(med))


if __name__ == "__main__":
    main()
