"""Run `python -m <module> args` as a real process without paying its imports again.

A CLI process spends 10-15 s importing torch, MLflow, timm and smp before it does anything; the
test process has imported them already. `run_forked` forks the test process and runs the
module's `__main__` in the child, as the interpreter would: its own pid, working directory,
environment, stdin/stdout/stderr, signals and exit code. What the child inherits beyond a fresh
interpreter (logging handlers, MLflow's store caches, Hydra's global state, atexit hooks) is
reset first. `DEDL_TEST_SUBPROCESS=1` runs every CLI call as a plain subprocess instead.

libgomp's OpenMP thread pool does not survive fork: a child of a process whose torch ran on
several threads hangs at its first parallel region. The test process therefore runs torch on
one thread (`prepare_to_fork`, as PyTorch's DataLoader workers do) and, should it have started
more native threads since (OpenMP, BLAS, OpenCV pools), runs the CLI as a plain subprocess (with
a warning) instead of forking. Threads started by Python code (tqdm's monitor, MLflow's
telemetry consumer, which some tests start) are not counted: the child does not run them, and
the locks Python keeps for them (logging's, threading's) are reset in a forked child; counting
them once made every later CLI test of that worker a 10 s slower subprocess.

CUDA does not survive fork either: a child cannot use CUDA once the test process has asked the
CUDA runtime anything (torch marks the child "in bad fork" even after a mere
`torch.cuda.is_available()`; conftest.py has torch ask NVML instead where it can). A test
process that initialised CUDA runs the CLI as a plain subprocess; a child forked after a
lighter CUDA call replaces itself (exec: same pid, streams and session) with a fresh
`python -m` on a machine with a GPU.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import importlib.util
import logging
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

import torch

# What a fresh interpreter would use when OMP_NUM_THREADS is not set (tests may change ours).
DEFAULT_THREADS = torch.get_num_threads()
_threads_when_pinned: int | None = None  # set by prepare_to_fork; None: never fork
# What the CLI imports, imported once by the test process.
WARM = ["dedl_experiments.__main__", "dedl_experiments.tasks.segmentation",
        "dedl_experiments.tasks.classification", "dedl_experiments.report.cli",
        "dedl_experiments.predict", "dedl_experiments.prepare", "hydra_plugins",
        # MLflow's SQLite store, imported on a job's first store call (about 1 s a CLI run).
        "mlflow.store.tracking.sqlalchemy_store", "mlflow.store.db.utils", "alembic.command",
        "alembic.runtime.migration", "sqlalchemy.dialects.sqlite"]


def _thread_count() -> int:
    """This process's native threads: its OS threads less those Python's threading runs."""
    return len(os.listdir("/proc/self/task")) - threading.active_count()


def prepare_to_fork() -> None:
    """Before any test runs: torch and OpenCV on one thread in the test process (see the module
    doc), and the CLI's modules imported."""
    global _threads_when_pinned
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(0)  # no OpenCV thread pool either (children inherit the setting)
    for module in WARM:  # so that no child imports them again
        importlib.import_module(module)
    _threads_when_pinned = _thread_count()


def _can_fork() -> bool:
    if (os.environ.get("DEDL_TEST_SUBPROCESS") or _threads_when_pinned is None
            or not os.path.isdir("/proc/self/task")):
        return False
    if _thread_count() > _threads_when_pinned:
        warnings.warn(f"the test process runs {_thread_count()} native threads (it had "
                      f"{_threads_when_pinned}): a forked CLI could hang, so it runs as a subprocess")
        return False
    if torch.cuda.is_initialized():  # a test ran on the GPU: a forked child could not
        return False
    return True


@functools.cache
def _gpus_for_children() -> int:
    """GPUs a child might use, counted once, before any fork, through NVML where it can (no
    CUDA runtime call of the test process)."""
    return torch.cuda.device_count()


def _exec_if_cuda_is_lost(module: str, args: list[str], gpus: int) -> None:
    """In the child: with a GPU on the machine and CUDA unusable after the fork, become a
    fresh interpreter running the module instead (exec keeps pid, cwd, streams, session)."""
    if gpus and torch.cuda._is_in_bad_fork():
        os.execve(sys.executable, [sys.executable, "-m", module, *args], dict(os.environ))


def _forget_the_parents_state() -> None:
    root = logging.getLogger()
    for logger in [root, *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):  # pytest's capture handlers, Hydra's last setup
            for handler in [h for h in logger.handlers if type(h).__module__.startswith("_pytest")]:
                logger.removeHandler(handler)
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    # MLflow caches one store (and its open SQLite connections) per URI: never share them.
    from mlflow.tracking._tracking_service.utils import _tracking_store_registry
    _tracking_store_registry._get_store_with_resolved_uri.cache_clear()
    from hydra.core.global_hydra import GlobalHydra
    GlobalHydra.instance().clear()


def _run_module_in_child(module: str, args: list[str], cwd: Path, env: dict[str, str],
                         stdout_fd: int, stderr_fd: int, gpus: int = 0) -> None:
    code = 1
    try:
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="backslashreplace")
        for sig in (signal.SIGTERM, signal.SIGALRM, signal.SIGCHLD, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _exec_if_cuda_is_lost(module, args, gpus)
        atexit._clear()
        _forget_the_parents_state()
        torch.set_num_threads(int(env.get("OMP_NUM_THREADS") or DEFAULT_THREADS))
        sys.argv = [module, *args]
        # As in a fresh interpreter, the module runs as __main__ without an imported twin.
        spec = importlib.util.find_spec(module)
        sys.modules.pop(module if spec.submodule_search_locations is None else f"{module}.__main__", None)
        code = 0
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:
                print(stop.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            traceback.print_exc()
            code = 128 + signal.SIGINT
        # As the interpreter ends: join threads and run threading's exit hooks (joblib's loky
        # pool stops its workers there; skipped, they would idle on for minutes), then atexit.
        threading._shutdown()
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
        code = code or 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


class ForkedProcess:
    """Like subprocess.Popen([python, -m, module, *args], ...) for the calls the tests make:
    pid, poll, wait, send_signal, communicate and, with output going to a pipe, stdout."""

    def __init__(self, module: str, args: list[str], cwd: Path, env: dict[str, str],
                 stdout_fd: int, stderr_fd: int, new_session: bool = False):
        self.args = [sys.executable, "-m", module, *args]
        self.returncode: int | None = None
        self.stdout = None
        sys.stdout.flush()
        sys.stderr.flush()
        gpus = _gpus_for_children()
        self.pid = os.fork()
        if self.pid == 0:
            if new_session:
                os.setsid()
            _run_module_in_child(module, args, cwd, env, stdout_fd, stderr_fd, gpus)

    def poll(self) -> int | None:
        if self.returncode is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def communicate(self, timeout: float | None = None) -> tuple[str, None]:
        out = self.stdout.read()
        self.wait(timeout)
        return out, None

    def __del__(self) -> None:
        if self.stdout is not None:
            self.stdout.close()


def run_forked(module: str, args: list[str], cwd: Path, env: dict[str, str],
               timeout: float) -> subprocess.CompletedProcess:
    """Like subprocess.run([python, -m, module, *args], capture_output=True, text=True)."""
    argv = [sys.executable, "-m", module, *args]
    if not _can_fork():
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = ForkedProcess(module, args, cwd, env, out.fileno(), err.fileno())
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        outputs = []
        for stream in (out, err):
            stream.seek(0)
            outputs.append(stream.read().decode(errors="replace"))
    return subprocess.CompletedProcess(argv, proc.returncode, *outputs)


def start_forked(module: str, args: list[str], cwd: Path, env: dict[str, str],
                 new_session: bool = False):
    """The CLI in the background, stdout and stderr together in `proc.stdout` (a plain
    subprocess under DEDL_TEST_SUBPROCESS=1)."""
    if not _can_fork():
        return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                start_new_session=new_session)
    read_end, write_end = os.pipe()
    proc = ForkedProcess(module, args, cwd, env, write_end, write_end, new_session)
    os.close(write_end)
    proc.stdout = open(read_end, errors="replace")
    return proc
