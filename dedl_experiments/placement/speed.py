"""Speed switches: mixed precision, channels_last and torch.compile, for CUDA runs; where a job
runs (device, share of a parallel pool); the compile cache shared by jobs; peak memory.

On CPU every switch that would change numerics stays off (runs are fp32 and reproducible);
`channels_last: true` may still be forced there, since it only changes memory layout.
"""

from __future__ import annotations

import gc
import logging
import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from omegaconf import DictConfig

from dedl_experiments.placement import JobPlacement
from multirun_launchers.devices import cpu_threads_setting, pin_current_job

if TYPE_CHECKING:
    from dedl_experiments.tasks.base import Task

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


@dataclass
class Speed:
    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    scaler: torch.amp.GradScaler

    @property
    def autocast(self) -> torch.autocast:
        device = "cuda" if self.amp_dtype is not None else "cpu"
        return torch.autocast(device, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)


def speed_settings(cfg: DictConfig, device: torch.device) -> Speed:
    cuda = device.type == "cuda"
    amp = AMP_DTYPES[cfg.speed.amp] if cuda else None
    channels_last = cfg.speed.channels_last is True or (cfg.speed.channels_last == "auto" and cuda)
    if cfg.speed.compile and not cuda:
        log.info("torch.compile skipped: it is used on CUDA only (this run is on %s)", device)
    if cuda:
        # The APP stays fp32 under autocast (tasks/segmentation.py): TF32 matmuls keep it fast.
        # speed.tf32=false keeps every fp32 matmul and convolution in full fp32 (the paper's runs).
        tf32 = bool(cfg.speed.tf32)
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
    threads = cpu_threads_setting(cfg.speed.get("cpu_threads", "auto"))
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)  # a fixed count: the same CPU result in any pool
    compile_ = bool(cfg.speed.compile and cuda)
    if compile_:
        use_compile_cache(cfg.speed.get("compile_cache"))
    # fp16 needs loss scaling to keep small gradients; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    return Speed(amp, channels_last, compile_, scaler)


def use_compile_cache(folder: str | Path | None) -> Path | None:
    """Point torch.compile's on-disk caches (Inductor's FX graph and autograd caches, and the
    Triton kernels it keeps beneath them) at `folder`, shared by every job that uses it: a job
    whose graphs an earlier job compiled loads them instead of compiling (the H200 sweep's
    first epoch: 88.7 s with compilation against 12.8 s for the next job). None keeps torch's
    default (/tmp/torchinductor_<user>: per machine, often per SLURM job). An explicit
    TORCHINDUCTOR_CACHE_DIR in the environment wins."""
    if not folder:
        return None
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
    try:  # on by default in recent torch; set so that an older default does not turn them off
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config

        inductor_config.fx_graph_cache = True
        functorch_config.enable_autograd_cache = True
    except (ImportError, AttributeError):
        pass
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])


def apply_to_modules(task: Task, speed: Speed) -> None:
    """Switch the task's network (`task.network()`, whose input the loop makes channels_last)
    to that memory format, and compile every module of the task."""
    if speed.channels_last:
        task.network().to(memory_format=torch.channels_last)
    if speed.compile:
        for module in task.modules().values():
            module.compile()  # in place: state_dict keys stay those of the plain module


def device_name(device: torch.device) -> str:
    """What the cost figures are in: the GPU's name, or the CPU model."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({torch.get_num_threads()} threads)"
    except OSError:
        pass
    return platform.processor() or "cpu"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def place_job(cfg: DictConfig) -> JobPlacement:
    """The job's placement: its device and, in a parallel sweep, its pinning (GPU slot, torch
    threads and loader workers, multirun_launchers/devices.py); `device=auto` takes the pinned
    device."""
    pinned = pin_current_job()
    device = pick_device(pinned["device"] if pinned and cfg.device == "auto" else cfg.device)
    threads = cpu_threads_setting(cfg.speed.get("cpu_threads", "auto"))
    if threads is not None:
        torch.set_num_threads(threads)
    if device.type == "cuda" and device.index is not None:
        # The job's GPU becomes the current device, so that what uses the current device
        # (the CUDA context, caches, streams) is created there and not on GPU 0.
        torch.cuda.set_device(device)
    if not pinned:  # one job alone: the configured loader workers, no share to tag
        return JobPlacement(device)
    shared_by = pinned.get("jobs_per_gpu", 1) if "gpu" in pinned else pinned.get("pool", 1)
    return JobPlacement(device, shared_by, pinned.get("loader_workers"), threads or pinned.get("torch_threads"))


def reset_peak_memory(device: torch.device) -> None:
    """Start a run's peak memory afresh (CUDA only): a process may run several runs (a
    sequential sweep, a pool worker's next job, the folds of a cell), and torch's peak
    counters and its cache of freed blocks would otherwise carry the earlier runs' peak into
    this run's `peak_memory_mb` and into the ledger that `speed.jobs_per_gpu=auto` reads."""
    if device.type != "cuda":
        return
    gc.collect()  # the earlier run's tensors held only by reference cycles
    torch.cuda.empty_cache()  # cached free blocks count as reserved memory
    torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset (`reset_peak_memory`), or this
    process's peak RSS on CPU (RSS never resets: on CPU the peak of everything run so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
