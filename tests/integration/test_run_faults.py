"""Faults of a run's life that must not cost its result or its saved progress: jobs that share a
run folder, a full disk at a checkpoint, a tracking server that goes away mid-run. Each ends in
one line, the run resumable, and the rerun resumes the run's own last checkpoint.

Real processes: the CLI, and a real MLflow server behind a small TCP proxy (a subprocess) that
the test cuts and restores, so that the server "goes away" and "comes back" in an instant.
"""

import contextlib
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import torch

from conftest import cli_env, run_cli
from helpers import best_model_state, mlflow_runs, start_cli, wait_for
from test_interrupts import JOB, RERUN, THREADS, _stop_at

pytestmark = pytest.mark.slow


def _args(data_dir: Path, *more: str) -> list[str]:
    return [*JOB, f"data_dir={data_dir}", *more]


# --- jobs that share a run folder ----------------------------------------------------------


def test_jobs_sharing_a_run_folder_never_resume_each_others_checkpoints(tmp_path, shared_data_dir):
    # Two jobs given one hydra.run.dir (or, before run folders named microseconds, started in
    # the same second): seed 1 stops after epoch 1, seed 2 runs to the end in the same folder.
    shared = tmp_path / "R"
    seed = {s: _args(shared_data_dir, f"hydra.run.dir={shared}", f"seed={s}") for s in (1, 2)}
    code, out = _stop_at("train_step", signal.SIGTERM, 1, seed[1], tmp_path)
    assert code == 143, out
    own_last = shared / "checkpoints" / "last.pt"
    saved = own_last.read_bytes()

    run_cli(seed[2], tmp_path, env=cli_env(**THREADS))
    client, runs = mlflow_runs(tmp_path)
    by_seed = {r.data.tags["dedl.seed"]: r for r in runs}
    second = by_seed["2"]
    assert second.info.status == "FINISHED"
    # Seed 2 wrote into a folder of its own: seed 1's checkpoint is untouched.
    second_dir = Path(second.data.tags["dedl.output_dir"])
    assert second_dir.parent == shared and second_dir.name.startswith(second.info.run_name)
    assert own_last.read_bytes() == saved

    # A checkpoint of another cell in the run's folder (as older versions left there) is refused,
    # and the run's own previous one is resumed.
    os.replace(own_last, own_last.with_name("previous.pt"))
    shutil.copyfile(second_dir / "checkpoints" / "last.pt", own_last)
    again = run_cli(seed[1], tmp_path, env=cli_env(**THREADS))
    log = again.stdout + again.stderr
    first = by_seed["1"]
    assert (f"checkpoint {own_last} belongs to {second.info.run_name} (cell "
            f"{second.data.tags['dedl.cell_key']}, MLflow run {second.info.run_id}), not to "
            f"{first.info.run_name} (cell {first.data.tags['dedl.cell_key']}, MLflow run "
            f"{first.info.run_id})") in log
    assert f"({first.info.run_id}) from epoch 2" in log, log
    client, runs = mlflow_runs(tmp_path)
    resumed = next(r for r in runs if r.info.run_id == first.info.run_id)
    assert len(runs) == 2 and resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(first.info.run_id, "val_loss")) == [0, 1, 2]
    got, theirs = best_model_state(resumed), best_model_state(by_seed["2"])
    assert not all(torch.equal(got[k], theirs[k]) for k in theirs), "seed 1 kept seed 2's weights"


# --- a full disk at a checkpoint --------------------------------------------------------------


def test_a_full_disk_at_a_checkpoint_is_one_line_and_the_rerun_resumes(tmp_path, shared_data_dir):
    args = _args(shared_data_dir)
    proc = run_cli(args, tmp_path, check=False,
                   env=cli_env(**THREADS, DEDL_TEST_DISK_FULL_AT="checkpoint_save"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if "ERROR" in line or "Error" in line]
    assert len(errors) == 1, out
    folder = next(tmp_path.glob("outputs/run/*/checkpoints"))
    assert re.search(rf"DiskFull: writing {folder / 'last.pt'} failed: no space left on the disk or in "
                     rf"the quota \(it needs about [\d.]+ MB; {folder} has [\d.]+ MB free\); free space "
                     "there and rerun the same command", errors[0]), errors[0]
    _, (run,) = mlflow_runs(tmp_path)
    assert run.info.status == "KILLED" and run.data.tags["dedl.interrupted"].startswith("DiskFull: writing")
    assert sorted(p.name for p in folder.iterdir()) == ["last.pt"], "epoch 1's checkpoint, intact"
    assert torch.load(folder / "last.pt", weights_only=True)["fit"]["epoch"] == 1

    again = run_cli(args, tmp_path, env=cli_env(**THREADS))
    assert f"({run.info.run_id}) from epoch 2" in again.stdout + again.stderr
    client, (resumed,) = mlflow_runs(tmp_path)
    assert resumed.info.run_id == run.info.run_id and resumed.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_loss")) == [0, 1, 2]


# --- a tracking server that goes away -------------------------------------------------------

# A TCP proxy in front of the server: SIGUSR1 cuts it (connections refused, open ones closed),
# SIGUSR2 restores it.
PROXY = r"""
import signal, socket, sys, threading
port, target = int(sys.argv[1]), int(sys.argv[2])
state = {"listener": None, "open": set()}

def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

def serve(listener):
    while True:
        try:
            client, _ = listener.accept()
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:
            return
        state["open"].update((client, upstream))
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()

def up(*_):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    state["listener"] = listener
    threading.Thread(target=serve, args=(listener,), daemon=True).start()

def down(*_):
    state["listener"].shutdown(socket.SHUT_RDWR)
    state["listener"].close()
    for s in list(state["open"]):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    state["open"].clear()

signal.signal(signal.SIGUSR1, down)
signal.signal(signal.SIGUSR2, up)
up()
print("ready", flush=True)
while True:
    signal.pause()
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def _stopped(proc: subprocess.Popen):
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@contextlib.contextmanager
def _server_behind_a_proxy(root: Path, store: Path):
    """A real MLflow server (its store a copy of the empty one) and the proxy's process and URI."""
    port = _free_port()
    shutil.copyfile(store, root / "server.db")
    log = root / "server.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
         "--artifacts-destination", str(root / "artifacts")],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
        env=cli_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"))
    with _stopped(server):
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.25)
        proxy_port = _free_port()
        proxy = subprocess.Popen([sys.executable, "-c", PROXY, str(proxy_port), str(port)],
                                 stdout=subprocess.PIPE, text=True, start_new_session=True)
        with _stopped(proxy):
            assert proxy.stdout.readline().strip() == "ready"
            yield proxy, f"http://127.0.0.1:{proxy_port}"


class _Output:
    """A CLI process's output, read as it comes without a thread (a thread in the test process
    would stop the next CLI from being forked)."""

    def __init__(self, proc):
        self.proc, self.text = proc, ""
        os.set_blocking(proc.stdout.fileno(), False)

    def _read(self, wait: float) -> None:
        fd = self.proc.stdout.fileno()
        while select.select([fd], [], [], wait)[0]:
            data = os.read(fd, 1 << 16)
            if not data:
                return
            self.text += data.decode(errors="replace")
            wait = 0

    def wait_for(self, pattern: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            assert time.monotonic() < deadline and self.proc.poll() is None, \
                f"no {pattern!r} in the output:\n{self.text[-4000:]}"
            self._read(0.05)

    def until_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"still running after {timeout}s:\n{self.text[-4000:]}"
            self._read(0.05)
        self._read(0.5)
        return self.proc.returncode


def _final_errors(text: str) -> list[str]:
    """Lines that report an error, but not urllib3's while it retries (the job is waiting)."""
    return [line for line in text.splitlines()
            if ("ERROR" in line or "Error" in line or "stopped by" in line) and "[urllib3" not in line]


def test_a_tracking_server_that_goes_away_stops_in_seconds_or_gives_up_and_resumes(
        tmp_path, shared_data_dir, empty_store):
    with _server_behind_a_proxy(tmp_path, empty_store) as (proxy, uri):
        args = _args(shared_data_dir, "budget.epochs=10", f"tracking.uri={uri}")
        env = cli_env(**THREADS)
        # 1. The server goes away after epoch 1; MLflow retries (for up to 10 minutes here); the
        # SIGTERM that SLURM sends at the time limit ends the job within seconds.
        proc = start_cli([*args, "tracking.give_up_after_s=600"], tmp_path, env)
        output = _Output(proc)
        wait_for("outputs/run/*/checkpoints/last.pt", tmp_path, proc)
        proxy.send_signal(signal.SIGUSR1)
        output.wait_for(r"\[urllib3[^\]]*\]\[WARNING\] - Retrying")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert output.until_exit(timeout=30) == 143, output.text
        assert time.monotonic() - stopped < 10, "SLURM's grace before SIGKILL is 30-60 s"
        assert "Traceback" not in output.text
        (line,) = _final_errors(output.text)
        assert re.search(rf"stopped by SIGTERM in epoch \d+/10 \(metric logging\); {RERUN}$", line), line

        # 2. Back: the rerun resumes the run; the server goes away again and the job gives up
        # after tracking.give_up_after_s, in one line naming the server.
        proxy.send_signal(signal.SIGUSR2)
        proc = start_cli([*args, "tracking.give_up_after_s=5"], tmp_path, env)
        output = _Output(proc)
        output.wait_for(r"resuming MLflow run \S+ \((\w+)\) from epoch \d+")
        run_id = re.search(r"resuming MLflow run \S+ \((\w+)\)", output.text).group(1)
        proxy.send_signal(signal.SIGUSR1)
        gone = time.monotonic()
        assert output.until_exit(timeout=60) == 2, output.text
        assert time.monotonic() - gone < 30
        assert "Traceback" not in output.text
        (line,) = _final_errors(output.text)
        assert f"StoreUnreachable: MLflow tracking server {uri} stopped answering (" in line, line
        assert line.endswith("rerun the same command once it answers, to resume the run "
                             "(tracking.give_up_after_s: how long a job waits)"), line

        # 3. Back again: the rerun resumes the same run and finishes it, every epoch recorded.
        proxy.send_signal(signal.SIGUSR2)
        again = run_cli([*args], tmp_path, env=env)
        assert f"({run_id}) from epoch" in again.stdout + again.stderr
        client = mlflow.MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("dedl").experiment_id])
        assert run.info.run_id == run_id and run.info.status == "FINISHED"
        assert {m.step for m in client.get_metric_history(run_id, "val_loss")} == set(range(10))
