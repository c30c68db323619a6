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


def _item(name: str, gpu: bool):
    added = []
    return SimpleNamespace(name=name, added=added, add_marker=added.append,
                           get_closest_marker=lambda marker: object() if gpu and marker == "gpu" else None)


@pytest.mark.parametrize("has_gpu", [False, True])
def test_gpu_tests_are_skipped_without_a_gpu_and_run_last(monkeypatch, has_gpu):
    monkeypatch.setattr(conftest, "cuda_present", lambda: has_gpu)
    items = [_item("a", False), _item("on_gpu", True), _item("b", False)]
    conftest.pytest_collection_modifyitems(None, items)
    assert [i.name for i in items] == ["a", "b", "on_gpu"]
    skipped = [i.name for i in items if any(m.name == "skip" for m in i.added)]
    assert skipped == ([] if has_gpu else ["on_gpu"])


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
