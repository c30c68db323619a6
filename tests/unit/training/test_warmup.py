"""The warm-up (compile) time of a run is logged on its own, and the warm epoch mean leaves it out."""

from __future__ import annotations

import pytest

from dedl_experiments.training.warmup import warmup_metrics


def rows(times: list[float]) -> list[dict]:
    return [{"epoch_time_s": t, "epoch_train_time_s": t - 1.0} for t in times]


def test_the_first_epochs_excess_is_the_compile_time() -> None:
    metrics = warmup_metrics(rows([40.0, 10.0, 11.0, 9.0]), {0})
    assert metrics["compile_time_s"] == pytest.approx(30.0)
    assert metrics["train_epoch_time_warm_mean_s"] == pytest.approx(9.0)  # 9, 10, 8


def test_a_resumed_run_warms_up_again() -> None:
    metrics = warmup_metrics(rows([40.0, 10.0, 25.0, 10.0]), {0, 2})
    assert metrics["compile_time_s"] == pytest.approx(45.0)
    assert metrics["train_epoch_time_warm_mean_s"] == pytest.approx(9.0)


def test_no_warm_epoch_no_metric_and_never_negative() -> None:
    assert warmup_metrics(rows([40.0]), {0}) == {}
    assert warmup_metrics(rows([8.0, 10.0, 10.0]), {0})["compile_time_s"] == 0.0
