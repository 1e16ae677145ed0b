#!/usr/bin/env bash
# GPU check (run on a CUDA machine from the repository root): training throughput of memlib's fast path against the
# plain fp32 loop at the paper's ResNet-9 (width 64, batch 512) and at the quick width, then claim 1 at the `paper`
# profile on Fashion-MNIST (CIFAR-10 needs a network).  Results go to ${OUT:-_gpu_check}/; it ends by exporting
# every result it computed as a result bundle ($out/bundle-*): copy that into results/, add its line to
# results/README.md and commit it, and `make book` shows it.
#   tools/gpu_check.sh [seconds for claim 1, default 360]
set -u
out=${OUT:-_gpu_check}; mkdir -p "$out"
budget=${1:-360}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 MEMLIB_STORE=${MEMLIB_STORE:-/tmp/memlib-gpu-store}
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee -a "$out/gpu.txt"
for args in "--width 64 --batch-size 512 --n-train 20000" "--width 16 --batch-size 128"; do
  timeout 120 $py benchmarks/throughput.py $args --steps 60 --repeats 3 2>&1 | tail -1 | tee -a "$out/throughput.jsonl"
done
timeout "$budget" $py - <<'PY' 2>&1 | tee "$out/claim1_paper.txt"
import time
from memlib.experiments import resolve
from memlib.experiments import get_experiment
from memlib.claims import get_claim
from memlib.store import Store
exp = get_experiment("gradient_similarity")
for seeds in (1, 3):  # seed 0 first (cached as its own part), then the other two if time allows
    cfg = resolve("gradient_similarity", "paper", dataset="fashion-mnist", seeds=seeds, progress=False)
    t0 = time.perf_counter()
    res = exp.run(cfg, Store())
    print(f"seeds={seeds}: {time.perf_counter() - t0:.0f} s, scalars: {res.scalars}", flush=True)
    v = get_claim("gradient_similarity").check(res, cfg)
    print(v._repr_markdown_(), flush=True)
PY
tar czf "$out/store.tgz" -C "$MEMLIB_STORE" . 2>/dev/null
bundle="$out/bundle-paper-$(hostname | tr -c 'A-Za-z0-9_.\n-' _)-$(date -u +%Y%m%d-%H%M)"
$py -m memlib export -o "$bundle" 2>&1 | tee "$out/export.txt"
echo "results/README.md line: - \`$(basename "$bundle")\`: $(whoami) ran tools/gpu_check.sh $budget on" \
  "$(head -2 "$out/gpu.txt" | tail -1 | cut -d, -f1), $(date -u +%Y-%m-%d), memlib $(git rev-parse --short HEAD)" \
  | tee -a "$out/export.txt"
ls -la "$out"
