"""Where a job runs, as a value: made once by the job (speed.place_job, from the pool's pinning in
multirun_launchers/devices.py) and handed to the task, which reads nothing global about it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class JobPlacement:
    device: torch.device
    jobs_on_device: int = 1  # jobs sharing the device: k on a GPU, the pool on the CPU, 1 alone
    loader_workers: int | None = None  # at most this many DataLoader workers (None: as configured)
    torch_threads: int | None = None  # the job's torch threads where the pool or config fixed them

    def workers(self, configured: int) -> int:
        """DataLoader workers for this job: the configured number, at most its share of cores."""
        return configured if self.loader_workers is None else min(configured, self.loader_workers)
