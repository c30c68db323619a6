"""Where a parallel job runs: its GPU, its share of the CPU cores, its loader workers.

Jobs of a sweep launched side by side must not pile onto one GPU by accident, nor each start a
thread per core. A pool runs `k` jobs per GPU at once (`speed.jobs_per_gpu`, default 1; the
`gpus` launcher preset sizes its pool to k x GPUs):

* GPU: each job claims a free slot of the pool (a lock file per slot in the sweep folder,
  held for the job's lifetime, released when its process ends or the next job of that worker
  process starts) and takes GPU `slot % n_gpus`. Claiming, rather than deriving the GPU from
  the job number, keeps k jobs per GPU when jobs end out of order (cells differ in length).
  Without a slot folder the slot is `job_num % pool size`, which spreads jobs as evenly but
  can pile them up when they end out of order.
* cores: each concurrent job gets `cpus // pool size` torch threads (at least 1), `cpus` being
  the cores this process may run on (a SLURM allocation's, not the node's), and at most as
  many DataLoader workers (the job's placement.JobPlacement carries both to its task). Where
  OMP_NUM_THREADS is set, no job gets more torch threads than it says: a job run alone takes
  torch's default, which honours it, and a sweep's jobs keep to the same limit (a shared
  node's, or a machine whose other cores are busy).
* `speed.cpu_threads=N` fixes the torch threads of every job instead. On CPU a result depends
  on the thread count (the order of float sums in convolutions changes with it), so only a
  fixed count gives the same cell result whatever the pool size; `auto` (the default) favours
  speed.

Under SLURM (SLURM_JOB_ID set) the allocation is the job's own: its GPUs and cores are SLURM's
choice, and nothing is claimed.

`pin_current_job()` reads the job number, the launcher and the job's config from Hydra;
outside a multirun it changes nothing. The `gpus` preset's pool size comes from the resolver
`dedl_pool_size` (k x visible GPUs, or k on a machine without GPU), `auto` from `auto_k`; the
presets' resolvers are registered by `register_resolvers()`, which every entry point calls
before Hydra composes a config.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from dedl_experiments.config.config_rules import ConfigError
from dedl_experiments.placement.peak_memory import recorded_peak_mb

log = logging.getLogger(__name__)

# The slot lock this process holds (released when the process ends or pins again).
_SLOT_LOCK = None
# `auto` jobs per GPU, decided once by the sweep's process and inherited by its jobs.
JOBS_PER_GPU_ENV = "DEDL_JOBS_PER_GPU"
# Most jobs per GPU `auto` chooses (the most the benchmark measures).
AUTO_MAX_JOBS_PER_GPU = 4
# Share of a GPU's free memory that `auto` plans to fill.
AUTO_MEMORY_SHARE = 0.85
# Per-job memory not counted in torch's peak: the CUDA context and libraries.
CONTEXT_MB = 1024


@dataclass(frozen=True)
class Placement:
    device: str  # "cuda:1" or "cpu"
    gpu: int | None
    n_gpus: int
    jobs_per_gpu: int  # k: jobs sharing one GPU (1 on CPU)
    pool: int  # jobs running at once on this machine
    cpus: int  # cores this process may use
    torch_threads: int
    loader_workers: int  # at most this many DataLoader workers
    slot: int | None

    def as_dict(self) -> dict:
        """The job's tags and log line: device and the shares."""
        out = {"device": self.device, "torch_threads": self.torch_threads,
               "loader_workers": self.loader_workers, "pool": self.pool}
        if self.gpu is not None:
            out |= {"gpu": self.gpu, "n_gpus": self.n_gpus, "jobs_per_gpu": self.jobs_per_gpu}
        if self.slot is not None:
            out["slot"] = self.slot
        return out


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def visible_gpus() -> int:
    """CUDA devices this process sees, without creating a CUDA context."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def thread_limit() -> int | None:
    """The torch threads OMP_NUM_THREADS allows, or None where it is unset or not a whole
    number >= 1 (torch ignores such a value too)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) >= 1 else None


def _auto_threads(share: int, limit: int | None) -> int:
    """`speed.cpu_threads=auto`: the job's share of the cores, at most `limit` when given."""
    return min(share, limit) if limit else share


def _effective_jobs(n_jobs: int | None, cpus: int) -> int:
    """joblib's meaning of n_jobs: -1 = one per CPU, -2 = all but one, ..., None = 1."""
    if not n_jobs:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return n_jobs


def plan(job_num: int, n_jobs: int | None, *, n_gpus: int, cpus: int,
         torch_threads: int | None = None, slot: int | None = None,
         limit: int | None = None) -> Placement:
    """Where job `job_num` of a pool of `n_jobs` concurrent jobs runs (nothing applied).

    k = ceil(pool / GPUs) jobs share a GPU; the job's slot (`job_num % pool` unless claimed)
    picks GPU `slot % n_gpus`, so the first jobs of a pool go to different GPUs. Each job gets
    `cpus // pool` cores (at least 1) for its torch threads, at most `limit` (thread_limit()),
    unless `torch_threads` fixes them, and at most `cpus // pool` loader workers."""
    pool = _effective_jobs(n_jobs, cpus)
    slot = job_num % pool if slot is None else slot
    share = max(1, cpus // pool)
    threads = torch_threads or _auto_threads(share, limit)
    if n_gpus > 0:
        gpu = slot % n_gpus
        return Placement(f"cuda:{gpu}", gpu, n_gpus, math.ceil(pool / n_gpus), pool, cpus,
                         threads, share, slot)
    return Placement("cpu", None, 0, 1, pool, cpus, threads, share, slot)


def _release_slot() -> None:
    global _SLOT_LOCK
    if _SLOT_LOCK is not None:
        _SLOT_LOCK.close()  # closing the file drops its flock
        _SLOT_LOCK = None


def try_claim(slot_dir: Path, pool: int, preferred: int):
    """(slot, open lock file) of the first free slot of the pool, trying `preferred` first, or
    (None, None) when every slot is held. A slot is held by an exclusive flock on
    `slot_dir/slot-<i>.lock` for as long as its file stays open."""
    slot_dir.mkdir(parents=True, exist_ok=True)
    for i in range(pool):
        slot = (preferred + i) % pool
        handle = open(slot_dir / f"slot-{slot}.lock", "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return slot, handle
    return None, None


def claim_slot(slot_dir: Path, pool: int, preferred: int) -> int | None:
    """This process's slot: the one it held is given back first (a pool worker runs one job
    after another), then a free one is taken and kept until the process ends or claims
    again; None when all are held (more jobs at once than the pool)."""
    global _SLOT_LOCK
    _release_slot()
    slot, _SLOT_LOCK = try_claim(slot_dir, pool, preferred)
    return slot


def apply(placement: Placement) -> Placement:
    """Make `placement` this process's: its torch threads. The CUDA device is not touched
    here: the job makes `placement.device` current when it starts to use it (speed.place_job),
    so planning never creates a CUDA context."""
    torch.set_num_threads(placement.torch_threads)
    return placement


def pin_device(job_num: int, n_jobs: int | None, *, n_gpus: int | None = None,
               cpus: int | None = None, torch_threads: int | None = None,
               slot_dir: Path | None = None, limit: int | None = None) -> dict:
    """Pin this process to job `job_num`'s device and core share; returns what was chosen.

    `n_gpus` and `cpus` default to what this process sees (given by tests); with `slot_dir`
    the job claims a free slot of the pool there (see the module's docstring); `limit`: the
    most torch threads a share may have (thread_limit())."""
    n_gpus = visible_gpus() if n_gpus is None else n_gpus
    cpus = cpus or available_cpus()
    pool = _effective_jobs(n_jobs, cpus)
    slot = None
    if slot_dir is not None:
        slot = claim_slot(Path(slot_dir), pool, job_num % pool)
        if slot is None:
            log.warning("all %d device slots in %s are taken: job #%d shares slot %d", pool,
                        slot_dir, job_num, job_num % pool)
    return apply(plan(job_num, n_jobs, n_gpus=n_gpus, cpus=cpus, torch_threads=torch_threads,
                      slot=slot, limit=limit)).as_dict()


def cpu_threads_setting(value) -> int | None:
    """`speed.cpu_threads`: auto (None: the job's share) or a fixed count >= 1."""
    if value in (None, "auto"):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ConfigError(f"speed.cpu_threads={value!r} is invalid: it must be auto or an integer >= 1")


def _job_config() -> DictConfig | None:
    """The running job's own config: Hydra parents its hydra node to it."""
    from hydra.core.hydra_config import HydraConfig

    try:
        root = HydraConfig.get()._get_parent()
    except Exception:  # not in a Hydra job, or another Hydra version
        return None
    return root if isinstance(root, DictConfig) else None


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
    cfg = _job_config()
    threads = cpu_threads_setting(OmegaConf.select(cfg, "speed.cpu_threads", default=None)
                                  if cfg is not None else None)
    limit = thread_limit()
    target = str(hc.launcher.get("_target_", ""))
    n_jobs = hc.launcher.get("n_jobs")
    if target.endswith("SlurmLauncher"):
        # One SLURM job per cell: the allocation is the job's own, SLURM chose its GPU (or GPU
        # share) and cores.
        cpus, n_gpus = available_cpus(), visible_gpus()
        k = OmegaConf.select(cfg, "speed.jobs_per_gpu", default=1) if cfg is not None else 1
        chosen = apply(Placement("cuda:0" if n_gpus else "cpu", 0 if n_gpus else None, n_gpus,
                                 k if isinstance(k, int) and n_gpus else 1, 1, cpus,
                                 threads or _auto_threads(cpus, limit), cpus, None)).as_dict()
    elif n_jobs is not None:
        # A pool (joblib): n_jobs jobs at once, each claims a slot of the pool.
        slot_dir = Path(hc.sweep.dir) / ".device_slots"
        chosen = pin_device(int(job_num), n_jobs, torch_threads=threads, slot_dir=slot_dir,
                            limit=limit)
    else:
        # One job at a time (basic launcher) or all at once (submitit's local executor, which
        # shows every job this machine's GPUs, `slurm_local_gpus`): spread by job
        # number, all cores.
        n_gpus = visible_gpus()
        chosen = apply(plan(int(job_num), None, n_gpus=n_gpus, cpus=available_cpus(),
                            torch_threads=threads, slot=int(job_num), limit=limit)).as_dict()
    log.info("job #%s pinned to %s", job_num, ", ".join(f"{k}={v}" for k, v in chosen.items()))
    return chosen


# --- jobs per GPU: explicit, or `auto` from measured memory ----------------------------------


def jobs_per_gpu_setting(value) -> int | str:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise ConfigError(f"speed.jobs_per_gpu={value!r} is invalid: it must be auto or an integer >= 1")


def free_gpu_memory_mb() -> list[float] | None:
    """Free memory of each visible GPU (MiB) without a CUDA context in this process (a
    context would hold memory on GPU 0 for the whole sweep): nvidia-smi, else None."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    free = {int(i): float(mb) for i, mb in (line.split(",") for line in out.strip().splitlines())}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        return [free[int(v)] for v in visible.split(",") if v.strip() and int(v) in free]
    return [free[i] for i in sorted(free)]


def auto_k(free_mb: list[float] | None, peak_mb: float | None, cpus: int, n_gpus: int,
           max_k: int = AUTO_MAX_JOBS_PER_GPU) -> tuple[int, str]:
    """The `auto` rule: as many jobs per GPU as fit in AUTO_MEMORY_SHARE of the least free
    GPU memory, each costing its recorded peak (torch's reserved memory) plus CONTEXT_MB,
    at most `max_k` and at most one job per 2 cores; 1 when nothing was measured."""
    if not n_gpus:
        return 1, "no GPU: one job at a time"
    if not free_mb or peak_mb is None:
        return 1, ("no peak memory recorded yet for this setting (jobs and `make bench` record "
                   "it)" if peak_mb is None else "free GPU memory unknown (no nvidia-smi)")
    per_job = peak_mb + CONTEXT_MB
    by_memory = int(AUTO_MEMORY_SHARE * min(free_mb) // per_job)
    by_cores = max(1, cpus // (2 * n_gpus))
    k = max(1, min(by_memory, by_cores, max_k))
    return k, (f"{min(free_mb):.0f} MiB free on the fullest GPU, {per_job:.0f} MiB per job "
               f"(recorded peak + context) -> {by_memory} by memory, {by_cores} by cores, "
               f"at most {max_k}")


def jobs_per_gpu(cfg: DictConfig) -> int:
    """k for this sweep: `speed.jobs_per_gpu`, or for `auto` the value the sweep's process
    chose (exported as DEDL_JOBS_PER_GPU to its jobs), else chosen here by `auto_k`."""
    value = jobs_per_gpu_setting(OmegaConf.select(cfg, "speed.jobs_per_gpu", default=1))
    if value != "auto":
        return value
    if os.environ.get(JOBS_PER_GPU_ENV, "").isdigit():
        return int(os.environ[JOBS_PER_GPU_ENV])
    n_gpus = visible_gpus()
    k, why = auto_k(free_gpu_memory_mb() if n_gpus else None,
                    recorded_peak_mb(cfg) if n_gpus else None, available_cpus(), n_gpus)
    log.info("speed.jobs_per_gpu=auto: %d job(s) per GPU (%s)", k, why)
    os.environ[JOBS_PER_GPU_ENV] = str(k)  # the pool's workers inherit it
    return k


def pool_size(*, _root_: DictConfig) -> int:
    """The `gpus` preset's n_jobs: k jobs per visible GPU, or k on a machine without GPU."""
    n_gpus = visible_gpus()
    k = jobs_per_gpu(_root_)
    return k * n_gpus if n_gpus else k


def slurm_gpus_per_node(k) -> int | None:
    """The `slurm` preset's gpus_per_node: a whole GPU per job when k = 1, else none (the job
    asks for a share of one through `gres`)."""
    return 1 if jobs_per_gpu_setting(k) in (1, "auto") else None


def slurm_gres(k, shards) -> str | None:
    """The `slurm` preset's gres: none when k = 1 (gpus_per_node asks for a GPU); for k > 1,
    `shard:<shards // k>` of a cluster whose GPUs are split into `shards` shards (gres.conf
    `Name=shard Count=...` per GPU), so that k jobs share a GPU."""
    k = jobs_per_gpu_setting(k)
    if k in (1, "auto"):  # auto cannot be measured from a login node: one job per GPU
        return None
    if not isinstance(shards, int) or isinstance(shards, bool) or shards < k:
        raise ValueError(f"speed.jobs_per_gpu={k} on SLURM shares GPUs through shards: set "
                         "speed.slurm_gpu_shards to the shards per GPU of your cluster (gres.conf "
                         "Name=shard Count=...), at least k; or set hydra.launcher.gres yourself")
    return f"shard:{shards // k}"


def slurm_local_gpus() -> int:
    """The `slurm_local` preset's gpus_per_node: the GPUs this process sees. submitit's local
    executor sets every job's CUDA_VISIBLE_DEVICES to 0..gpus_per_node-1 (to nothing when it
    is 0), whatever this process's CUDA_VISIBLE_DEVICES says; a selection other than the
    first GPUs is therefore not kept, and a warning says so."""
    n_gpus = visible_gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    given = ",".join(str(i) for i in range(n_gpus))
    if visible is not None and n_gpus and visible.replace(" ", "") != given:
        log.warning("hydra/launcher=slurm_local: the jobs see GPUs %s (submitit sets their "
                    "CUDA_VISIBLE_DEVICES), not CUDA_VISIBLE_DEVICES=%s; the gpus launcher "
                    "keeps a selection", given, visible)
    return n_gpus


RESOLVERS = {"dedl_pool_size": pool_size, "dedl_slurm_local_gpus": slurm_local_gpus,
             "dedl_slurm_gpus_per_node": slurm_gpus_per_node, "dedl_slurm_gres": slurm_gres}


def register_resolvers() -> None:
    """The launcher presets' resolvers, for OmegaConf: every entry point calls this before Hydra
    composes a config (importing a module registers nothing). Calling it again does nothing."""
    for name, resolver in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, resolver)
