"""Shared helpers: compose configs like the CLI does, and run the real CLI in a subprocess."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# This process asks whether CUDA is there through NVML where the machine has it (torch's switch
# for it), so that its forked CLI children can still use CUDA (forked_cli.py); the CLI runs
# without it (cli_env). Set before anything here imports torch.
NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"
os.environ[NVML_CHECK] = "1"


def pytest_configure(config: pytest.Config) -> None:
    """A process that runs tests gets ready to compose configs and fork CLI runs. pytest-xdist's
    controller runs none: it skips this (15 s of imports, before it starts the workers)."""
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no":
        return
    from omegaconf import omegaconf as omegaconf_module

    import dedl_experiments  # noqa: F401  (registers the config schemas the option files name)
    from forked_cli import prepare_to_fork
    from multirun_launchers.devices import register_resolvers

    # pytest-xdist workers share the cores, and forked CLI processes must start from a process
    # whose torch never ran on several threads (forked_cli.py).
    prepare_to_fork()
    # The launcher presets' resolvers, as every entry point registers them before Hydra
    # composes (here once for every test's compose, and for the CLI runs forked from here).
    register_resolvers()
    omegaconf_module.yaml = _YamlParsedOnce(omegaconf_module.yaml)


class _YamlParsedOnce:
    """OmegaConf's `yaml` module with a memo on `load` for files: Hydra reads and parses its
    30-odd config files again at every compose, and the suite composes thousands of times in
    this process and in the CLI runs forked from it (the YAML parse was a sixth of the config
    loading, itself the largest share of the suite's CPU). A file is still read each time and
    its text looked up: an edited or new file is parsed anew, and a file that does not parse
    is parsed, and fails, as before (from the stream Hydra opened, so errors name the file)."""

    def __init__(self, yaml_module) -> None:
        self._yaml = yaml_module
        self._parsed: dict[tuple, object] = {}

    def __getattr__(self, name: str):
        return getattr(self._yaml, name)

    def load(self, stream, Loader):  # noqa: N803  (yaml.load's name)
        if not hasattr(stream, "read"):
            return self._yaml.load(stream, Loader=Loader)
        start = stream.tell()
        key = (stream.read(), Loader.__qualname__)
        if key not in self._parsed:
            stream.seek(start)
            self._parsed[key] = self._yaml.load(stream, Loader=Loader)
        return copy.deepcopy(self._parsed[key])


REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
# A training job small enough for a test: 1/32-size synthetic images (12 tiles of 16 px each:
# a quarter of the convolutions of 1/16's 32 px tiles, the suite's largest share of CPU),
# one epoch, random init (no downloads), a narrow decoder (a step costs a third of the default's),
# on the CPU also where there is a GPU (bit-equal results; tests marked `gpu` override it).
TINY = ["budget=smoke", "init=random", "budget.scale=0.03125", "budget.epochs=1",
        "architecture.decoder_channels=[64,32,16]", "device=cpu"]


def cuda_present() -> bool:
    """Whether this machine has a CUDA GPU, asked through NVML (torch.cuda.device_count) rather
    than the CUDA runtime, which would leave forked CLI children unable to use CUDA."""
    import torch

    return torch.cuda.device_count() > 0


def pytest_collection_modifyitems(config, items) -> None:
    """Modules with tests marked `slow` (CLI sweeps, servers: up to a minute each) first, so that
    pytest-xdist hands them out early and the session does not end on one worker finishing a
    sweep while the other idles (`make test` keeps this order: --no-loadscope-reorder).
    Tests marked `gpu` are skipped without a CUDA GPU, and run last: once a test has used
    CUDA in this process, CLI runs can no longer be forked from it (forked_cli.py)."""
    gpu = [item for item in items if item.get_closest_marker("gpu") is not None]
    if gpu and not cuda_present():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu:
            item.add_marker(skip)
    on_gpu = {id(item) for item in gpu}
    slow_modules = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: (id(item) in on_gpu, item.path not in slow_modules))  # stable


def compose_config(overrides: list[str] | None = None):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_") and k != NVML_CHECK}
    env.update({"HF_HUB_OFFLINE": "1", "DEDL_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "1")})
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, module: str = "dedl_experiments", check: bool = True,
            timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    from forked_cli import run_forked

    proc = run_forked(module, args, cwd, env or cli_env(), timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} {' '.join(args)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One synthetic dataset and tile cache for all CLI tests (built once, then reused)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def isolated_weight_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empty weights dir and Hugging Face cache, offline; any download attempt fails."""
    from dedl_experiments.models import pretrained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("DEDL_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(pretrained, "hf_hub_download", no_network)


@pytest.fixture(autouse=True)
def _fresh_stop_flag():
    """The stop flag (stop.STOP) is the process's: a test that signals itself leaves it set, and
    a job resets it when it starts, but a test that calls the loop directly would stop at once.
    Every test starts, and leaves, with no signal recorded."""
    from dedl_experiments.run.stop import STOP

    STOP.reset()
    yield
    STOP.reset()


@pytest.fixture(autouse=True)
def _data_dir_outside_the_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Config checks create data_dir: by default a test's goes to its own temporary folder,
    not ./data of the checkout (CLI subprocesses inherit it through cli_env)."""
    monkeypatch.setenv("DEDL_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An empty MLflow store, the one a first job would create. Creating it runs MLflow's schema
    migrations, 3-4 s a store on CI, so it is made once per test process and copied."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = tmp_path_factory.mktemp("empty-store")
    store = SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "mlruns"))
    store.engine.dispose()  # nothing left open on the file that is copied
    return folder / "mlflow.db"


@pytest.fixture
def job_folder(tmp_path: Path, empty_store: Path):
    """`job_folder(name)`: a new folder tmp_path/name holding `empty_store` as ./mlflow.db, for
    a test that runs jobs in several folders (each of their stores would cost a migration)."""
    def make(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        shutil.copyfile(empty_store, folder / "mlflow.db")
        return folder
    return make


@pytest.fixture(autouse=True)
def _an_empty_store_in_an_integration_tests_folder(request, tmp_path: Path) -> None:
    """Each integration test's folder starts with `empty_store` as ./mlflow.db; a test of what
    happens before or without a store is marked `fresh_store` and starts from an empty folder."""
    if request.path.parent.name == "integration" and request.node.get_closest_marker("fresh_store") is None:
        shutil.copyfile(request.getfixturevalue("empty_store"), tmp_path / "mlflow.db")
