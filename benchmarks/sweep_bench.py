"""Sweep throughput: cells per hour of a 4-cell mini sweep run k jobs per GPU at once.

    python -m benchmarks.sweep_bench [--ks 1,2,4] [--small] [--epochs 2] [--out DIR]

The step benchmark (benchmarks/bench.py) times a training step; a table is a sweep of jobs,
each paying a fixed cost (start-up, model build, test inference, artifacts) beside its epochs.
This runs the real CLI: `python -m dedl_experiments -m hydra/launcher=gpus
speed.jobs_per_gpu=k app=none,gelu seed=1,2` (4 cells) in a fresh folder per k, on synthetic
data prepared once beforehand, with `tracking.uri=` that folder's own store (whatever
MLFLOW_TRACKING_URI says), and reads what the jobs recorded there:

- cells per hour = 4 cells / the sweep command's wall time;
- per cell: the epoch time after the first epoch (the first pays warm-up) and the fixed cost,
  (slot-seconds of the sweep - training seconds) / cells, where slot-seconds = wall time x
  jobs running at once;
- projected Table 2 at the paper's budget: 120 cells of 50 epochs over 1452 training and 720
  validation tiles, run k per GPU at once: ceil(120 / (k x GPUs)) waves of one cell each,
  a cell = fixed cost + 50 x the measured later-epoch time scaled by the paper's tiles per
  epoch (validation tiles weighed by `val_weight`, a validation tile's cost over a training
  tile's). Every cell is costed as UNet-ResNet18 (deeper encoders and UNet++ cost more: a
  lower bound), without early stopping.

Settings: the paper's (480 px tiles, batch 16, full-size synthetic images, UNet-ResNet18,
without and with the GELU APP) with `--epochs` epochs and `--images` images per patient; on
CPU `--small`: 1/16-size images and 32 px tiles. Each k's result is appended to
`<out>/results.jsonl` as soon as it is measured and `<out>/sweep.{json,md}` are rewritten, so
a time limit leaves what was measured. A sweep runs in a session of its own: at the time limit
its whole process group is killed (the launcher's pool workers too, which would train on).
A sweep that exits without a finished run in its store is an error that names the store and
what it holds, not a figure of 0 cells per hour.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

PAPER = {"tile": 480, "train_tiles": 1452, "val_tiles": 720, "epochs": 50, "cells": 120}
CELLS = ["app=none,gelu", "seed=1,2"]  # 4 cells: without / with the APP, 2 seeds
N_CELLS = 4
# A validation tile (forward only) costs about this share of a training tile when not measured.
DEFAULT_VAL_WEIGHT = 0.5


def base_overrides(small: bool, epochs: int, images: int, compile_: bool) -> list[str]:
    """The mini sweep's job settings (data_dir and the cells come on top)."""
    common = ["init=random", f"budget.epochs={epochs}", "train.patience=null",
              f"dataset.images_per_patient={images}", f"speed.compile={str(compile_).lower()}"]
    if small:
        return ["budget=smoke", "budget.scale=0.0625", *common]
    return ["budget=paper", *common]


def job_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "DEDL_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "TQDM_DISABLE": "1"})
    env.update(extra)
    return env


class NoCellsError(RuntimeError):
    """A sweep exited without a finished run in the store it was given."""


def run_in_own_session(command: list[str], cwd: Path, env: dict[str, str],
                       timeout: float) -> subprocess.CompletedProcess:
    """`subprocess.run` for a command that starts processes of its own (Hydra's launcher pool):
    it leads a new session, and when it runs past `timeout` (or this process is interrupted)
    its whole process group is killed, not the leader alone; whatever of the group outlives a
    normal exit (idle pool workers) goes too."""
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except BaseException:  # TimeoutExpired, KeyboardInterrupt: the group goes first
            _kill_group(proc.pid)
            proc.communicate()
            raise
        _kill_group(proc.pid)
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:  # nothing of the group is left
        pass


def _cli(args: list[str], cwd: Path, timeout: float, module: str = "dedl_experiments"):
    start = time.perf_counter()
    proc = run_in_own_session([sys.executable, "-m", module, *args], cwd, job_env(), timeout)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} exited {proc.returncode}:\n"
                           f"{(proc.stdout + proc.stderr)[-3000:]}")
    return proc, seconds


def prepare(overrides: list[str], data_dir: Path, cwd: Path, timeout: float) -> float:
    """Synthetic data and the tile cache, once, before any timed sweep."""
    _, seconds = _cli([*overrides, f"data_dir={data_dir}"], cwd, timeout,
                      module="dedl_experiments.prepare")
    return seconds


def store_uri(folder: Path) -> str:
    """The MLflow store of the sweep run in `folder`."""
    return f"sqlite:///{folder.resolve() / 'mlflow.db'}"


def sweep_args(k: int, overrides: list[str], data_dir: Path, store: str | None = None) -> list[str]:
    """The sweep's command line; `store`: its jobs' tracking.uri (through the config, so that
    no MLFLOW_TRACKING_URI of this process's environment decides where they record)."""
    return ["-m", "hydra/launcher=gpus", f"speed.jobs_per_gpu={k}", *overrides,
            f"data_dir={data_dir}", *([f"tracking.uri={store}"] if store else []), *CELLS]


def read_runs(folder: Path) -> list[dict]:
    """Per job of the sweep in `folder` (its store: `store_uri`): its status, epoch times and
    training seconds."""
    import mlflow

    if not (folder / "mlflow.db").is_file():  # no job recorded here (opening would create it)
        return []
    client = mlflow.MlflowClient(store_uri(folder))
    experiment = client.get_experiment_by_name("dedl")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    out = []
    for run in runs:
        history = sorted(client.get_metric_history(run.info.run_id, "epoch_time_s"),
                         key=lambda m: m.step)
        out.append({"status": run.info.status, "name": run.info.run_name,
                    "epoch_s": [m.value for m in history],
                    "train_time_s": run.data.metrics.get("train_time_s"),
                    "device": run.data.tags.get("dedl.device"),
                    "torch_threads": run.data.tags.get("dedl.torch_threads"),
                    "tiles": {s: run.data.metrics.get(f"{s}_tiles") for s in ("train", "val")},
                    "tile_px": _tile_px(run.data.params)})
    return out


def _tile_px(params: dict) -> int | None:
    """The jobs' tile side: tiling.size scaled by the budget, rounded up to a multiple of 8."""
    try:
        return int(math.ceil(float(params["tiling.size"]) * float(params["budget.scale"]) / 8) * 8)
    except (KeyError, ValueError):
        return None


def summarise(k: int, wall_s: float, runs: list[dict], n_gpus: int, store: str = "its store") -> dict:
    """Cells per hour, later-epoch time and fixed cost per cell of one sweep; NoCellsError
    when none of its runs finished (a sweep that recorded elsewhere, or whose jobs failed)."""
    concurrent = min(N_CELLS, k * max(1, n_gpus))
    finished = [r for r in runs if r["status"] == "FINISHED"]
    if not finished:
        statuses = ", ".join(f"{n} {status}" for status, n in
                             sorted(Counter(r["status"] for r in runs).items())) or "none"
        raise NoCellsError(f"the sweep at k={k} exited after {wall_s:.1f} s but {store} holds no "
                           f"finished run of experiment 'dedl' ({len(runs)} run(s): {statuses}); "
                           "its jobs recorded elsewhere or failed")
    later = [e for r in finished for e in r["epoch_s"][1:]] or [e for r in finished for e in r["epoch_s"]]
    train_s = sum(r["train_time_s"] or 0.0 for r in finished)
    tiles = finished[0]["tiles"] if finished else {"train": None, "val": None}
    return {"k": k, "wall_s": wall_s, "cells": len(finished), "concurrent": concurrent,
            "cells_per_hour": 3600 * len(finished) / wall_s if finished else 0.0,
            "later_epoch_s": statistics.median(later) if later else None,
            "fixed_s_per_cell": (wall_s * concurrent - train_s) / max(1, len(finished)),
            "train_tiles": tiles["train"], "val_tiles": tiles["val"],
            "tile_px": finished[0].get("tile_px") if finished else None,
            "devices": sorted({str(r["device"]) for r in finished}),
            "torch_threads": sorted({str(r["torch_threads"]) for r in finished})}


def project(result: dict, n_gpus: int, val_weight: float = DEFAULT_VAL_WEIGHT) -> dict | None:
    """Table 2 at the paper's budget from one sweep's figures (see the module's docstring)."""
    if not result.get("later_epoch_s") or not result.get("train_tiles"):
        return None
    p = PAPER
    mini = result["train_tiles"] + val_weight * (result["val_tiles"] or 0)
    paper = p["train_tiles"] + val_weight * p["val_tiles"]
    # Smaller tiles (the CPU version): time per tile taken as proportional to its pixels.
    pixels = (p["tile"] / result["tile_px"]) ** 2 if result.get("tile_px") else 1.0
    epoch_s = result["later_epoch_s"] * paper / mini * pixels
    cell_s = result["fixed_s_per_cell"] + p["epochs"] * epoch_s
    at_once = result["k"] * max(1, n_gpus)
    waves = math.ceil(p["cells"] / at_once)
    return {"epoch_s": epoch_s, "cell_s": cell_s, "at_once": at_once, "waves": waves,
            "pixel_scale": pixels,
            "table2_s": waves * cell_s, "table2_h": waves * cell_s / 3600,
            "val_weight": val_weight}


def run(ks: list[int], small: bool, epochs: int, images: int, compile_: bool, workdir: Path,
        n_gpus: int, timeout: float, val_weight: float = DEFAULT_VAL_WEIGHT,
        log: Callable[[str], None] = print, on_result: Callable[[dict], None] | None = None) -> dict:
    """The mini sweep at each k in turn; `on_result(report)` after each one."""
    start = time.perf_counter()
    overrides = base_overrides(small, epochs, images, compile_)
    data_dir = workdir / "data"
    report: dict = {"config": {"ks": ks, "small": small, "epochs": epochs, "images_per_patient": images,
                               "compile": compile_, "n_gpus": n_gpus, "cells": CELLS,
                               "overrides": overrides, "val_weight": val_weight},
                    "sweeps": []}
    log(f"sweep benchmark: preparing data ({' '.join(overrides)}) ...")
    report["config"]["prepare_s"] = prepare(overrides, data_dir, workdir, timeout)
    for k in ks:
        folder = workdir / f"k{k}"
        folder.mkdir(parents=True, exist_ok=True)
        log(f"sweep benchmark: 4 cells at k={k} job(s) per GPU ...")
        deadline = timeout - (time.perf_counter() - start)
        store = store_uri(folder)
        try:
            _, wall = _cli(sweep_args(k, overrides, data_dir, store), folder, max(60.0, deadline))
            result = summarise(k, wall, read_runs(folder), n_gpus, store)
        except (RuntimeError, subprocess.TimeoutExpired) as err:  # NoCellsError included
            log(f"  k={k}: failed: {str(err).splitlines()[0][:500]}")
            report["sweeps"].append({"k": k, "error": str(err)[-2000:]})
            if on_result:
                on_result(report)
            break
        result["projection"] = project(result, n_gpus, val_weight)
        report["sweeps"].append(result)
        log(f"  k={k}: {result['cells_per_hour']:.1f} cells/h ({wall:.1f} s for {result['cells']} cells)")
        if on_result:
            on_result(report)
    base = next((s for s in report["sweeps"] if s.get("k") == 1 and "error" not in s), None)
    for s in report["sweeps"]:
        if base and "error" not in s:
            s["speedup_over_k1"] = s["cells_per_hour"] / base["cells_per_hour"]
    return report


def markdown(report: dict) -> str:
    c = report["config"]
    where = "small CPU version (1/16-size images, 32 px tiles)" if c["small"] else \
        "the paper's settings (480 px tiles, batch 16, full-size synthetic images)"
    lines = [
        "## Sweep throughput: a 4-cell mini sweep, k jobs per GPU at once",
        "",
        f"{where}; UNet-ResNet18 without / with the GELU APP x 2 seeds, {c['epochs']} epochs, "
        f"{c['images_per_patient']} image(s) per patient, torch.compile "
        f"{'on' if c['compile'] else 'off'}, {c['n_gpus']} GPU(s); data prepared beforehand "
        f"({c.get('prepare_s', 0):.0f} s, not counted).",
        "",
        "| k | wall (s) | cells | cells/h | vs k=1 | later epoch (s) | fixed cost per cell (s) | "
        "projected Table 2 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["sweeps"]:
        if "error" in s:
            why = s["error"].splitlines()[0][:300].replace("|", "/") if s["error"] else ""
            lines.append(f"| {s['k']} | failed or cut short: {why} | | | | | | |")
            continue
        p = s.get("projection")
        proj = f"{p['table2_h']:.1f} h ({p['waves']} waves of {p['at_once']})" if p else "n/a"
        speed = f"{s['speedup_over_k1']:.2f}x" if "speedup_over_k1" in s else ""
        epoch = f"{s['later_epoch_s']:.2f}" if s["later_epoch_s"] else "n/a"
        lines.append(f"| {s['k']} | {s['wall_s']:.1f} | {s['cells']} | {s['cells_per_hour']:.1f} | "
                     f"{speed} | {epoch} | {s['fixed_s_per_cell']:.1f} | {proj} |")
    lines += ["", "Projection: 120 cells x (fixed cost + 50 x the later-epoch time scaled to 1452 "
              f"training + 720 validation tiles, a validation tile weighing {c['val_weight']:g} of "
              "a training tile), k x GPUs cells at once; every cell costed as UNet-ResNet18 (a "
              "lower bound), no early stopping. The fixed cost includes start-up, test inference "
              "and artifacts, and the tail of the sweep where fewer than k x GPUs cells run."]
    if c["small"]:
        lines.append("Small version: its tiles are far smaller than 480 px, so its epoch time is "
                     "scaled by the ratio of pixels per tile; a rough figure, for the CPU only.")
    return "\n".join(lines) + "\n"


def append_result(out: Path, section: str, data: dict) -> None:
    """One line per finished section in `<out>/results.jsonl` (kept when a time limit hits)."""
    with open(out / "results.jsonl", "a") as handle:
        handle.write(json.dumps({"section": section, "time": time.time(), **data}, default=str) + "\n")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default=None, help="jobs per GPU to measure (default 1,2,4 on "
                        "CUDA, 1,2 on CPU)")
    parser.add_argument("--small", action="store_true", default=None,
                        help="the small CPU version (default on a machine without GPU)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--images", type=int, default=None,
                        help="images per patient (default 1 at the paper's settings, 2 small)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile in the jobs (default off: on the H200 the eager "
                             "step was as fast, and a cold compile costs about 90 s per job)")
    parser.add_argument("--val-weight", type=float, default=DEFAULT_VAL_WEIGHT)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for everything")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    small = (n_gpus == 0) if args.small is None else args.small
    ks = [int(k) for k in (args.ks or ("1,2,4" if n_gpus else "1,2")).split(",")]
    images = args.images or (2 if small else 1)
    out = args.out or (Path(os.environ["OUT"]) if os.environ.get("OUT") else Path("bench_results"))
    out.mkdir(parents=True, exist_ok=True)

    def write(report: dict) -> None:
        (out / "sweep.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (out / "sweep.md").write_text(markdown(report))
        append_result(out, f"sweep k={report['sweeps'][-1]['k']}", report["sweeps"][-1])

    with tempfile.TemporaryDirectory(prefix="dedl-sweep-bench-") as tmp:
        report = run(ks, small, args.epochs, images, args.compile, Path(tmp), n_gpus,
                     args.timeout, args.val_weight, log=lambda t: print(t, flush=True),
                     on_result=write)
    print(markdown(report), flush=True)
    return report


if __name__ == "__main__":
    main()
