"""The tests' CLI runner (tests/forked_cli.py): a forked child behaves as `python -m` would, and
the runner falls back to a plain subprocess when forking could hang or the child could not
use CUDA."""

import os
import signal
import threading
import warnings

import pytest
import torch

import forked_cli
from conftest import cli_env

# `python -m json.tool` with empty stdin: one line on stderr, exit code 1, in a few milliseconds.
MODULE = "json.tool"


def _run(tmp_path):
    return forked_cli.run_forked(MODULE, [], tmp_path, cli_env(), timeout=60)


def test_a_forked_child_gives_what_a_subprocess_gives(tmp_path, monkeypatch):
    forks = []
    fork = forked_cli.ForkedProcess
    monkeypatch.setattr(forked_cli, "ForkedProcess", lambda *a, **k: forks.append(a) or fork(*a, **k))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        forked = _run(tmp_path)
    assert len(forks) == 1
    monkeypatch.setenv("DEDL_TEST_SUBPROCESS", "1")
    plain = _run(tmp_path)
    assert len(forks) == 1  # the plain subprocess did not fork
    assert forked.returncode == plain.returncode == 1
    assert forked.stdout == plain.stdout == ""
    assert forked.stderr == plain.stderr and "Expecting value" in forked.stderr


def test_more_native_threads_than_when_prepared_runs_a_subprocess(tmp_path, monkeypatch):
    monkeypatch.setattr(forked_cli, "_threads_when_pinned", forked_cli._thread_count() - 1)
    with pytest.warns(UserWarning, match="runs as a subprocess"):
        assert _run(tmp_path).returncode == 1


def test_a_python_thread_of_the_test_process_does_not_stop_forking(tmp_path, monkeypatch):
    """A thread some test started (tqdm's monitor, MLflow's telemetry consumer) leaves the CLI
    forked: the child runs without it."""
    forks = []
    fork = forked_cli.ForkedProcess
    monkeypatch.setattr(forked_cli, "ForkedProcess", lambda *a, **k: forks.append(a) or fork(*a, **k))
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback warning
            assert _run(tmp_path).returncode == 1
    finally:
        stop.set()
        thread.join()
    assert len(forks) == 1


def test_a_background_child_has_its_own_pid_and_takes_signals(tmp_path):
    # `json.tool` blocks on a stdin that never ends when given a FIFO nobody writes to.
    fifo = tmp_path / "in"
    os.mkfifo(fifo)
    proc = forked_cli.start_forked(MODULE, [str(fifo)], tmp_path, cli_env())
    assert proc.pid != os.getpid() and proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM


def test_a_forked_child_ends_as_the_interpreter_does(tmp_path, monkeypatch):
    """Threads are joined and threading's exit hooks run (joblib's loky pool stops its workers
    there), then atexit's: as at the end of `python -m`."""
    (tmp_path / "ending.py").write_text(
        "import atexit, pathlib, threading, time\n"
        "atexit.register(lambda: pathlib.Path('atexit').write_text(\n"
        "    'after threads' if pathlib.Path('hook').exists() else 'before threads'))\n"
        "threading._register_atexit(lambda: pathlib.Path('hook').write_text('ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), pathlib.Path('thread').write_text('joined'))).start()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    proc = forked_cli.run_forked("ending", [], tmp_path, cli_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert {p: (tmp_path / p).read_text() for p in ("thread", "hook", "atexit")} == {
        "thread": "joined", "hook": "ran", "atexit": "after threads"}


def test_a_test_process_that_initialised_cuda_runs_a_subprocess(tmp_path, monkeypatch):
    """A child forked after CUDA was initialised could not use CUDA ("Cannot re-initialize
    CUDA in forked subprocess")."""
    forks = []
    monkeypatch.setattr(forked_cli, "ForkedProcess", lambda *a, **k: forks.append(a))
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert _run(tmp_path).returncode == 1 and forks == []


# Says whether it runs in a fresh interpreter (the test process has imported torch) and its pid.
PROBE = "import os, sys\nprint('torch' in sys.modules, os.getpid())\n"


@pytest.mark.parametrize("gpus,fresh", [(1, True), (0, False)])
def test_a_child_that_lost_cuda_to_the_fork_execs_a_fresh_interpreter(tmp_path, monkeypatch, gpus, fresh):
    """torch.cuda.is_available() in the test process leaves its forked children unable to use
    CUDA: with a GPU on the machine the child becomes `python -m` (same pid); without one it
    runs on forked, since it needs no CUDA."""
    (tmp_path / "probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(forked_cli, "_gpus_for_children", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: True)  # as the child inherits it
    proc = forked_cli.start_forked("probe", [], tmp_path, cli_env())
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert out.split() == [str(not fresh), str(proc.pid)]
