"""`make bench`'s sections in its order, on tiny settings, in this process's real environment
(MLFLOW_* variables and all, as a user's shell has them): the sweep section that follows the
MLflow timing section counts the cells its own sweep recorded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import bench, sweep_bench
from forked_cli import run_forked

TINY = {"tile": 32, "batch": 2, "height": 64, "width": 80}


@pytest.mark.slow
def test_the_sweep_section_after_the_mlflow_section_counts_its_cells(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sweep's jobs inherit this environment: one torch thread each, as every CLI run of the
    # tests (conftest.cli_env), since the other test worker keeps the other core busy.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # Its commands (data preparation, the sweep) run forked from this process, with the
    # environment they are given, as the other CLI tests' (forked_cli.py): 20 s of imports
    # fewer. Their own session and its clean-up are tests/unit/benchmarks/test_sweep_bench.py's.
    monkeypatch.setattr(sweep_bench, "run_in_own_session",
                        lambda command, cwd, env, timeout: run_forked(command[2], command[3:], cwd,
                                                                      env, timeout))
    before = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")}
    lines: list[str] = []
    report = bench.run(steps=1, repeats=1, warmup=1, device="cpu", workdir=tmp_path, workers=0,
                       extras=False, project=False, log=lines.append, sweep_ks=[1],
                       sweep_options={"small": True, "epochs": 1, "images": 1, "timeout": 600},
                       **TINY)
    assert "log_metrics_s" in report["mlflow"], report["mlflow"]  # the MLflow section ran first
    (sweep,) = report["sweep"]["sweeps"]
    assert "error" not in sweep, sweep.get("error")
    assert sweep["cells"] == 4 and sweep["cells_per_hour"] > 0, lines
    # Opening the benchmark's store told no later process where to record.
    assert {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_")} == before
