"""Hydra callbacks for multiruns: check every job's config and prepare the tracking store once,
then summarise at the end.

Launchers run jobs in other processes, so the summary reads what the jobs left behind: their
MLflow runs (tagged with this sweep's folder) and, for jobs that failed before or outside a
run or skipped their cell, a marker file in the job's output folder.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from dedl_experiments.config import sweeps
from dedl_experiments.tracking import mlflow_store, run_tags, store_checks
from dedl_experiments.config.checks import ConfigError, compose_error_message, validate

log = logging.getLogger("dedl_experiments")
FAILED_MARKER = "JOB_FAILED"
SKIPPED_MARKER = "JOB_SKIPPED"  # the cell is already FINISHED
BUSY_MARKER = "JOB_SKIPPED_BUSY"  # another live job trains the cell


def check_jobs(config: DictConfig) -> None:
    """Every value of the sweep, before the store is opened: a bad one (an empty `seed=`) stops
    the sweep at once, having created nothing, instead of failing job by job. A combination
    of values that fails only together still fails its jobs (checking every job would compose
    each twice)."""
    for override, job_config in sweeps.checked_configs(config):
        try:
            validate(job_config)
        except ConfigError as err:
            raise ConfigError(f"{err} (the sweep's {override})" if override else str(err)) from err


@contextmanager
def _stopping_the_sweep() -> Iterator[None]:
    """Hydra turns a callback's exception into a warning and goes on: a bad setting must end
    the sweep here, with one line and exit code 2, as it ends a single job."""
    try:
        yield
    except (ConfigError, store_checks.TrackingError) as err:
        log.error("%s: %s", type(err).__name__, err)
        sys.exit(2)
    except (HydraException, OmegaConfBaseException) as err:  # a job's overrides do not compose
        log.error("ConfigError: %s", compose_error_message(err))
        sys.exit(2)


class JobConfigCheck(Callback):
    """The first callback (conf/config.yaml): before the sweep folder or the store is made."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        with _stopping_the_sweep():
            check_jobs(config)


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Creating the store and experiment here, once, keeps parallel jobs from racing on
        # SQLite schema creation.
        with _stopping_the_sweep():
            mlflow_store.Tracker.from_config(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        tracker = mlflow_store.Tracker.from_config(config)
        runs = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{run_tags.TAG}sweep_dir` = '{sweep_dir}'",
            order_by=["attributes.start_time ASC"], max_results=10000)
        # One line per cell: runs without folds and the parents of fold runs, also a parent an
        # earlier job started (this sweep trained some of its folds), not the fold runs.
        cells = [r for r in runs if f"{run_tags.TAG}fold" not in r.data.tags]
        parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {r.info.run_id for r in cells}
        cells += [tracker.client.get_run(run_id) for run_id in sorted(parents - {None})]
        skipped = len(list(Path(sweep_dir).glob(f"*/{SKIPPED_MARKER}")))
        busy = sorted(Path(sweep_dir).glob(f"*/{BUSY_MARKER}"))
        print(f"\nSweep {sweep_dir}: {len(cells)} runs in {tracker.uri}, {skipped} cells skipped "
              "(already FINISHED)" + (f", {len(busy)} skipped (being trained by another job)" if busy else ""))
        for run in cells:
            metric = run.data.tags.get(f"{run_tags.TAG}summary_metric")  # Task.summary_metric
            value = run.data.metrics.get(metric) if metric else None
            shown = f"{metric} {value:.4f}" if value is not None else f"no {metric or 'summary metric'}"
            failure = run.data.tags.get(f"{run_tags.TAG}failure", "")
            print(f"  {run.info.run_name:<60} {run.info.status:<9} {shown} {failure}".rstrip())
        for marker in busy:
            print(f"  job {marker.parent.name} skipped: {marker.read_text().strip()}")
        failed = sorted(Path(sweep_dir).glob(f"*/{FAILED_MARKER}"))
        if failed:
            print(f"\n{len(failed)} job(s) of this sweep failed:")
            for marker in failed:
                print(f"  job {marker.parent.name}: {marker.read_text().strip()}")
            raise SystemExit(1)
