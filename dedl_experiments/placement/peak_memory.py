"""Recorded peak memory: what `speed.jobs_per_gpu=auto` plans with. Jobs (training.py) and the
benchmark write each run's peak reserved CUDA memory into `<data_dir>/peak_memory.json`; the
pool's sizing (multirun_launchers/devices.py) reads the largest for the sweep's setting.

Its own module, so that the speed switches (speed.py, which pin a job through devices.py) and
the pool's sizing share the ledger without importing each other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config.checks import scaled_tile_size
from dedl_experiments.run.locks import exclusive_lock

LEDGER = "peak_memory.json"


def _ledger_key(gpu_name: str, cfg: DictConfig) -> str:
    return (f"{gpu_name}|tile={scaled_tile_size(cfg)}|batch={cfg.train.batch_size}"
            f"|amp={cfg.speed.amp}")


def record_peak_memory(cfg: DictConfig, device: torch.device, what: str = "",
                       peak_mb: float | None = None) -> float | None:
    """Add this process's peak reserved CUDA memory (MiB; or `peak_mb`) to
    `<data_dir>/peak_memory.json` under (GPU name, tile size, batch size, amp), keeping the
    largest value seen; jobs and the benchmark call it, `auto` jobs per GPU reads it. Nothing
    on CPU."""
    if device.type != "cuda":
        return None
    peak = peak_mb if peak_mb is not None else torch.cuda.max_memory_reserved(device) / 2**20
    path = Path(cfg.data_dir) / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    key = _ledger_key(torch.cuda.get_device_name(device), cfg)
    with exclusive_lock(path.with_suffix(".lock")):
        try:
            ledger = json.loads(path.read_text()) if path.exists() else {}
        except ValueError:
            ledger = {}
        entry = ledger.get(key, {"peak_reserved_mb": 0.0, "models": []})
        entry["peak_reserved_mb"] = max(entry["peak_reserved_mb"], peak)
        model = what or f"{cfg.architecture.name}-{cfg.encoder.name}-app_{cfg.app.name}"
        entry["models"] = sorted(set(entry["models"]) | {model})
        ledger[key] = entry
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True))
        os.replace(tmp, path)
    return peak


def recorded_peak_mb(cfg: DictConfig, gpu_name: str | None = None) -> float | None:
    """The largest recorded peak (MiB) for this tile size, batch size and amp setting, on a GPU
    named `gpu_name` (default: any), over every model recorded: the cells of a sweep differ,
    so `auto` plans for the largest."""
    path = Path(OmegaConf.select(cfg, "data_dir", default="data")) / LEDGER
    try:
        ledger = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    suffix = _ledger_key("", cfg)
    peaks = [e["peak_reserved_mb"] for k, e in ledger.items()
             if k.endswith(suffix) and (gpu_name is None or k.startswith(gpu_name + "|"))]
    return max(peaks) if peaks else None
