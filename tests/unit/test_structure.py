"""The package's shape by plain measure: modules small enough to read, no sys.path edits, Hydra's
private API behind one adapter (config/sweeps.py), no choice by a task's name, one cross-process lock
(run/locks.py) and one sample type (data/samples.py); the root holds only the entry points."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

PACKAGES = ("dedl_experiments", "multirun_launchers")
MAX_LINES = 400


def sources(*roots: str) -> dict[str, str]:
    return {path.relative_to(REPO).as_posix(): path.read_text() for root in roots
            for path in sorted((REPO / root).rglob("*.py")) if "__pycache__" not in path.parts}


def test_no_module_is_over_400_lines() -> None:
    long = {name: text.count("\n") for name, text in sources(*PACKAGES).items() if text.count("\n") > MAX_LINES}
    assert long == {}


def test_no_sys_path_edits_in_the_package() -> None:
    assert [name for name, text in sources(*PACKAGES).items() if re.search(r"sys\.path\.(insert|append)", text)] == []


def test_hydra_internals_only_in_the_sweep_adapter() -> None:
    users = {name for name, text in sources(*PACKAGES, "tests", "benchmarks").items()
             if re.search(r"^\s*(from|import) hydra\._internal", text, re.M)}
    assert users == {"dedl_experiments/config/sweeps.py"}


# The tasks' names, as their files name them (conf/task/<name>.yaml).
TASK_NAMES = "|".join(sorted(path.stem for path in (REPO / "conf" / "task").glob("*.yaml")))
TASK_NAME_LITERAL = rf"""["']({TASK_NAMES})["']"""
# A comparison with a task's name or with a `task` value, or a lookup keyed by one.
CHOICE_BY_TASK = (r"task\.name\s*[!=]=|[!=]=\s*\S*task\.name\b|hasattr\(\s*task|\.task\s*[!=]=|[!=]=\s*[\w.]*\.task\b"
                  r"|\[\s*[\w.]*\.task(\.name)?\s*\]|\.get\(\s*[\w.]*\.task(\.name)?\b"
                  rf"|[!=]=\s*{TASK_NAME_LITERAL}|{TASK_NAME_LITERAL}\s*[!=]=|\bin\s*[(\[{{]\s*{TASK_NAME_LITERAL}")


def test_no_code_outside_a_task_chooses_by_the_tasks_name_or_probes_it() -> None:
    """What differs by task is a hook of its class (tasks/base.py), named by `task._target_`, or
    what its runs recorded (tags such as `dedl.folds`); the report knows no task by its name."""
    choosers = {name for name, text in sources(*PACKAGES).items()
                if not name.startswith("dedl_experiments/tasks/") and re.search(CHOICE_BY_TASK, text)}
    assert choosers == set()
    naming = {name for name, text in sources("dedl_experiments/report").items() if re.search(TASK_NAME_LITERAL, text)}
    assert naming == set()


@pytest.mark.parametrize("code", ['if spec.task == "classification":', 'RECIPE.get(spec.task, {})',
                                  'x = {"segmentation": 1}[cfg.task.name]', 'if "classification" != kind:',
                                  'if name in ("segmentation", "other"):'])
def test_a_choice_by_the_tasks_name_is_recognised(code: str) -> None:
    assert re.search(CHOICE_BY_TASK, code)


def test_one_exclusive_file_lock() -> None:
    """Blocking flocks go through locks.exclusive_lock; the GPU slots of multirun_launchers take a
    non-blocking one of their own (a slot is skipped when held, not waited for)."""
    lockers = {name for name, text in sources(*PACKAGES).items() if "fcntl.flock" in text}
    assert lockers <= {"dedl_experiments/run/locks.py", "multirun_launchers/devices.py"}


def test_one_sample_type() -> None:
    classes = {name for name, text in sources("dedl_experiments").items()
               if re.search(r"^class \w*Sample\b", text, re.M)}
    assert classes == {"dedl_experiments/data/samples.py"}


def test_a_default_timeout_and_a_fast_target() -> None:
    """A hung test fails instead of holding the suite; `make test-fast` skips the slow tests;
    both targets spread the tests over the cores."""
    import subprocess

    # (tomllib is Python 3.11+; the project supports 3.10)
    timeout = re.search(r"^timeout = (\d+)$", (REPO / "pyproject.toml").read_text(), re.M)
    assert timeout is not None and int(timeout[1]) >= 600
    recipes = {target: subprocess.run(["make", "-n", "-s", target], cwd=REPO, capture_output=True,
                                      text=True, check=True).stdout.splitlines()[-1]
               for target in ("test", "test-fast")}
    assert recipes["test-fast"].endswith('-m "not slow"')
    assert recipes["test-fast"].startswith(recipes["test"])
    assert "-m pytest -n auto" in recipes["test"]


def test_the_config_groups_are_at_the_root_and_installed_as_the_packages_configs() -> None:
    import ast
    import importlib.resources

    assert (REPO / "conf" / "config.yaml").is_file() and (REPO / "conf" / "experiment").is_dir()
    assert not list((REPO / "dedl_experiments").glob("conf/**/*.yaml"))  # no second copy
    text = (REPO / "pyproject.toml").read_text()  # read without tomllib (Python 3.10 lacks it)
    assert 'package-dir = {"dedl_experiments.conf" = "conf"}' in text
    # packages.find cannot see a mapped folder, so the list is explicit: it must name every
    # package folder, or an installed copy would lack it.
    listed = ast.literal_eval(re.search(r"^packages = (\[.*?\])", text, re.M | re.S)[1])
    folders = {".".join(path.parent.relative_to(REPO).parts) for root in PACKAGES
               for path in (REPO / root).rglob("__init__.py") if "__pycache__" not in path.parts}
    assert set(listed) == folders | {"dedl_experiments.conf"}
    found = Path(str(importlib.resources.files("dedl_experiments.conf")))
    assert found.resolve() == (REPO / "conf").resolve()


# The package is laid out by stage (docs/architecture.md); its root holds only the entry points.
ENTRY_POINTS = {"__init__.py", "__main__.py", "prepare.py", "predict.py", "weights.py", "plan.py"}


def test_the_package_root_holds_the_entry_points_and_the_tests_mirror_the_stages() -> None:
    package = REPO / "dedl_experiments"
    assert {path.name for path in package.glob("*.py")} == ENTRY_POINTS
    stages = {path.parent.name for path in package.glob("*/__init__.py")}
    assert stages >= {"config", "data", "models", "tasks", "placement", "run", "training", "tracking",
                      "inference", "report"}
    tested = {path.name for path in (REPO / "tests" / "unit").iterdir() if path.is_dir()}
    assert stages - tested == set(), "stages without a tests/unit/<stage>/ folder"
    # At the top only what spans the package (imports, shape) or tests the test harness itself.
    assert {path.name for path in (REPO / "tests" / "unit").glob("*.py")} <= {
        "test_imports.py", "test_structure.py", "test_forked_cli.py", "test_gpu_tests.py",
        "test_generic_cpu_code.py"}
