"""Speed switches: mixed precision, channels_last and torch.compile, for CUDA runs.

On CPU every switch that would change numerics stays off (runs are fp32 and reproducible);
`channels_last: true` may still be forced there, since it only changes memory layout.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

import torch
from omegaconf import DictConfig

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
    # fp16 needs loss scaling to keep small gradients; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler("cuda", enabled=amp is torch.float16)
    return Speed(amp, channels_last, bool(cfg.speed.compile and cuda), scaler)


def apply_to_modules(task, speed: Speed) -> None:
    """Switch the task's network (and APP) to the chosen memory format and compile them."""
    if speed.channels_last:
        task.net.to(memory_format=torch.channels_last)
    if speed.compile:
        for module in task.modules().values():
            module.compile()  # in place: state_dict keys stay those of the plain module


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def peak_memory_mb(device: torch.device) -> float:
    """Peak allocated CUDA memory since the last reset, or this process's peak RSS on CPU
    (RSS never resets, so on CPU it is the peak of everything run so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
