"""One device per parallel job: jobs of a sweep launched side by side must not share a GPU by
accident, nor each start a thread per core on a CPU-only machine.

`pin_device(job_num, n_jobs)` decides (and applies) it from the job's number in the sweep:

* with CUDA devices, job k gets `cuda:(k % n_gpus)` (made the current CUDA device);
* without, each job gets `max(1, cpus // n_jobs)` torch threads, `cpus` being the cores this
  process may run on (a SLURM allocation's, not the node's).

`pin_current_job()` reads the job number and the launcher's `n_jobs` from Hydra; outside a
multirun it changes nothing.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _effective_jobs(n_jobs: int | None, cpus: int) -> int:
    """joblib's meaning of n_jobs: -1 = one per CPU, -2 = all but one, ..., None = 1."""
    if not n_jobs:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return n_jobs


def pin_device(job_num: int, n_jobs: int | None, *, n_gpus: int | None = None,
               cpus: int | None = None) -> dict:
    """Pin this process to job `job_num`'s device; returns what was chosen.

    {"device": "cuda:1", "gpu": 1, "n_gpus": 2} or {"device": "cpu", "torch_threads": 2}.
    `n_gpus` and `cpus` default to what this process sees (given only by tests).
    """
    if n_gpus is None:
        n_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_gpus > 0:
        index = job_num % n_gpus
        if torch.cuda.is_available():
            torch.cuda.set_device(index)
        return {"device": f"cuda:{index}", "gpu": index, "n_gpus": n_gpus}
    cpus = cpus or available_cpus()
    threads = max(1, cpus // _effective_jobs(n_jobs, cpus))
    torch.set_num_threads(threads)
    return {"device": "cpu", "torch_threads": threads}


def pin_current_job() -> dict:
    """`pin_device` for the running Hydra multirun job; {} (nothing changed) otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    if hc.mode is None or hc.mode.name != "MULTIRUN":
        return {}
    job_num = hc.job.get("num")
    if job_num is None:
        return {}
    chosen = pin_device(int(job_num), hc.launcher.get("n_jobs"))
    log.info("job #%s pinned to %s", job_num,
             ", ".join(f"{k}={v}" for k, v in chosen.items()))
    return chosen
