#!/usr/bin/env bash
# The benchmarks on a lent GPU machine (H100/H200), from the repository root, in under 8
# minutes. That machine has python3 with torch, timm, torchmetrics, joblib and matplotlib but
# not smp, Hydra (and its joblib launcher), albumentations or MLflow: their wheels travel in the
# git-ignored .whl/ folder, which benchmarks/fetch_gpu_wheels.sh fills here (about 27 MB).
# With the device tool:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Sections, each under its own time limit, each appending to $OUT/results.jsonl as it finishes
# (so a cut leaves what was measured):
#   1. the GPU's name and the software versions (gpu.txt);
#   2. the tests marked gpu (tests/gpu/, pytest -m gpu; at most 180 s): a compiled bf16
#      training epoch, the device data path against the CPU path, k = 2 jobs on the GPU, a
#      kill-and-resume on CUDA; gpu_tests.{log,xml};
#   3. sweep throughput (benchmarks/sweep_bench.py): a 4-cell mini sweep through the CLI at
#      k = 1, 2, 4 jobs per GPU (480 px tiles, batch 16, 2 epochs, 1 image per patient,
#      torch.compile off: the eager step was as fast on the H200 and a cold compile costs
#      ~90 s per job) -> cells/h and the projected Table 2 time; sweep.{json,md}; at most
#      210 s, less when the tests took long, so that the step benchmark keeps 100 s;
#   4. the step benchmark (benchmarks/bench.py): 480 px tiles and batch 16 (the paper's), 30
#      timed steps x 2 repetitions per loop after 5 warm-up steps (torch.compile happens there),
#      8 loader workers; bench.{json,md}, bench.partial.json if cut short.
# Results: $OUT (bench_results/ when OUT is unset), with the logs.
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit 1
set -uo pipefail

RESULTS=${OUT:-bench_results}
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 HF_HUB_OFFLINE=1 DEDL_OFFLINE=1
START=$(date +%s)
section_done() {  # name: one line in results.jsonl when a shell section ends
  echo "{\"section\": \"$1\", \"exit\": $2, \"elapsed_s\": $(( $(date +%s) - START ))}" >> "$RESULTS/results.jsonl"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$RESULTS/gpu.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())' | tee -a "$RESULTS/gpu.txt"
section_done gpu 0

# 2. The tests that need a GPU: at most 180 s.
timeout 180 python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider \
  --junitxml "$RESULTS/gpu_tests.xml" 2>&1 | tee "$RESULTS/gpu_tests.log"
section_done gpu_tests "${PIPESTATUS[0]}"

# 3. Sweep throughput: at most 210 s, leaving the step benchmark 100 s (its own limit 10 s
# less: a k that does not fit is reported cut).
SWEEP=$(( 450 - 100 - ($(date +%s) - START) ))
SWEEP=$(( SWEEP > 210 ? 210 : SWEEP ))
timeout "$SWEEP" python3 -m benchmarks.sweep_bench --ks 1,2,4 --epochs 2 --images 1 \
  --timeout $(( SWEEP - 10 )) --out "$RESULTS" 2>&1 | tee "$RESULTS/sweep.log"
section_done sweep "${PIPESTATUS[0]}"

# 4. The step benchmark in what is left of the 8 minutes (at most 240 s).
LEFT=$(( 450 - ($(date +%s) - START) ))
LEFT=$(( LEFT > 240 ? 240 : LEFT ))
timeout "$LEFT" python3 -m benchmarks.bench --device cuda --tile 480 --batch 16 --steps 30 \
  --repeats 2 --warmup 5 --workers 8 --no-sweep --out "$RESULTS" 2>&1 | tee "$RESULTS/bench.log"
section_done step_bench "${PIPESTATUS[0]}"
