"""How the suite runs on a machine with or without a GPU: CPU tests pin device=cpu, tests marked
`gpu` are skipped without one and run last, and benchmarks/gpu_check.sh runs them first."""

from __future__ import annotations

import os
import re
import tomllib
from types import SimpleNamespace

import pytest

import conftest
from conftest import NVML_CHECK, REPO, TINY, cli_env, compose_config


def test_the_tiny_job_runs_on_the_cpu_also_where_there_is_a_gpu():
    # Bit-equal resume and pool tests compare CPU results; on CUDA they would not be bit-equal.
    assert compose_config(TINY).device == "cpu"


def test_only_the_test_process_asks_for_cuda_through_nvml():
    """torch.cuda.is_available() through NVML leaves forked children able to use CUDA (through
    the CUDA runtime it would not); the CLI itself checks as a user's does."""
    assert os.environ[NVML_CHECK] == "1" and NVML_CHECK not in cli_env()


def test_the_gpu_marker_is_registered():
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("gpu:") for m in markers)


def _item(name: str, gpu: bool = False, slow: bool = False, module: str = "test_unit.py"):
    added = []
    marks = {name for name, on in (("gpu", gpu), ("slow", slow)) if on}
    return SimpleNamespace(name=name, added=added, add_marker=added.append, path=module,
                           get_closest_marker=lambda marker: object() if marker in marks else None)


@pytest.mark.parametrize("has_gpu", [False, True])
def test_gpu_tests_are_skipped_without_a_gpu_and_run_last(monkeypatch, has_gpu):
    monkeypatch.setattr(conftest, "cuda_present", lambda: has_gpu)
    items = [_item("a"), _item("on_gpu", gpu=True), _item("b")]
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.name for i in items] == ["a", "b", "on_gpu"]
    skipped = [i.name for i in items if any(m.name == "skip" for m in i.added)]
    assert skipped == ([] if has_gpu else ["on_gpu"])


def test_modules_with_slow_tests_come_first_whole_and_in_their_order(monkeypatch):
    """pytest-xdist (--no-loadscope-reorder) hands modules out in this order: the sweep modules
    early, not last on one worker while the other idles."""
    monkeypatch.setattr(conftest, "cuda_present", lambda: False)
    items = [_item("unit"), _item("fast_of_mixed", module="test_mixed.py"),
             _item("on_gpu", gpu=True, slow=True, module="test_gpu.py"),
             _item("sweep", slow=True, module="test_mixed.py"),
             _item("cli", slow=True, module="test_cli.py"), _item("unit2")]
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.name for i in items] == ["fast_of_mixed", "sweep", "cli", "unit", "unit2", "on_gpu"]
    assert "--no-loadscope-reorder" in (REPO / "Makefile").read_text()


def test_the_gpu_check_runs_the_gpu_tests_first_within_its_8_minutes():
    script = (REPO / "benchmarks" / "gpu_check.sh").read_text()
    tests = re.search(r"timeout (\d+) python3 -m pytest -m gpu tests/gpu", script)
    assert tests is not None
    assert tests.start() < script.index("benchmarks.sweep_bench") < script.index("benchmarks.bench ")
    # The sections share 450 s: the tests at most 180, the sweep what is left but the step
    # benchmark's share.
    step_share = re.search(r"SWEEP=\$\(\( 450 - (\d+) - ", script)
    assert step_share is not None
    assert int(tests.group(1)) <= 180 and int(tests.group(1)) + int(step_share.group(1)) < 450
