"""The sweep benchmark's process handling and its failures: a sweep past its time limit takes
its whole process group with it, and a sweep whose store holds no finished run is an error
naming that store, never a figure of 0 cells per hour."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks import sweep_bench

# A sweep in small: a process that starts a grandchild (as Hydra's launcher starts its pool
# workers), writes the grandchild's pid, and waits.
FAKE_SWEEP = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open("worker.pid", "w").write(str(worker.pid))
time.sleep(120)
"""


def alive(pid: int) -> bool:
    """Running (a zombie left for a reaper that never comes is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_a_sweep_past_its_time_limit_takes_its_workers_with_it(tmp_path: Path) -> None:
    (tmp_path / "fake_sweep.py").write_text(FAKE_SWEEP)
    worker = None
    try:
        start = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            sweep_bench._cli([], tmp_path, timeout=5, module="fake_sweep")
        assert time.monotonic() - start < 60
        worker = int((tmp_path / "worker.pid").read_text())
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(worker), "the sweep's worker outlived its time limit"
    finally:
        if worker is not None and alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_no_finished_run_is_an_error_naming_the_store() -> None:
    runs = [{"status": "FAILED", "epoch_s": [], "train_time_s": None}] * 2
    for found in ([], runs):
        with pytest.raises(sweep_bench.NoCellsError,
                           match=rf"sqlite:///x/mlflow.db holds no finished run .*\({len(found)} run"):
            sweep_bench.summarise(1, 27.1, found, 0, "sqlite:///x/mlflow.db")


def test_a_sweep_without_cells_is_reported_as_failed(tmp_path: Path, monkeypatch) -> None:
    """What `make bench` met when its sweep's jobs recorded elsewhere: the section reports why
    and the benchmark goes on (no division by 0 cells per hour)."""
    monkeypatch.setattr(sweep_bench, "prepare", lambda *args: 1.0)
    monkeypatch.setattr(sweep_bench, "_cli", lambda *args: (None, 27.1))
    lines: list[str] = []
    report = sweep_bench.run([1, 2], small=True, epochs=1, images=1, compile_=False,
                             workdir=tmp_path, n_gpus=0, timeout=60, log=lines.append)
    (only,) = report["sweeps"]
    assert only["k"] == 1 and "holds no finished run" in only["error"]
    assert str(tmp_path / "k1" / "mlflow.db") in only["error"]
    assert any("k=1: failed: the sweep at k=1 exited after 27.1 s" in line for line in lines)
    assert "failed or cut short: the sweep at k=1" in sweep_bench.markdown(report)
