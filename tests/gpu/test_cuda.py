"""The CUDA paths on a real GPU, marked `gpu`: skipped on a machine without one; `pytest -m gpu`
runs them alone (benchmarks/gpu_check.sh does, first). CUDA results are not bit-reproducible
(cuDNN's nondeterministic kernels, bf16 rounding), so each comparison states its tolerance.
Every other test pins device=cpu (conftest.TINY); these override it."""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from pathlib import Path

import mlflow
import pytest
import torch

from conftest import TINY as CPU_TINY
from conftest import cli_env, compose_config, run_cli
from dedl_experiments.data.preparation import prepare_segmentation
from dedl_experiments.training.loop import run_epoch
from dedl_experiments.placement.peak_memory import LEDGER
from dedl_experiments.placement import JobPlacement
from dedl_experiments.placement.speed import apply_to_modules, speed_settings
from dedl_experiments.tasks.segmentation import SegmentationTask
from forked_cli import start_forked

pytestmark = pytest.mark.gpu

CUDA = torch.device("cuda", 0)
# The CLI jobs see one GPU; eager (a cold torch.compile costs about a minute a job, and the
# first test covers it); bf16 autocast and channels_last stay on (the defaults on CUDA).
ONE_GPU = {"CUDA_VISIBLE_DEVICES": "0"}
# The tests' tiny job at the scale their tolerances were set at (32 px tiles; the CPU tests' TINY
# has 16 px tiles).
TINY = [*CPU_TINY, "budget.scale=0.0625"]
JOB = [*TINY, "speed.compile=false"]


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> Path:
    """tmp_path with the empty MLflow store, for the CLI runs there."""
    shutil.copyfile(empty_store, tmp_path / "mlflow.db")
    return tmp_path


def _task(data_dir: Path, *overrides: str) -> SegmentationTask:
    cfg = compose_config([*TINY, "device=cuda:0", f"data_dir={data_dir}", *overrides])
    torch.manual_seed(0)
    return SegmentationTask(cfg, prepare_segmentation(cfg), JobPlacement(CUDA))


def test_a_compiled_bf16_training_epoch(tmp_path):
    task = _task(tmp_path, "speed.amp=bf16", "speed.compile=true", "speed.compile_cache=null")
    speed = speed_settings(task.cfg, task.device)
    assert speed.amp_dtype is torch.bfloat16 and speed.compile and speed.channels_last
    apply_to_modules(task, speed)
    before = {k: v.clone() for k, v in task.net.state_dict().items()}
    compiled = torch._dynamo.utils.counters["frames"]["ok"]
    train = run_epoch(task, task.loader("train", True, seed=0), True, 0, speed, "train")
    val = run_epoch(task, task.loader("val", False, seed=0), False, 0, speed, "val")
    assert torch._dynamo.utils.counters["frames"]["ok"] > compiled  # torch.compile ran
    assert math.isfinite(train["loss"]) and math.isfinite(val["loss"])
    after = task.net.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # fp32 weights
    assert any(not torch.equal(v, before[k]) for k, v in after.items())  # a step was taken


# A pixel may take the source pixel on the other side of a rounding tie of its rotated source
# coordinate (tests/unit/data/test_device_augment.py: at most 2e-4 of a tile's pixels between two
# CPUs); the GPU computes those coordinates with fused multiply-adds, so 10x that is allowed.
MAX_DIFFERING_SHARE = 2e-3


def test_the_device_data_path_gives_the_cpu_paths_batches(tmp_path):
    batches = {}
    for on in (True, False):
        task = _task(tmp_path, f"loader.device_data={str(on).lower()}", "loader.num_workers=0")
        loader = task.loader("train", True, seed=task.cfg.seed)
        assert task._device_data() is on
        loader.dataset.set_epoch(1)
        batches[on] = [[t.cpu() for t in batch] for batch in loader]
    assert len(batches[True]) == len(batches[False]) > 0
    for (image, target), (want_image, want_target) in zip(batches[True], batches[False]):
        assert image.shape == want_image.shape and target.shape == want_target.shape
        differs = ((image - want_image).abs() > 1e-4).any(dim=1) | (target != want_target)
        assert differs.float().mean() <= MAX_DIFFERING_SHARE


def test_two_jobs_share_one_gpu_pinned_and_record_their_peak_memory(store):
    data = store / "data"
    run_cli(["-m", "hydra/launcher=gpus", "speed.jobs_per_gpu=2", *JOB, "device=auto",
             f"data_dir={data}", "app=none,gelu"], store, timeout=170, env=cli_env(**ONE_GPU))
    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("dedl").experiment_id])
    assert len(runs) == 2 and {r.info.status for r in runs} == {"FINISHED"}
    total_mib = torch.cuda.get_device_properties(0).total_memory / 2**20
    for run in runs:  # both on the one GPU, each with its share of the cores
        assert run.data.tags["dedl.device"] == "cuda:0"
        assert int(run.data.tags["dedl.torch_threads"]) >= 1
        assert 0 < run.data.metrics["peak_memory_mb"] < total_mib
    # Each claimed a slot of the pool of 2 (k = 2 on the one GPU).
    slots = sorted(p.name for p in store.glob("**/.device_slots/slot-*.lock"))
    assert slots == ["slot-0.lock", "slot-1.lock"]
    (key, entry), = json.loads((data / LEDGER).read_text()).items()
    assert key.startswith(torch.cuda.get_device_name(0) + "|") and "amp=bf16" in key
    assert entry["models"] == ["unet-resnet18-app_gelu", "unet-resnet18-app_none"]
    assert entry["peak_reserved_mb"] >= max(r.data.metrics["peak_memory_mb"] for r in runs)


# A resumed CUDA run is not bit-equal to an uninterrupted one; 4 steps of this tiny job differ
# by about 1e-3 between any two runs, far below these bounds.
LOSS_RTOL, METRIC_ATOL = 0.05, 0.05


def _run(cwd: Path):
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("dedl").experiment_id])
    return client, run


def test_a_run_killed_on_the_gpu_resumes_within_noise(tmp_path, job_folder):
    args = [*JOB, "device=cuda:0", f"data_dir={tmp_path / 'data'}", "budget.epochs=2",
            "budget.batch_size=8", "train.patience=null"]
    procs = {}
    for name, pause in (("reference", {}), ("work", {"DEDL_TEST_PAUSE_AT": "train_step"})):
        procs[name] = start_forked("dedl_experiments", args, job_folder(name),
                                   cli_env(**ONE_GPU, **pause))
    work, proc = tmp_path / "work", procs["work"]
    deadline = time.monotonic() + 150
    while not (work / "train_step.paused").exists():  # in epoch 2, after epoch 1's checkpoint
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    last = torch.load(next(work.glob("outputs/run/*/checkpoints/last.pt")), weights_only=True)
    assert last["fit"]["epoch"] == 1
    assert isinstance(last["rng"]["cuda"], torch.Tensor)  # the job's GPU's state alone
    out, _ = procs["reference"].communicate(timeout=150)
    assert procs["reference"].returncode == 0, out[-4000:]

    again = run_cli(args, work, timeout=150, env=cli_env(**ONE_GPU))
    assert "resuming MLflow run" in again.stdout + again.stderr
    client, resumed = _run(work)
    _, expected = _run(tmp_path / "reference")
    assert resumed.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(resumed.info.run_id, "train_loss")] == [0, 1]
    for key in ("train_loss", "val_loss"):
        assert resumed.data.metrics[key] == pytest.approx(expected.data.metrics[key], rel=LOSS_RTOL), key
    for key in ("test_iou", "test_pixel_accuracy", "test_dice"):
        assert abs(resumed.data.metrics[key] - expected.data.metrics[key]) <= METRIC_ATOL, key
