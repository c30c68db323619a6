#!/usr/bin/env bash
# The training-speed benchmark on a lent GPU machine (H100), from the repository root, in
# under 8 minutes. That machine has python3 with torch, timm and torchmetrics but not smp,
# Hydra, albumentations or MLflow: their wheels travel in the git-ignored .whl/ folder, which
# benchmarks/fetch_gpu_wheels.sh fills here (about 27 MB). With the device tool:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results: $OUT/bench.{json,md} (bench_results/ when OUT is unset), the log and the GPU's
# name; bench.partial.json holds what was measured so far if the time limit cuts it short.
# The benchmark: 480 px tiles and batch 16 (the paper's), 60 timed steps x 3 repetitions per
# loop after 5 warm-up steps (torch.compile happens there), 8 loader workers.
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
set -uo pipefail

RESULTS=${OUT:-bench_results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$RESULTS/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' | tee -a "$RESULTS/gpu.txt"
# A hard stop inside the 8 minutes, leaving the partial results and the log.
timeout 450 python3 -m dedl_experiments.bench --device cuda --tile 480 --batch 16 --steps 60 \
  --repeats 3 --warmup 5 --workers 8 --out "$RESULTS" 2>&1 | tee "$RESULTS/bench.log"
