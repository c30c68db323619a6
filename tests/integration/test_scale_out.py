"""Scale-out: launcher presets, a real SLURM cluster, a real MLflow server, parallel writers.

Each sweep runs the real CLI in a subprocess on the tiny training job from conftest.TINY.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
from hydra import compose, initialize_config_dir

from conftest import CONF, TINY, cli_env, run_cli
from multirun_launchers.devices import visible_gpus
from slurm_cluster import slurm  # noqa: F401  (pytest fixture)

SEARCHPATH = "hydra.searchpath=[pkg://multirun_launchers/conf]"
LAUNCHERS = {
    "local": "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
    "gpus": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "slurm_local": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
}
NAME = "seg-unet-resnet18-app_{}-cosine-random-smoke-s{}"
# Recorded for the report at the end of the session (pytest -s or -rA shows them).
TIMES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _runs(uri: str, experiment: str = "dedl"):
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return client, ([] if exp is None else client.search_runs([exp.experiment_id]))


def _assert_finished_with_metrics(client, runs, expected: dict[str, int]) -> None:
    """Every run FINISHED with its test metrics and one train_loss point per epoch."""
    assert sorted(r.info.run_name for r in runs) == sorted(expected), \
        [(r.info.run_name, r.info.status) for r in runs]
    for run in runs:
        assert run.info.status == "FINISHED", (run.info.run_name, run.data.tags)
        metrics = run.data.metrics
        for key in ("test_iou", "test_pixel_accuracy", "test_dice", "train_loss", "val_iou",
                    "train_time_s", "epochs_run"):
            assert key in metrics, (run.info.run_name, key)
        assert 0.0 <= metrics["test_iou"] <= 1.0
        epochs = expected[run.info.run_name]
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(epochs)), run.info.run_name


def _uses_searchpath() -> list[str]:
    """The launcher presets are found through conf/config.yaml's hydra.searchpath; until that
    line is there, pass it on the command line."""
    return [] if "multirun_launchers" in (CONF / "config.yaml").read_text() else [SEARCHPATH]


# --- launcher presets and device pinning (fast) ---------------------------------------------

@pytest.mark.parametrize("preset", sorted(LAUNCHERS))
def test_launcher_presets_compose(preset):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", return_hydra_config=True,
                      overrides=[*_uses_searchpath(), f"hydra/launcher={preset}"])
    launcher = cfg.hydra.launcher
    assert launcher._target_ == LAUNCHERS[preset]
    if preset == "gpus":
        # One job per GPU by default (speed.jobs_per_gpu=1); one at a time without a GPU.
        assert launcher.n_jobs == max(1, visible_gpus())
    if preset.startswith("slurm"):
        # ${hydra.sweep.dir}/.submitit/%j: job scripts and logs stay with the sweep's outputs.
        assert launcher.submitit_folder == f"{cfg.hydra.sweep.dir}/.submitit/%j"
    if preset == "slurm":
        for key in ("partition", "timeout_min", "gpus_per_node", "cpus_per_task", "mem_gb",
                    "array_parallelism", "additional_parameters", "setup"):
            assert key in launcher, key
        assert launcher.gpus_per_node == 1 and launcher.gres is None  # a whole GPU per job


# Pinning itself (GPU slots, shares, SLURM allocations) is tested in tests/unit/placement/test_devices.py.


# --- real services (slow) --------------------------------------------------------------------

@pytest.mark.slow
def test_slurm_sweep_runs_every_job_through_sbatch(tmp_path, shared_data_dir, slurm):
    TIMES["slurm bring-up"] = slurm.bringup_s
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    start = time.monotonic()
    proc = run_cli(["-m", *_uses_searchpath(), "hydra/launcher=slurm",
                    f"hydra.launcher.partition={slurm.partition}",
                    "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
                    "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10",
                    *TINY, f"data_dir={shared_data_dir}", f"tracking.uri={uri}",
                    "app=none,gelu"], tmp_path, env=cli_env(SLURM_CONF=str(slurm.conf)),
                   timeout=300)
    TIMES["slurm 2-job sweep"] = time.monotonic() - start

    # The launcher waited for both jobs: they are done and recorded when the command returns.
    assert "Submitit 'slurm' sweep output dir" in proc.stdout + proc.stderr
    client, runs = _runs(uri)
    _assert_finished_with_metrics(client, runs, {NAME.format(a, 26): 1 for a in ("none", "gelu")})
    # SLURM's own bookkeeping ends a moment after the job's process does.
    deadline = time.monotonic() + 60
    while slurm.run("squeue", "-h").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert slurm.run("squeue", "-h").stdout.strip() == ""
    assert f"2 runs in {uri}" in proc.stdout
    # They really ran as SLURM array tasks, with the submitting Python, from this folder.
    logs = sorted(tmp_path.glob("outputs/multirun/*/.submitit/*/*_log.out"))
    assert len(logs) == 2, logs
    for log in logs:
        text = log.read_text()
        assert "Job completed successfully" in text and "hostname=" + slurm.node in text
    scripts = list(tmp_path.glob("outputs/multirun/*/.submitit/*/*_submission.sh"))
    assert scripts and sys.executable in scripts[0].read_text()
    assert "#SBATCH --partition=debug" in scripts[0].read_text()


@contextlib.contextmanager
def _mlflow_server(root: Path):
    port = _free_port()
    log = open(root / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # No background job runner (8 huey consumers, for GenAI jobs): runs don't need it.
        env=cli_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("mlflow server did not start:\n"
                                   + (root / "server.log").read_text()[-4000:])
            time.sleep(0.25)
        yield uri
    finally:
        # `mlflow server` runs uvicorn in a child process: signal its whole process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)
        log.close()


@pytest.mark.slow
def test_sweep_records_into_a_real_mlflow_server(tmp_path, shared_data_dir):
    with _mlflow_server(tmp_path) as uri:
        work = tmp_path / "work"
        work.mkdir()
        proc = run_cli(["-m", *TINY, f"data_dir={shared_data_dir}", f"tracking.uri={uri}",
                        "app=none,gelu"], work)
        assert f"2 runs in {uri}" in proc.stdout
        client, runs = _runs(uri)
        _assert_finished_with_metrics(client, runs,
                                      {NAME.format(a, 26): 1 for a in ("none", "gelu")})
        for run in runs:
            assert run.data.params["app.name"] in ("none", "gelu")
            assert run.data.params["encoder.name"] == "resnet18"
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert {"config.yaml", "metrics.json", "best_model.pt"} <= artifacts
            local = Path(client.download_artifacts(run.info.run_id, "metrics.json",
                                                   str(tmp_path / run.info.run_id)))
            assert '"test_iou"' in local.read_text()
        # Nothing went to a local store: the server holds it all.
        assert not (work / "mlflow.db").exists() and not (work / "mlruns").exists()
        assert any((tmp_path / "artifacts").rglob("metrics.json"))
        _assert_the_ui_sees_a_comparison(uri, runs)


def _rest(uri: str, path: str) -> dict:
    with urllib.request.urlopen(f"{uri}/api/2.0/mlflow/{path}", timeout=10) as answer:
        return json.loads(answer.read())


def _assert_the_ui_sees_a_comparison(uri: str, runs) -> None:
    """What the MLflow UI reads through the server's REST API: the experiment opens on the
    training-runs view, each run has its source, its dataset and the cell's factors as tags."""
    experiment = _rest(uri, "experiments/get-by-name?experiment_name=dedl")["experiment"]
    tags = {t["key"]: t["value"] for t in experiment.get("tags", [])}
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    for run in runs:
        got = _rest(uri, f"runs/get?run_id={run.info.run_id}")["run"]
        tags = {t["key"]: t["value"] for t in got["data"]["tags"]}
        assert tags["mlflow.source.name"] == "python -m dedl_experiments"
        assert len(tags["mlflow.source.git.commit"]) == 40  # the tests run in a git checkout
        assert {tags[k] for k in ("architecture", "encoder", "init", "seed")} == {
            "unet", "resnet18", "random", "26"}
        assert tags["app"] == run.data.params["app.name"]
        (dataset,) = got["inputs"]["dataset_inputs"]
        assert dataset["dataset"]["name"] == "synthetic"
        assert tags["dedl.dataset_digest"].startswith(dataset["dataset"]["digest"])


@pytest.mark.slow
@pytest.mark.fresh_store
def test_unreachable_tracking_server_fails_fast_before_any_data(tmp_path):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    proc = run_cli([*TINY, f"data_dir={tmp_path / 'data'}", f"tracking.uri={uri}"], tmp_path,
                   check=False, timeout=60)
    elapsed = time.monotonic() - start
    TIMES["unreachable server"] = elapsed
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert uri in out and "unreachable" in out
    assert "Traceback" not in out
    assert elapsed < 20, elapsed
    assert not (tmp_path / "data").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_a_pool_shares_one_sqlite_store_and_a_cell_gives_the_result_it_gives_alone(
        job_folder, shared_data_dir):
    """4 jobs through the `gpus` preset's pool of 2 (2 per GPU, or 2 on the CPU: each worker runs
    2 jobs, 2 at once) write one SQLite store without locking errors, each pinned to its slot's
    device. On the CPU a result depends on the torch thread count; with speed.cpu_threads fixed,
    a cell run in the pool beside another job equals the same cell run alone (its pool-size-dependent thread share, the `auto`
    default, is tested in tests/unit/placement/test_devices.py)."""
    common = [*TINY, f"data_dir={shared_data_dir}", "speed.cpu_threads=1"]
    pooled = job_folder("pooled")
    uri = f"sqlite:///{pooled / 'mlflow.db'}"
    start = time.monotonic()
    proc = run_cli(["-m", *_uses_searchpath(), "hydra/launcher=gpus", "speed.jobs_per_gpu=2",
                    *common, "device=auto", f"tracking.uri={uri}", "app=none,gelu", "seed=1,2"],
                   pooled, timeout=300)
    TIMES["4 jobs in a pool of 2 (gpus preset, speed.jobs_per_gpu=2)"] = time.monotonic() - start
    client, runs = _runs(uri)
    expected = {NAME.format(a, s): 1 for a in ("none", "gelu") for s in (1, 2)}
    _assert_finished_with_metrics(client, runs, expected)
    assert f"4 runs in {uri}" in proc.stdout
    assert "database is locked" not in proc.stdout + proc.stderr
    n_gpus = visible_gpus()
    for run in runs:
        device = run.data.tags["dedl.device"]
        assert device.startswith("cuda:") if n_gpus else device == "cpu", device
        assert run.data.tags.get("dedl.torch_threads") == "1", run.data.tags
    if n_gpus:
        return  # CUDA kernels are not bit-reproducible across processes: CPU results only
    alone = job_folder("alone")
    run_cli([*common, "app=none", "seed=1"], alone)
    _, (single,) = _runs(f"sqlite:///{alone / 'mlflow.db'}")
    (pooled_none,) = [r for r in runs if r.data.params["app.name"] == "none"
                      and r.data.params["seed"] == "1"]
    for key in ("test_iou", "test_pixel_accuracy", "train_loss", "val_loss"):
        assert pooled_none.data.metrics[key] == single.data.metrics[key], key
    import torch

    def weights(run):
        return torch.load(Path(run.data.tags["dedl.output_dir"]) / "best_model.pt",
                          weights_only=True)["state_dict"]
    got, want = weights(pooled_none), weights(single)
    assert all(torch.equal(got[k], want[k]) for k in want)


def _open_store(uri: str) -> str:
    from dedl_experiments.tracking.mlflow_store import Tracker

    try:
        tracker = Tracker(uri, "dedl")
        run = tracker.start("race", {})
        tracker.end(run.info.run_id, "FINISHED")
        return "ok"
    except Exception as err:  # reported, not raised: the parent collects every outcome
        return f"{type(err).__name__}: {str(err)[:300]}"


@pytest.mark.slow
def test_jobs_opening_a_new_sqlite_store_at_once(tmp_path):
    """Jobs started together without a sweep (separate commands or sbatch scripts) on a store
    that does not exist yet: MLflow's schema migrations must not run twice at once."""
    import multiprocessing as mp

    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    # Forked, the 4 processes have MLflow imported and reach the store together (without
    # the store lock this fails, 3 of 3 tries); spawned, each spent 10 s importing it first.
    with mp.get_context("fork").Pool(4) as pool:
        outcomes = pool.map(_open_store, [uri] * 4)
    assert outcomes == ["ok"] * 4, outcomes
    client, runs = _runs(uri)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)


@pytest.fixture(scope="module", autouse=True)
def _report_times():
    yield
    if TIMES:
        print("\nscale-out wall times: "
              + ", ".join(f"{k} {v:.1f}s" for k, v in TIMES.items()))
