"""The CPU code paths of the tests that compare two float pipelines.

OpenCV and torch pick SIMD kernels by the CPU they run on, and two CPUs may round a float32 sum
differently: a test that compares two pipelines must hold on every CPU, within its stated
tolerance. `make test` runs those tests once more with the generic code paths (as another CPU
would choose them): ATEN_CPU_CAPABILITY=default for torch (read when torch loads), and
DEDL_TEST_GENERIC_CPU_CODE=1 for OpenCV, read here: the test modules that run OpenCV switch its
optimised code off with `cv2.setUseOptimized(False)` when imported (OpenCV's own
OPENCV_CPU_DISABLE variable leaves its warps' results unchanged; this switch changes them).
"""

from __future__ import annotations

import os

GENERIC_CPU_CODE = "DEDL_TEST_GENERIC_CPU_CODE"


def generic_code_asked() -> bool:
    return os.environ.get(GENERIC_CPU_CODE) == "1"


def use_the_asked_code_paths() -> None:
    """Called by the modules whose tests run OpenCV, when they are imported."""
    if generic_code_asked():
        import cv2

        cv2.setUseOptimized(False)


def check_the_asked_code_paths() -> None:
    """With GENERIC_CPU_CODE=1, both libraries really run their generic code."""
    if not generic_code_asked():
        return
    import cv2
    import torch

    assert not cv2.useOptimized()
    assert torch.backends.cpu.get_cpu_capability() == "DEFAULT", (
        "set ATEN_CPU_CAPABILITY=default beside " + GENERIC_CPU_CODE)
