"""Device pinning of parallel jobs (multirun_launchers/devices.py) with faked GPU counts, core
counts and the configs and environment that Hydra's joblib and submitit launchers give a job."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from conftest import compose_config
from dedl_experiments.config.checks import ConfigError
from fake_cuda import FakeCuda
from multirun_launchers import devices


@pytest.fixture(autouse=True)
def _restore_threads_and_placement(monkeypatch):
    threads = torch.get_num_threads()
    # The shares below are the cores'; a test of OMP_NUM_THREADS's limit sets it.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    yield
    torch.set_num_threads(threads)
    devices._release_slot()


def test_k_jobs_per_gpu_spread_over_the_gpus_first():
    # Pool of 4 on 2 GPUs: k = 2; the first jobs go to different GPUs.
    placements = [devices.plan(n, 4, n_gpus=2, cpus=16) for n in range(6)]
    assert [p.device for p in placements] == ["cuda:0", "cuda:1"] * 3
    assert {p.jobs_per_gpu for p in placements} == {2}
    # Each of the 4 concurrent jobs gets cores // (k x GPUs) threads and at most as many workers.
    assert {(p.torch_threads, p.loader_workers) for p in placements} == {(4, 4)}
    # Any 4 consecutive jobs (what a pool of 4 runs at once when jobs end in order): k per GPU.
    for start in range(3):
        window = [p.gpu for p in placements[start:start + 4]]
        assert sorted(window) == [0, 0, 1, 1]


@pytest.mark.parametrize("k,n_gpus,cpus", [(1, 1, 16), (2, 1, 16), (4, 1, 16), (2, 4, 64), (3, 2, 8)])
def test_shares_follow_k(k, n_gpus, cpus):
    pool = k * n_gpus
    placements = [devices.plan(n, pool, n_gpus=n_gpus, cpus=cpus) for n in range(pool)]
    assert all(p.jobs_per_gpu == k for p in placements)
    assert all(p.torch_threads == max(1, cpus // pool) for p in placements)
    per_gpu = [sum(p.gpu == g for p in placements) for g in range(n_gpus)]
    assert per_gpu == [k] * n_gpus


def test_cpu_shares_and_joblib_n_jobs():
    assert devices.pin_device(0, 4, n_gpus=0, cpus=16)["torch_threads"] == 4
    assert torch.get_num_threads() == 4
    assert devices.pin_device(3, 4, n_gpus=0, cpus=2)["torch_threads"] == 1  # never 0
    assert devices.pin_device(1, None, n_gpus=0, cpus=8)["torch_threads"] == 8  # sequential
    assert devices.pin_device(1, -1, n_gpus=0, cpus=8)["torch_threads"] == 1  # joblib: 1 per CPU
    assert devices.pin_device(1, -2, n_gpus=0, cpus=8)["pool"] == 7  # all but one


def test_a_fixed_thread_count_does_not_depend_on_the_pool():
    """On CPU the cell's result depends on the torch thread count; speed.cpu_threads=N makes
    it the same in any pool (tests/integration/test_scale_out.py checks the results)."""
    assert {devices.plan(0, pool, n_gpus=0, cpus=16, torch_threads=2).torch_threads
            for pool in (1, 2, 4, 8)} == {2}
    assert devices.cpu_threads_setting("auto") is None and devices.cpu_threads_setting(3) == 3
    for bad in (0, -1, "two", True, 1.5):
        with pytest.raises(ConfigError, match="speed.cpu_threads"):
            devices.cpu_threads_setting(bad)


def test_claimed_slots_keep_k_per_gpu_when_jobs_end_out_of_order(tmp_path: Path):
    """Pool of 2 on 2 GPUs (k = 1): job 1 ends before job 0. Job 2 would take GPU 2 % 2 = 0
    by its number, beside job 0; it claims the free slot instead, on GPU 1."""
    held = {}
    for job in (0, 1):
        held[job] = devices.try_claim(tmp_path, 2, job % 2)
        assert held[job][0] == job
    held.pop(1)[1].close()  # job 1's process ends (or runs its next job)
    slot, handle = devices.try_claim(tmp_path, 2, 2 % 2)
    assert slot == 1 and devices.plan(2, 2, n_gpus=2, cpus=8, slot=slot).device == "cuda:1"
    assert devices.try_claim(tmp_path, 2, 0) == (None, None)  # all held: the caller falls back
    handle.close()
    held[0][1].close()


def test_a_pool_worker_gives_its_slot_back_before_its_next_job(tmp_path: Path):
    first = devices.pin_device(0, 2, n_gpus=1, cpus=4, slot_dir=tmp_path)
    again = devices.pin_device(2, 2, n_gpus=1, cpus=4, slot_dir=tmp_path)  # same process
    assert first["slot"] == 0 and again["slot"] == 0 and again["device"] == "cuda:0"
    assert again["jobs_per_gpu"] == 2 and again["torch_threads"] == 2


def _as_job(overrides: list[str], job_num: int, sweep_dir: Path, mode=RunMode.MULTIRUN):
    """What Hydra sets before a multirun job runs: the composed config with its hydra node."""
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.mode = mode
        cfg.hydra.job.num = job_num
        cfg.hydra.sweep.dir = str(sweep_dir)
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def hydra_job():
    yield _as_job
    HydraConfig.instance().cfg = None


def test_a_joblib_job_pins_itself_from_the_pool_size(hydra_job, tmp_path, monkeypatch):
    cuda = FakeCuda(monkeypatch, n_gpus=1)  # this machine's: one GPU, or none
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    monkeypatch.setattr(devices, "available_cpus", lambda: 16)
    hydra_job(["hydra/launcher=gpus", "speed.jobs_per_gpu=2"], 3, tmp_path)
    assert HydraConfig.get().launcher.n_jobs == 4  # the preset's pool: k x GPUs
    chosen = devices.pin_current_job()
    assert chosen["device"] == "cuda:1" and chosen["jobs_per_gpu"] == 2
    # The placement is a value: the job makes its GPU current when it uses it (speed.place_job).
    assert cuda.calls == []
    assert chosen["torch_threads"] == 4 and torch.get_num_threads() == 4
    assert chosen["loader_workers"] == 4
    assert (tmp_path / ".device_slots" / "slot-3.lock").exists()


def test_a_fixed_thread_count_reaches_the_job(hydra_job, tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    monkeypatch.setattr(devices, "available_cpus", lambda: 8)
    hydra_job(["hydra/launcher=gpus", "speed.jobs_per_gpu=2", "speed.cpu_threads=1"], 0, tmp_path)
    assert HydraConfig.get().launcher.n_jobs == 2  # no GPU: a pool of k
    chosen = devices.pin_current_job()
    assert chosen["device"] == "cpu" and chosen["torch_threads"] == 1 and chosen["pool"] == 2


def test_a_slurm_job_keeps_its_allocation(hydra_job, tmp_path, monkeypatch):
    """submitit's SLURM jobs: SLURM gave the job its GPU (CUDA_VISIBLE_DEVICES) and cores."""
    monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setattr(devices, "visible_gpus", lambda: 1)
    monkeypatch.setattr(devices, "available_cpus", lambda: 6)
    hydra_job(["hydra/launcher=slurm"], 7, tmp_path)
    chosen = devices.pin_current_job()
    assert chosen["device"] == "cuda:0" and chosen["torch_threads"] == 6
    assert not (tmp_path / ".device_slots").exists()


@pytest.mark.parametrize("n_gpus", [0, 2])
def test_slurm_local_jobs_see_the_gpus_of_the_machine(hydra_job, tmp_path, monkeypatch, n_gpus):
    """submitit's local executor sets each job's CUDA_VISIBLE_DEVICES from gpus_per_node."""
    import submitit
    from submitit.local import local

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(devices, "visible_gpus", lambda: n_gpus)
    cfg = hydra_job(["hydra/launcher=slurm_local"], 0, tmp_path)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert params["gpus_per_node"] == n_gpus
    given = []
    monkeypatch.setattr(local, "start_controller",
                        lambda **kw: given.append(kw["cuda_devices"]) or SimpleNamespace(pid=1))
    monkeypatch.setattr(local, "LocalJob", lambda **kw: None)
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="local")
    executor.update_parameters(gpus_per_node=params["gpus_per_node"])
    executor._executor._submit_command("true")
    assert given == [",".join(str(i) for i in range(n_gpus))]
    # The jobs, all at once, spread over those GPUs by job number.
    chosen = devices.pin_current_job()
    assert chosen["device"] == ("cuda:0" if n_gpus else "cpu")


def test_slurm_local_says_when_it_cannot_keep_a_gpu_selection(monkeypatch, caplog):
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert devices.slurm_local_gpus() == 2 and "slurm_local" not in caplog.text
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert devices.slurm_local_gpus() == 2
    assert "the jobs see GPUs 0,1" in caplog.text and "CUDA_VISIBLE_DEVICES=2,3" in caplog.text


@pytest.mark.parametrize("launcher,n_jobs", [("gpus", 2), ("basic", None), ("slurm", None)])
def test_omp_num_threads_limits_a_jobs_share(hydra_job, tmp_path, monkeypatch, launcher, n_jobs):
    """A job run alone takes torch's default threads, which honour OMP_NUM_THREADS; a sweep's
    jobs (a pool's share, all cores one at a time, a SLURM allocation) keep to it too. A fixed
    speed.cpu_threads is an explicit choice and wins; a value torch ignores is ignored."""
    if launcher == "slurm":
        monkeypatch.setenv("SLURM_JOB_ID", "1234")
    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    monkeypatch.setattr(devices, "available_cpus", lambda: 8)
    overrides = {"basic": [], "gpus": ["hydra/launcher=gpus", "speed.jobs_per_gpu=2"],
                 "slurm": ["hydra/launcher=slurm"]}[launcher]
    for value, threads in (("1", 1), ("3", 3), ("16", 8 // (n_jobs or 1)), ("0", 8 // (n_jobs or 1)),
                           ("two", 8 // (n_jobs or 1))):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        hydra_job(overrides, 0, tmp_path)
        assert devices.pin_current_job()["torch_threads"] == threads, value
        assert torch.get_num_threads() == threads
        hydra_job([*overrides, "speed.cpu_threads=2"], 0, tmp_path)
        assert devices.pin_current_job()["torch_threads"] == 2, value


def test_outside_a_multirun_nothing_changes(hydra_job, tmp_path):
    hydra_job([], 0, tmp_path, RunMode.RUN)
    assert devices.pin_current_job() == {}


def test_pool_size_and_auto(monkeypatch):
    cfg = compose_config(["speed.jobs_per_gpu=3"])
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    assert devices.pool_size(_root_=cfg) == 6
    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)
    assert devices.pool_size(_root_=cfg) == 3
    with pytest.raises(ConfigError, match="speed.jobs_per_gpu"):
        devices.jobs_per_gpu(compose_config(["speed.jobs_per_gpu=0"]))
    # auto: decided once by the sweep's process, inherited by its jobs through the environment.
    monkeypatch.setenv(devices.JOBS_PER_GPU_ENV, "2")
    assert devices.jobs_per_gpu(compose_config(["speed.jobs_per_gpu=auto"])) == 2


def test_the_auto_rule():
    # 140 GiB free, 9 GiB peak + 1 GiB context: 11 by memory, capped at 4 (and by cores).
    assert devices.auto_k([143_000.0], 9_000.0, cpus=16, n_gpus=1)[0] == 4
    assert devices.auto_k([143_000.0], 9_000.0, cpus=4, n_gpus=1)[0] == 2  # 2 cores per job
    assert devices.auto_k([20_000.0], 9_000.0, cpus=16, n_gpus=1)[0] == 1
    assert devices.auto_k([40_000.0, 25_000.0], 9_000.0, cpus=64, n_gpus=2)[0] == 2  # fullest GPU
    k, why = devices.auto_k([143_000.0], None, cpus=16, n_gpus=1)
    assert k == 1 and "no peak memory recorded" in why
    assert devices.auto_k(None, None, cpus=16, n_gpus=0)[0] == 1


def test_recorded_peak_memory_feeds_auto(tmp_path):
    from dedl_experiments.placement import peak_memory

    cfg = compose_config([f"data_dir={tmp_path}", "budget.batch_size=16"])
    assert peak_memory.recorded_peak_mb(cfg) is None
    key = peak_memory._ledger_key("NVIDIA H200", cfg)
    (tmp_path / peak_memory.LEDGER).write_text(
        f'{{"{key}": {{"peak_reserved_mb": 9000.0, "models": ["unet-resnet18-app_gelu"]}}, '
        '"NVIDIA H200|tile=480|batch=8|amp=bf16": {"peak_reserved_mb": 5000.0, "models": []}}')
    assert peak_memory.recorded_peak_mb(cfg) == 9000.0
    assert peak_memory.recorded_peak_mb(cfg, "NVIDIA H100") is None


def test_jobs_record_their_peak_memory_in_one_ledger_under_its_lock(tmp_path, monkeypatch):
    from dedl_experiments.run import locks
    from dedl_experiments.placement import peak_memory

    cfg = compose_config([f"data_dir={tmp_path}", "budget.batch_size=16"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    held = []
    lock = locks.exclusive_lock
    monkeypatch.setattr(peak_memory, "exclusive_lock", lambda path: held.append(path) or lock(path))
    cuda = torch.device("cuda", 0)
    assert peak_memory.record_peak_memory(cfg, torch.device("cpu"), peak_mb=1.0) is None  # CUDA only
    peak_memory.record_peak_memory(cfg, cuda, "unet-resnet18-app_gelu", peak_mb=9000.0)
    peak_memory.record_peak_memory(cfg, cuda, "unet-resnet34-app_none", peak_mb=7000.0)
    assert peak_memory.recorded_peak_mb(cfg) == 9000.0  # the largest model of the sweep
    assert held == [tmp_path / "peak_memory.lock"] * 2
    (entry,) = json.loads((tmp_path / peak_memory.LEDGER).read_text()).values()
    assert entry["models"] == ["unet-resnet18-app_gelu", "unet-resnet34-app_none"]


def test_slurm_preset_asks_for_gpu_shares():
    assert devices.slurm_gpus_per_node(1) == 1 and devices.slurm_gres(1, None) is None
    assert devices.slurm_gpus_per_node(2) is None and devices.slurm_gres(2, 8) == "shard:4"
    with pytest.raises(ValueError, match="slurm_gpu_shards"):
        devices.slurm_gres(2, None)
    from hydra import compose, initialize_config_dir

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=["hydra/launcher=slurm", "speed.jobs_per_gpu=4",
                                 "speed.slurm_gpu_shards=8"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["gres"] == "shard:2" and launcher["gpus_per_node"] is None


def _fresh_python(code: list[str], tmp_path: Path) -> str:
    """stdout of a new Python process (this one registered the resolvers: tests/conftest.py)."""
    import subprocess
    import sys

    from conftest import REPO, cli_env

    proc = subprocess.run([sys.executable, *code], cwd=tmp_path, env=cli_env(PYTHONPATH=str(REPO)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# One fresh process for both checks: it imports the CLI's modules (no resolver yet), then runs
# the CLI as `python -m dedl_experiments` would, which must register them before composing.
RESOLVERS_IN_A_FRESH_PROCESS = """\
import runpy, sys
import multirun_launchers.devices as d, dedl_experiments.run.job, dedl_experiments.__main__
from omegaconf import OmegaConf
print([OmegaConf.has_resolver(n) for n in d.RESOLVERS])
sys.argv = ["dedl_experiments", "hydra/launcher=gpus", "--cfg", "hydra", "--resolve"]
runpy.run_module("dedl_experiments", run_name="__main__", alter_sys=True)
d.register_resolvers()  # a second call changes nothing
print([OmegaConf.has_resolver(n) for n in d.RESOLVERS])
"""


def test_resolvers_come_from_one_explicit_call_that_the_cli_makes_before_composing(tmp_path):
    """The presets' resolvers are never registered as a side effect of an import, and
    `python -m dedl_experiments` resolves the gpus preset's pool size in a fresh process."""
    out = _fresh_python(["-c", RESOLVERS_IN_A_FRESH_PROCESS], tmp_path).split("\n")
    assert out[0] == str([False] * 4) and out[-2] == str([True] * 4), out
    hydra_config = "\n".join(out[1:-2])
    assert "n_jobs: " in hydra_config and "${dedl_pool_size" not in hydra_config
