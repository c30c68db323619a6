"""Training-speed benchmark: the framework's loop against the released notebooks' loop, and
the throughput of a mini sweep run k jobs per GPU at once.

    python -m benchmarks.bench [--tile 256 --batch 8 --steps N --repeats 3 --device auto
                                --sweep-ks 1,2 --no-sweep --out bench_results]

(from the repository root: `benchmarks` is a folder of the repository, not of the package.)

In one process, on the same synthetic tiles (made by the framework's prepare step), with the
same model (smp UNet ResNet-18, scSE, depth 3, decoder 256/128/64, 1 -> 2 classes), tile size
and batch size, it times:

- REFERENCE: `benchmarks/reference_loop.py`, written the way the paper's notebooks train
  (per-tile .npy + PIL + torchvision, fp32, `.item()` every step, Python-side running metric,
  no pinned memory);
- ours: `loop.run_epoch` over `SegmentationTask`'s own loader and step, with the framework's
  default speed settings (`speed_settings` + `apply_to_modules`: on CUDA bf16 autocast,
  channels_last, torch.compile, pinned memory, non-blocking copies; on CPU plain fp32), with
  app=none and with app=gelu.

Each loop first runs untimed warm-up steps; then timed repetitions alternate between the loops
(so load from other processes falls on all alike) and each reads the same `steps x batch`
tiles. Also measured: the data pipeline alone (`benchmarks/data_bench.py`), the APP's training
overhead, inference time of the networks trained without and with the APP (both are the plain
network), MLflow's per-epoch logging time, peak memory, FLOPs per training step (network and
APP, forward + backward, `torch.utils.flop_counter`), achieved FLOP/s and, on CUDA, MFU against
a measured bf16 matmul peak plus a count of host syncs in the training loop; and the projected
wall time of Table 2 at the paper's budget on this machine, from a 480 px measurement.
Last, the sweep section (`benchmarks/sweep_bench.py`): cells per hour of a 4-cell sweep run
through the CLI at k = 1, 2 (and 4 on CUDA) jobs per GPU, and the Table 2 time projected from
it. Results: `<out>/bench.json` and `<out>/bench.md`; `<out>/results.jsonl` gets one line per
section as soon as it is measured, and `<out>/bench.partial.json` what was measured so far.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __name__ == "__main__":
    # run_epoch's progress bars: tqdm reads TQDM_* variables when it is first imported.
    os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from benchmarks import data_bench, sweep_bench  # noqa: E402
from benchmarks.reference_loop import ReferenceTrainer, reference_loader  # noqa: E402
from dedl_experiments.config.checks import validate  # noqa: E402
from dedl_experiments.data import synthetic  # noqa: E402
from dedl_experiments.data.preparation import prepare_segmentation  # noqa: E402
from dedl_experiments.inference.tiled import predict_tiles  # noqa: E402
from dedl_experiments.training.loop import run_epoch  # noqa: E402
from dedl_experiments.models.app import AutoencoderPostProcessing  # noqa: E402
from dedl_experiments.models.segmentation import build_segmentation_model  # noqa: E402
from dedl_experiments.placement.peak_memory import record_peak_memory  # noqa: E402
from dedl_experiments.placement import JobPlacement  # noqa: E402
from dedl_experiments.placement.speed import Speed, apply_to_modules, peak_memory_mb, pick_device, speed_settings  # noqa: E402
from dedl_experiments.tasks.segmentation import SegmentationTask  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench_results"
RELEASED_CLASS_WEIGHTS = [0.1479, 0.8521]
# Table 2 at the paper's budget (facts file / paper): 480 px tiles, 1452 training and 720
# validation tiles per epoch, 50 epochs; 120 cells as counted by this project.
PAPER = {"tile": 480, "train_tiles": 1452, "val_tiles": 720, "epochs": 50, "cells": 120}
# Distinct tiles the timed loops cycle through (more would only lengthen data generation).
MIN_UNIQUE_TILES, MAX_UNIQUE_TILES = 48, 96
LOOPS = ("reference", "ours_none", "ours_gelu")
LABELS = {
    "reference": "REFERENCE (notebook loop: .npy/PIL/torchvision, fp32, .item() per step)",
    "ours_none": "ours, app=none (run_epoch, default speed settings)",
    "ours_gelu": "ours, app=gelu (run_epoch, default speed settings)",
}


# --- small helpers ---------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """Wall seconds of `function()`, the device's queued work included."""
    _sync(device)
    start = time.perf_counter()
    out = function()
    _sync(device)
    return time.perf_counter() - start, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def loop_result(seconds: list[float], tiles: int, steps: int, peak_mb: float,
                metrics: dict) -> dict:
    """What every timed loop reports (the same keys for REFERENCE and ours)."""
    rates = [tiles / s for s in seconds]
    median = statistics.median(rates)
    return {"tiles_per_s": spread(rates), "s_per_tile": 1.0 / median, "tiles": tiles,
            "steps": steps, "seconds": seconds, "peak_memory_mb": peak_mb,
            "last_metrics": metrics}


# --- setup -----------------------------------------------------------------------------------


@dataclass
class Setup:
    """Tiles, configs and loops of one tile size, all on the same prepared tiles."""

    tile: int
    batch: int
    device: torch.device
    workdir: Path
    overrides: list[str]
    tiles: data_bench.Tiles
    pairs: list[tuple[Path, Path]]  # REFERENCE: one .npy file per tile and per mask
    workers: int

    def config(self, app: str):
        cfg = data_bench.compose_config(self.overrides + [f"app={app}"])
        validate(cfg)
        return cfg


def make_setup(workdir: Path, tile: int, batch: int, device: torch.device, unique_tiles: int,
               workers: int | None = None, height: int = synthetic.FULL_HEIGHT,
               width: int = synthetic.FULL_WIDTH) -> Setup:
    """Synthetic full-size images -> the framework's tile cache -> the first `unique_tiles`
    training tiles, also written as one .npy file per tile for the REFERENCE loader."""
    folder = workdir / f"t{tile}"
    tiles = data_bench.make_tiles(folder, tile, unique_tiles, height, width)
    pairs = data_bench.write_reference_tiles(folder / "reference", tiles)
    overrides = data_bench.data_overrides(folder, tile, unique_tiles, height, width)
    overrides += ["init=random", f"budget.batch_size={batch}"]
    if workers is not None:
        overrides.append(f"loader.num_workers={workers}")
    cfg = data_bench.compose_config(overrides)
    return Setup(tile, batch, device, workdir, overrides, tiles, pairs, cfg.loader.num_workers)


@dataclass
class Framework:
    task: SegmentationTask
    speed: Speed


def framework(setup: Setup, app: str, seed: int = 0) -> Framework:
    """The framework's own task, with its default speed settings applied (as run/job.py does)."""
    cfg = setup.config(app)
    prepared = prepare_segmentation(cfg)  # reuses the cache make_setup built
    torch.manual_seed(seed)
    task = SegmentationTask(cfg, prepared, JobPlacement(setup.device))
    speed = speed_settings(cfg, setup.device)
    apply_to_modules(task, speed)
    return Framework(task, speed)


def capped_loader(fw: Framework, setup: Setup, split: str, train: bool, n_tiles: int,
                  seed: int = 0):
    """The task's own DataLoader (workers, pinned memory, batch size as configured), reading
    exactly `n_tiles` tiles: the REFERENCE's tiles, cycled, for training; validation tiles
    cycled otherwise."""
    loader = fw.task.loader(split, train=train, seed=seed)
    available = setup.tiles.count if split == "train" else len(loader.dataset.indices)
    # The sampler asks len(dataset) at each iteration, so capping the indices caps the loader.
    loader.dataset.indices = np.resize(np.arange(available), n_tiles)
    return loader


def cycled(pairs: list, n_tiles: int) -> list:
    return [pairs[i % len(pairs)] for i in range(n_tiles)]


# --- FLOPs -----------------------------------------------------------------------------------


def training_flops(tile: int, batch: int, app_activation: str = "gelu") -> dict[str, float]:
    """FLOPs of one training step (forward + backward) at batch `batch`, counted on the meta
    device (no arithmetic runs): the network (input -> logits -> loss) and the APP
    (logits -> reconstruction -> loss, with the gradient back to the logits as in training)."""
    net = build_segmentation_model("unet", "resnet18", None).to("meta")
    app = AutoencoderPostProcessing(tile, app_activation).to("meta")
    image = torch.zeros(batch, 1, tile, tile, device="meta")
    target = torch.zeros(batch, tile, tile, dtype=torch.long, device="meta")
    criterion = nn.CrossEntropyLoss(weight=torch.ones(2, device="meta"))
    with FlopCounterMode(display=False) as counter:
        logits = net(image)
        criterion(logits, target).backward()
    net_flops = counter.get_total_flops()
    logits = logits.detach().requires_grad_()
    with FlopCounterMode(display=False) as counter:
        criterion(app(logits), target).backward()
    app_flops = counter.get_total_flops()
    return {"net_per_step": float(net_flops), "app_per_step": float(app_flops),
            "net_per_tile": net_flops / batch, "app_per_tile": app_flops / batch,
            "batch": batch, "tile": tile}


def bf16_matmul_peak(device: torch.device, n: int = 8192, iters: int = 20) -> float:
    """Measured dense bf16 matmul FLOP/s (n x n x n products timed with CUDA events)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(5):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        a @ b
    end.record()
    torch.cuda.synchronize(device)
    seconds = start.elapsed_time(end) / 1e3 / iters
    del a, b
    torch.cuda.empty_cache()
    return 2 * n**3 / seconds


# --- the timed parts -------------------------------------------------------------------------


def time_loops(setup: Setup, steps: int, repeats: int, warmup: int,
               which: tuple[str, ...] = LOOPS,
               warmup_tiles: int | None = None) -> tuple[dict, dict[str, Framework]]:
    """Warm-up (`warmup` steps, or one batch of `warmup_tiles` tiles), then `repeats`
    alternating timed epochs of `steps` batches per loop."""
    device, batch = setup.device, setup.batch
    n_timed, n_warm = steps * batch, warmup_tiles or max(1, warmup) * batch
    fws = {name: framework(setup, name.removeprefix("ours_")) for name in which
           if name.startswith("ours_")}
    epochs: Counter = Counter()

    def epoch_of(name: str, n_tiles: int) -> Callable[[], dict]:
        return loop_epoch(setup, name, n_tiles, fws.get(name), trainer, epochs)

    trainer = reference_trainer(setup, fws) if "reference" in which else None
    seconds: dict[str, list[float]] = {name: [] for name in which}
    peaks: dict[str, float] = {name: 0.0 for name in which}
    metrics: dict[str, dict] = {}
    for name in which:  # warm-up: worker start, allocator, cuDNN, torch.compile
        timed(epoch_of(name, n_warm), device)
    runs = {name: epoch_of(name, n_timed) for name in which}
    for _ in range(repeats):
        for name in which:
            reset_peak(device)
            s, metrics[name] = timed(runs[name], device)
            seconds[name].append(s)
            peaks[name] = max(peaks[name], peak_memory_mb(device))
    results = {name: loop_result(seconds[name], n_timed, steps, peaks[name], metrics[name])
               for name in which}
    return results, fws


def reference_trainer(setup: Setup, fws: dict[str, Framework]) -> ReferenceTrainer:
    """The REFERENCE loop's trainer, with ours' class weights (the released ones without)."""
    weights = next(iter(fws.values())).task.class_weights if fws else None
    weights = RELEASED_CLASS_WEIGHTS if weights is None else weights.tolist()
    torch.manual_seed(0)
    return ReferenceTrainer(setup.device, weights)


def loop_epoch(setup: Setup, name: str, n_tiles: int, fw: Framework | None,
               trainer: ReferenceTrainer | None, epochs: Counter) -> Callable[[], dict]:
    """One training epoch of `n_tiles` tiles of loop `name`, as a call (its loader built)."""
    if name == "reference":
        loader = reference_loader(cycled(setup.pairs, n_tiles), setup.tiles.mean,
                                  setup.tiles.std, setup.batch, setup.workers)
        return lambda: trainer.train_epoch(loader)
    loader = capped_loader(fw, setup, "train", True, n_tiles)

    def one() -> dict:
        epochs[name] += 1
        return run_epoch(fw.task, loader, True, epochs[name], fw.speed, name)
    return one


def loop_peaks_alone(setup: Setup, n_tiles: int, which: tuple[str, ...] = LOOPS) -> dict[str, dict]:
    """CUDA: each loop's peak memory with no other loop alive (the timed loops run side by
    side, so a peak read there counts the others' models, optimisers and cached blocks). Per
    loop: the previous one freed, the allocator's cache emptied and its peak statistics reset;
    then the loop is built and trains `n_tiles` tiles (warm-up included: torch.compile and
    cuDNN's first calls, as in a job). Allocated and reserved peaks in MiB."""
    device = setup.device
    peaks: dict[str, dict] = {}
    for name in which:
        gc.collect()  # the previous loop's last references are gone: its memory is free
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        fws = {name: framework(setup, name.removeprefix("ours_"))} if name != "reference" else {}
        trainer = reference_trainer(setup, fws) if name == "reference" else None
        timed(loop_epoch(setup, name, n_tiles, fws.get(name), trainer, Counter()), device)
        peaks[name] = {"allocated_mb": torch.cuda.max_memory_allocated(device) / 2**20,
                       "reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20}
        del fws, trainer
    gc.collect()
    torch.cuda.empty_cache()
    return peaks


def time_validation(setup: Setup, fw: Framework, n_tiles: int, repeats: int,
                    warmup_tiles: int | None = None) -> dict:
    """Forward-only validation epochs (`run_epoch(train=False)`, as `fit` runs them), after a
    warm-up epoch (the eval graph compiles there on CUDA) of `warmup_tiles` or up to 5 full
    batches."""
    loader = capped_loader(fw, setup, "val", False, n_tiles)
    run = lambda: run_epoch(fw.task, loader, False, 0, fw.speed, "val")  # noqa: E731
    warm = capped_loader(fw, setup, "val", False, warmup_tiles or min(n_tiles, 5 * setup.batch))
    timed(lambda: run_epoch(fw.task, warm, False, 0, fw.speed, "val"), setup.device)
    seconds = [timed(run, setup.device)[0] for _ in range(repeats)]
    return {"tiles_per_s": spread([n_tiles / s for s in seconds]),
            "s_per_tile": statistics.median(seconds) / n_tiles, "tiles": n_tiles}


def time_inference(setup: Setup, fws: dict[str, Framework], n_tiles: int, repeats: int) -> dict:
    """`inference.predict_tiles` with the network trained without and with the APP: the saved
    model is the network alone in both cases, so the times must agree within noise."""
    # The first distinct tiles, cycled up to n_tiles (a copy in memory: keep n_tiles modest).
    images = np.asarray(setup.tiles.split.images[: setup.tiles.count])[
        np.resize(np.arange(setup.tiles.count), n_tiles)]
    batch = min(setup.batch, len(images))
    mean, std = setup.tiles.mean, setup.tiles.std
    run = {name: (lambda fw=fw: predict_tiles(fw.task.net, images, [mean], [std], batch,
                                              setup.device)) for name, fw in fws.items()}
    for name in run:
        timed(run[name], setup.device)
    ms: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(repeats):
        for name in run:
            ms[name].append(1e3 * timed(run[name], setup.device)[0] / len(images))
    for fw in fws.values():
        fw.task.net.train()
    out = {name: {"ms_per_tile": spread(v),
                  "saved_parameters": sum(t.numel() for t in fws[name].task.inference_state().values()),
                  "saved_keys": len(fws[name].task.inference_state())}
           for name, v in ms.items()}
    out["tiles"], out["batch"] = len(images), batch
    if {"ours_none", "ours_gelu"} <= set(out):
        none, gelu = out["ours_none"]["ms_per_tile"], out["ours_gelu"]["ms_per_tile"]
        out["gelu_over_none"] = gelu["median"] / none["median"]
        out["gelu_over_none_min"] = gelu["min"] / none["min"]  # the least disturbed runs
    return out


def time_data_pipeline(setup: Setup, repeats: int, batches_per_worker: int = 6) -> dict:
    """data_bench's two loaders, data alone (augmented, normalised batches; no model), with
    the loops' batch size and worker count: timed full passes over the distinct tiles, cycled
    so that every worker makes several batches per pass. As in data_bench, torch runs one
    thread per process meanwhile: ours normalises batches in the main process here (on the
    device in training), and two spinning intra-op threads beside busy workers on a small
    machine would time the oversubscription, not the pipeline."""
    tiles, workers = setup.tiles, setup.workers
    n_tiles = max(tiles.count, batches_per_worker * max(1, workers) * setup.batch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rates = data_bench.time_passes({
            "reference": data_bench.reference_loader(cycled(setup.pairs, n_tiles), tiles.mean,
                                                     tiles.std, batch_size=setup.batch,
                                                     workers=workers),
            "ours": data_bench.framework_loader(tiles, batch_size=setup.batch, workers=workers,
                                                n_tiles=n_tiles),
        }, repeats)
    finally:
        torch.set_num_threads(threads)
    out = {name: {"tiles_per_s": spread(r)} for name, r in rates.items()}
    out["workers"], out["tiles"] = workers, n_tiles
    out["ratio"] = out["ours"]["tiles_per_s"]["median"] / out["reference"]["tiles_per_s"]["median"]
    return out


def count_host_syncs(setup: Setup, fw: Framework, steps: int) -> dict:
    """CUDA only: synchronising calls during training epochs of `steps` and `2 * steps`
    batches (torch.cuda.set_sync_debug_mode): the difference divided by `steps` is the number
    of host syncs per step; what is left is per epoch (the final loss and metric reads)."""
    counts, places = {}, Counter()
    for n_steps in (steps, 2 * steps):
        loader = capped_loader(fw, setup, "train", True, n_steps * setup.batch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run_epoch(fw.task, loader, True, 0, fw.speed, "sync check")
                torch.cuda.synchronize()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        hits = [w for w in caught if "synchroniz" in str(w.message)]
        counts[n_steps] = len(hits)
        places.update(f"{Path(w.filename).name}:{w.lineno}" for w in hits)
    per_step = (counts[2 * steps] - counts[steps]) / steps
    return {"steps": [steps, 2 * steps], "syncs": [counts[steps], counts[2 * steps]],
            "per_step": per_step, "per_epoch": counts[steps] - per_step * steps,
            "places": dict(places.most_common(12))}


def time_mlflow(workdir: Path, row: dict[str, float], calls: int = 5) -> dict:
    """Seconds of one epoch's `Tracker.log_metrics` into a fresh SQLite store."""
    try:
        from dedl_experiments.tracking.mlflow_store import Tracker
    except Exception as err:  # ImportError, or a dependency of the wrong version
        return {"skipped": f"mlflow is not importable here ({type(err).__name__}: {err})"}
    start = time.perf_counter()
    try:
        tracker = Tracker(f"sqlite:///{workdir / 'mlflow.db'}", "dedl-bench")
        run_id = tracker.start("bench", {}).info.run_id
    except Exception as err:  # a partial MLflow install on a device machine
        return {"skipped": f"the MLflow store could not be opened ({type(err).__name__}: {err})"}
    open_s = time.perf_counter() - start
    tracker.log_metrics(run_id, row, step=0)  # warm: lazy imports, first writes
    seconds = []
    for step in range(1, calls + 1):
        start = time.perf_counter()
        tracker.log_metrics(run_id, row, step=step)
        seconds.append(time.perf_counter() - start)
    tracker.end(run_id, "FINISHED")
    return {"log_metrics_s": spread(seconds), "metrics_per_row": len(row),
            "open_store_and_start_run_s": open_s}


def epoch_row(train: dict, val: dict) -> dict[str, float]:
    """A row as `fit` logs it at the end of every epoch."""
    row = {f"train_{k}": v for k, v in train.items()} | {f"val_{k}": v for k, v in val.items()}
    return row | {"lr_net": 3.6e-4, "lr_app": 1e-3, "epoch_time_s": 1.0}


def projection(train_none: float, train_gelu: float, val: float, how: str) -> dict:
    """Table 2 at the paper's budget on this machine, from seconds per tile at 480 px.

    Every cell is costed as the measured UNet-ResNet18 (ResNet-34/50/101 and UNet++ cells
    cost more, so this is a lower bound), without early stopping; a third of the cells
    train without the APP, two thirds with it (ReLU costs about what GELU does)."""
    p = PAPER
    epoch = {app: p["train_tiles"] * s + p["val_tiles"] * val
             for app, s in (("none", train_none), ("gelu", train_gelu))}
    cell = {app: p["epochs"] * e for app, e in epoch.items()}
    total = p["cells"] * (cell["none"] / 3 + 2 * cell["gelu"] / 3)
    return {"paper": p, "how": how,
            "train_s_per_tile": {"none": train_none, "gelu": train_gelu}, "val_s_per_tile": val,
            "epoch_s": epoch, "cell_s": cell, "table2_s": total, "table2_days": total / 86400}


def record_bench_memory(setup: Setup, device: torch.device, loops: dict) -> float | None:
    """Record ours (app=gelu)'s peak for `speed.jobs_per_gpu=auto` in the ledger of the default
    data folder (`$DEDL_DATA_DIR` or ./data), where jobs record theirs: its peak reserved
    memory measured alone (`loop_peaks_alone`), the figure a job records."""
    peak = loops.get("ours_gelu", {}).get("peak_reserved_mb")
    if device.type != "cuda" or not peak:
        return None
    from omegaconf import open_dict

    cfg = setup.config("gelu")
    with open_dict(cfg):
        cfg.data_dir = data_bench.compose_config([]).data_dir
    return record_peak_memory(cfg, device, "bench unet-resnet18-app_gelu", peak_mb=peak)


# --- the whole benchmark ---------------------------------------------------------------------


def run(tile: int = 256, batch: int = 8, steps: int | None = None, repeats: int = 3,
        warmup: int | None = None, device: str = "auto", workdir: Path | None = None,
        workers: int | None = None, inference_tiles: int | None = None,
        proj_batch: int | None = None, proj_steps: int = 1, height: int = synthetic.FULL_HEIGHT,
        width: int = synthetic.FULL_WIDTH, extras: bool = True, mlflow: bool = True,
        project: bool = True, log: Callable[[str], None] = print,
        progress: Callable[[dict], None] | None = None,
        section: Callable[[str, dict], None] | None = None,
        sweep_ks: list[int] | None = None, sweep_options: dict | None = None) -> dict:
    """The benchmark; `extras=False` leaves out inference, the data pipeline and validation,
    `mlflow=False` the MLflow timing, `project=False` the 480 px projection (for tests).
    Each section reads what the earlier ones measured, never state they left behind: a
    section's stores and processes are its own (sweep_bench gives its jobs their store).
    `progress(report)` is called after each part with what has been measured so far, and
    `section(name, results)` with that part's own results. `sweep_ks`: the sweep section's
    jobs per GPU (benchmarks/sweep_bench.py; `sweep_options` are its `run` arguments).

    Warm-up: on CUDA `warmup` full steps (torch.compile, cuDNN and the allocator settle there,
    so the shapes must be the timed ones); on CPU, where nothing compiles, one partial batch of
    `warmup` tiles per loop (worker start, thread pools, first allocations) keeps the default
    run within minutes."""
    progress = progress or (lambda report: None)
    dev = pick_device(device)
    cuda = dev.type == "cuda"
    steps = steps or (100 if cuda else 1)
    warmup = warmup if warmup is not None else (5 if cuda else 2)
    warm_tiles = None if cuda else min(warmup, batch)
    warm_text = (f"{warmup} warm-up step(s)" if cuda else
                 f"a warm-up batch of {warm_tiles} tile(s)")
    inference_tiles = inference_tiles or (min(steps * batch, 320) if cuda else min(2, steps * batch))
    sections: dict[str, float] = {}
    clock = [time.perf_counter()]

    def done(name: str, *keys: str) -> None:
        now = time.perf_counter()
        sections[name] = round(now - clock[0], 1)
        clock[0] = now
        progress(report)
        if section:
            section(name, {"seconds": sections[name]} | {k: report[k] for k in keys if k in report})

    with tempfile.TemporaryDirectory(prefix="dedl-bench-") as tmp:
        work = Path(workdir or tmp)
        report: dict = {"config": {
            "device": str(dev),
            "device_name": torch.cuda.get_device_name(dev) if cuda else (platform.processor() or "cpu"),
            "tile": tile, "batch": batch, "steps": steps, "repeats": repeats, "warmup": warm_text,
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in os.getloadavg()]},
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
            "machine": platform.platform(), "section_s": sections}
        start = time.perf_counter()
        if cuda:
            log("measuring the bf16 matmul peak ...")
            report["bf16_peak_flops"] = bf16_matmul_peak(dev)
            done("bf16 peak", "bf16_peak_flops")
        # Enough distinct tiles for the data-pipeline passes; the loops cycle through them.
        unique = min(max(steps * batch, inference_tiles, MIN_UNIQUE_TILES if extras else 1),
                     MAX_UNIQUE_TILES)
        log(f"making synthetic tiles ({tile} px) ...")
        setup = make_setup(work, tile, batch, dev, unique, workers, height, width)
        report["config"].update(workers=setup.workers, unique_tiles=setup.tiles.count)
        done("synthetic data + prepare", "config")

        alone = None
        if cuda:
            log("peak memory of each loop alone ...")
            alone = loop_peaks_alone(setup, max(1, warmup) * batch)
        log(f"timing the loops: {warm_text}, then {repeats} x {steps} step(s) of {batch} tiles ...")
        loops, fws = time_loops(setup, steps, repeats, warmup, warmup_tiles=warm_tiles)
        for name, peak in (alone or {}).items():  # on CPU: the process's RSS, as read there
            loops[name]["peak_memory_mb"] = peak["allocated_mb"]
            loops[name]["peak_reserved_mb"] = peak["reserved_mb"]
        report["loops"] = loops
        report["ratio_ours_over_reference"] = (loops["ours_none"]["tiles_per_s"]["median"]
                                               / loops["reference"]["tiles_per_s"]["median"])
        report["app_overhead_pct"] = 100 * (loops["ours_none"]["tiles_per_s"]["median"]
                                            / loops["ours_gelu"]["tiles_per_s"]["median"] - 1)
        flops = training_flops(tile, batch)
        report["flops"] = flops
        peak = report.get("bf16_peak_flops")
        for name, result in loops.items():
            per_tile = flops["net_per_tile"] + (flops["app_per_tile"] if name == "ours_gelu" else 0)
            achieved = per_tile * result["tiles_per_s"]["median"]
            result["achieved_flops"] = achieved
            result["mfu"] = achieved / peak if peak else None
        if cuda:  # what `speed.jobs_per_gpu=auto` plans with (see record_bench_memory)
            report["recorded_peak_mb"] = record_bench_memory(setup, dev, loops)
        done("training loops + FLOPs", "loops", "flops", "ratio_ours_over_reference",
             "app_overhead_pct")

        if cuda:
            log("counting host syncs in the training loop ...")
            report["host_syncs"] = count_host_syncs(setup, fws["ours_gelu"], min(steps, 8))
            done("host syncs", "host_syncs")
        if extras:
            log("timing inference ...")
            report["inference"] = time_inference(setup, fws, inference_tiles, repeats)
            done("inference", "inference")
            log("timing the data pipeline alone ...")
            report["data_pipeline"] = time_data_pipeline(setup, repeats)
            report["data_pipeline"]["training_tiles_per_s"] = loops["ours_none"]["tiles_per_s"]["median"]
            done("data pipeline", "data_pipeline")
            if tile == PAPER["tile"]:
                log("timing validation ...")
                report["validation"] = time_validation(setup, fws["ours_none"], steps * batch,
                                                       repeats)
                done("validation", "validation")
        if project:
            if tile == PAPER["tile"] and "validation" in report:
                proj = projection(loops["ours_none"]["s_per_tile"], loops["ours_gelu"]["s_per_tile"],
                                  report["validation"]["s_per_tile"], "the timed loops above (480 px)")
            else:
                pb = proj_batch or (batch if cuda else 2)
                pw = None if cuda else 1
                log(f"measuring {PAPER['tile']} px for the projection: batch {pb}, "
                    f"{proj_steps} timed step(s) per APP setting ...")
                setup480 = make_setup(work, PAPER["tile"], pb, dev, max(pb * proj_steps, 2 * pb),
                                      workers, height, width)
                loops480, fws480 = time_loops(setup480, proj_steps, 1, warmup,
                                              ("ours_none", "ours_gelu"), warmup_tiles=pw)
                val = time_validation(setup480, fws480["ours_none"], pb * proj_steps, 1,
                                      warmup_tiles=pw)
                warm480 = f"{warmup} warm-up step(s)" if cuda else "a warm-up batch of 1 tile"
                proj = projection(loops480["ours_none"]["s_per_tile"], loops480["ours_gelu"]["s_per_tile"],
                                  val["s_per_tile"], f"a short run at 480 px: batch {pb}, {warm480} "
                                  f"then {proj_steps} timed step(s) per APP setting, validation "
                                  f"{pb * proj_steps} tiles")
                proj["peak_memory_mb_480"] = max(r["peak_memory_mb"] for r in loops480.values())
                del fws480
            report["projection"] = proj
            done("480 px projection", "projection")
        if mlflow:
            log("timing MLflow logging ...")
            row = epoch_row(loops["ours_gelu"]["last_metrics"], loops["ours_none"]["last_metrics"])
            ml = time_mlflow(work, row)
            if "log_metrics_s" in ml:
                s = ml["log_metrics_s"]["median"]
                ml["bench_epoch_s"] = statistics.median(loops["ours_gelu"]["seconds"])
                ml["share_of_bench_epoch_pct"] = 100 * s / ml["bench_epoch_s"]
                if "projection" in report:
                    ml["paper_epoch_s"] = report["projection"]["epoch_s"]["gelu"]
                    ml["share_of_paper_epoch_pct"] = 100 * s / ml["paper_epoch_s"]
            report["mlflow"] = ml
            done("MLflow", "mlflow")
        if sweep_ks:
            options = dict(sweep_options or {})
            proj = report.get("projection")
            if proj and "val_weight" not in options:  # a validation tile's cost, measured
                options["val_weight"] = proj["val_s_per_tile"] / proj["train_s_per_tile"]["none"]
            n_gpus = torch.cuda.device_count() if cuda else 0
            sweep_dir = work / "sweep"
            sweep_dir.mkdir(parents=True, exist_ok=True)

            def one_sweep(sweep_report: dict) -> None:
                report["sweep"] = sweep_report
                last = sweep_report["sweeps"][-1]
                done(f"sweep k={last['k']}")
                if section:
                    section(f"sweep k={last['k']} result", last)

            sweep_bench.run(sweep_ks, small=options.pop("small", not cuda),
                            epochs=options.pop("epochs", 2),
                            images=options.pop("images", 1 if cuda else 2),
                            compile_=options.pop("compile_", False), workdir=sweep_dir,
                            n_gpus=n_gpus, timeout=options.pop("timeout", 1800), log=log,
                            on_result=one_sweep, **options)
        report["peak_memory_mb_process"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        report["config"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        report["config"]["total_s"] = round(time.perf_counter() - start, 1)
    return report


# --- output ----------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds:.1f} s"


def markdown(report: dict) -> str:
    c = report["config"]
    cuda = c["device"].startswith("cuda")
    memory = "peak CUDA memory allocated, each loop alone" if cuda else "peak RSS of the process so far"
    lines = [
        "# Training-speed benchmark: framework loop vs the released notebooks' loop",
        "",
        f"Device {c['device']} ({c['device_name']}), {c['cpus']} CPUs, {c['torch_threads']} torch "
        f"threads, loader workers {c['workers']}. UNet-ResNet18 (scSE, depth 3), {c['tile']} px "
        f"tiles, batch {c['batch']}; per loop {c['warmup']}, then "
        f"{c['repeats']} timed repetitions of {c['steps']} step(s) ({c['steps'] * c['batch']} "
        f"tiles, cycling {c['unique_tiles']} distinct synthetic tiles), alternating between the "
        f"loops. Load average (1/5/15 min) {c['load_average_before']} before, "
        f"{c['load_average_after']} after: other processes share this machine. "
        f"Total {c['total_s']} s ({', '.join(f'{k} {v} s' for k, v in report['section_s'].items())}).",
        "",
        f"| loop | tiles/s median | min | max | s/tile | achieved GFLOP/s | MFU | {memory} (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["loops"].items():
        t = r["tiles_per_s"]
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else "GPU only"
        lines.append(f"| {LABELS[name]} | {t['median']:.3f} | {t['min']:.3f} | {t['max']:.3f} | "
                     f"{r['s_per_tile']:.4f} | {r['achieved_flops'] / 1e9:.1f} | {mfu} | "
                     f"{r['peak_memory_mb']:.0f} |")
    lines += ["", f"- **ours / REFERENCE (app=none, same model and tiles): "
              f"{report['ratio_ours_over_reference']:.2f}x** tiles/s",
              f"- APP (gelu) training overhead: {report['app_overhead_pct']:+.1f} % time per tile "
              "(ours app=gelu vs app=none)"]
    f = report["flops"]
    lines.append(f"- FLOPs per training step (forward + backward, batch {f['batch']}, {f['tile']} px): "
                 f"network {f['net_per_step'] / 1e9:.1f} GFLOP, APP {f['app_per_step'] / 1e9:.1f} GFLOP "
                 f"({100 * f['app_per_step'] / f['net_per_step']:.1f} % of the network); per tile "
                 f"{f['net_per_tile'] / 1e9:.2f} + {f['app_per_tile'] / 1e9:.2f} GFLOP")
    if "bf16_peak_flops" in report:
        lines.append(f"- measured bf16 matmul peak (8192^3, CUDA events): "
                     f"{report['bf16_peak_flops'] / 1e12:.0f} TFLOP/s; MFU = achieved / this peak")
    else:
        lines.append("- MFU is reported on CUDA only (against a measured bf16 matmul peak); on CPU "
                     "the table gives achieved FLOP/s")
    if "host_syncs" in report:
        h = report["host_syncs"]
        lines.append(f"- host syncs in ours' training loop (torch.cuda.set_sync_debug_mode): "
                     f"{h['syncs'][0]} in {h['steps'][0]} steps, {h['syncs'][1]} in {h['steps'][1]} "
                     f"steps -> {h['per_step']:.1f} per step, {h['per_epoch']:.1f} per epoch; "
                     f"where: {h['places']}")
    if "inference" in report:
        i = report["inference"]
        parts = [f"{name} {i[name]['ms_per_tile']['median']:.1f} ms/tile "
                 f"(min {i[name]['ms_per_tile']['min']:.1f}, max {i[name]['ms_per_tile']['max']:.1f}; "
                 f"saved model {i[name]['saved_parameters']:,} parameters)"
                 for name in ("ours_none", "ours_gelu") if name in i]
        lines.append(f"- inference (`predict_tiles`, {i['tiles']} tiles, batch {i['batch']}), the "
                     f"network trained without / with the APP: " + "; ".join(parts)
                     + (f"; ratio with/without APP {i['gelu_over_none']:.3f} (medians), "
                        f"{i['gelu_over_none_min']:.3f} (minima)" if "gelu_over_none" in i else ""))
    if "data_pipeline" in report:
        d = report["data_pipeline"]
        lines.append(f"- data pipeline alone ({d['tiles']} tiles, {d['workers']} workers, batch "
                     f"{c['batch']}): REFERENCE {d['reference']['tiles_per_s']['median']:.1f} tiles/s, "
                     f"ours {d['ours']['tiles_per_s']['median']:.1f} tiles/s ({d['ratio']:.2f}x); "
                     f"ours trains at {d['training_tiles_per_s']:.1f} tiles/s, so the loader runs "
                     f"{d['ours']['tiles_per_s']['median'] / d['training_tiles_per_s']:.1f}x faster "
                     "than training consumes")
    if "mlflow" in report:
        m = report["mlflow"]
        if "skipped" in m:
            lines.append(f"- MLflow: skipped ({m['skipped']})")
        else:
            text = (f"- MLflow: one epoch's row ({m['metrics_per_row']} metrics) via "
                    f"Tracker.log_metrics into SQLite: {1e3 * m['log_metrics_s']['median']:.1f} ms "
                    f"(min {1e3 * m['log_metrics_s']['min']:.1f}, max {1e3 * m['log_metrics_s']['max']:.1f}) "
                    f"= {m['share_of_bench_epoch_pct']:.3f} % of this benchmark's epoch "
                    f"({m['bench_epoch_s']:.2f} s)")
            if "share_of_paper_epoch_pct" in m:
                text += (f", {m['share_of_paper_epoch_pct']:.5f} % of a paper-budget epoch "
                         f"({_duration(m['paper_epoch_s'])})")
            lines.append(text + f"; opening the store + starting a run (once per job): "
                         f"{m['open_store_and_start_run_s']:.2f} s")
    if "validation" in report:
        v = report["validation"]
        lines.append(f"- validation (forward only, run_epoch): {v['tiles_per_s']['median']:.2f} tiles/s")
    lines.append(f"- peak RSS of the whole process: {report['peak_memory_mb_process']:.0f} MB"
                 + ("" if cuda else "; on a shared, loaded CPU the spread (min/max) is wide: "
                    "compare medians, and minima for the least disturbed runs"))
    if "projection" in report:
        p = report["projection"]
        pp = p["paper"]
        lines += [
            "",
            f"## Projected wall time of Table 2 on this machine ({c['device']})",
            "",
            f"From {p['how']}: training {p['train_s_per_tile']['none']:.3f} s/tile without the APP, "
            f"{p['train_s_per_tile']['gelu']:.3f} s/tile with it; validation "
            f"{p['val_s_per_tile']:.3f} s/tile (forward only).",
            f"Epoch = {pp['train_tiles']} training + {pp['val_tiles']} validation tiles: "
            f"{_duration(p['epoch_s']['none'])} without APP, {_duration(p['epoch_s']['gelu'])} with. "
            f"Cell = {pp['epochs']} epochs: {_duration(p['cell_s']['none'])} / "
            f"{_duration(p['cell_s']['gelu'])}.",
            f"**Table 2 = {pp['cells']} cells (1/3 without APP, 2/3 with): "
            f"{_duration(p['table2_s'])}** ({p['table2_s']:.3g} s), one cell at a time, every "
            "cell costed as UNet-ResNet18 and run for all 50 epochs (deeper encoders and UNet++ "
            "cost more: a lower bound).",
        ]
    if report.get("sweep", {}).get("sweeps"):
        lines += ["", sweep_bench.markdown(report["sweep"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None,
                        help="timed steps per repetition (default: 1 on CPU, 100 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed warm-up per loop: steps on CUDA (default 5), tiles of "
                             "one partial batch on CPU (default 2)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None,
                        help="loader workers for both loops (default: the config's loader.num_workers)")
    parser.add_argument("--inference-tiles", type=int, default=None)
    parser.add_argument("--proj-batch", type=int, default=None,
                        help="batch of the 480 px projection run when --tile is not 480 "
                             "(default: 2 on CPU, --batch on CUDA)")
    parser.add_argument("--proj-steps", type=int, default=1)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--sweep-ks", default=None,
                        help="jobs per GPU of the sweep section (default 1,2,4 on CUDA, 1,2 on CPU)")
    parser.add_argument("--no-sweep", action="store_true", help="skip the sweep section")
    parser.add_argument("--sweep-epochs", type=int, default=2)
    parser.add_argument("--sweep-images", type=int, default=None,
                        help="images per patient of the mini sweep (default 1 on CUDA, 2 on CPU)")
    parser.add_argument("--sweep-compile", action="store_true",
                        help="torch.compile in the sweep's jobs (default off)")
    parser.add_argument("--sweep-timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: $OUT when set, else bench_results/)")
    args = parser.parse_args(argv)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    # Both loops use the config's worker count, which may exceed the CPUs of a small machine.
    warnings.filterwarnings("ignore", message="This DataLoader will create")

    def partial(report: dict) -> None:
        (out / "bench.partial.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    cuda = pick_device(args.device).type == "cuda"
    ks = None if args.no_sweep else [int(k) for k in (args.sweep_ks or ("1,2,4" if cuda else "1,2")).split(",")]
    options = {"epochs": args.sweep_epochs, "compile_": args.sweep_compile,
               "timeout": args.sweep_timeout}
    if args.sweep_images:
        options["images"] = args.sweep_images
    report = run(tile=args.tile, batch=args.batch, steps=args.steps, repeats=args.repeats,
                 warmup=args.warmup, device=args.device, workers=args.workers,
                 inference_tiles=args.inference_tiles, proj_batch=args.proj_batch,
                 proj_steps=args.proj_steps, mlflow=not args.no_mlflow,
                 log=lambda text: print(text, flush=True), progress=partial,
                 section=lambda name, data: sweep_bench.append_result(out, name, data),
                 sweep_ks=ks, sweep_options=options)
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "bench.partial.json").unlink(missing_ok=True)  # complete: bench.json has it all
    table = markdown(report)
    (out / "bench.md").write_text(table)
    print(table, flush=True)
    return report


if __name__ == "__main__":
    main()
