"""The tests that compare two float pipelines (within stated tolerances), once more on the CPU's
generic code paths, as another CPU would choose them (tests/cpu_code_paths.py): torch's default
kernels (ATEN_CPU_CAPABILITY=default, read when torch loads) and OpenCV's unoptimised code
(DEDL_TEST_GENERIC_CPU_CODE=1). They need a process of their own, started with those settings:
a pytest run in a subprocess, beside the other tests of `make test` (`make test-cpus` runs
this module alone). test_device_augment.py checks that both libraries really run their generic
code there (cpu_code_paths.check_the_asked_code_paths)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from cpu_code_paths import GENERIC_CPU_CODE

GENERIC_CPU_TESTS = [
    "tests/unit/data/test_device_augment.py",
    "tests/unit/inference/test_inference.py",
    "tests/unit/data/test_deviations.py::test_rotation_marks_the_corners_it_brings_in_apart_from_padding",
    "tests/unit/training/test_swa.py::test_swa_weights_are_the_mean_of_the_snapshots",
    "tests/unit/benchmarks/test_bench.py::test_bf16_autocast_matches_fp32_for_one_training_step",
]


@pytest.mark.slow
def test_the_float_comparisons_hold_on_generic_cpu_code(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ATEN_"))}
    env.update({"ATEN_CPU_CAPABILITY": "default", GENERIC_CPU_CODE: "1"})
    proc = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={tmp_path / 'generic'}", *GENERIC_CPU_TESTS],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", summary) and not re.search(r"failed|error|skipped", summary), summary
