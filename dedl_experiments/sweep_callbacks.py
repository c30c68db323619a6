"""Hydra callbacks for multiruns: prepare the tracking store once, summarise at the end.

Launchers run jobs in other processes, so the summary reads what the jobs left behind: their
MLflow runs (tagged with this sweep's folder) and, for jobs that failed before or outside a
run, a marker file in the job's output folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dedl_experiments import tracking

log = logging.getLogger(__name__)
FAILED_MARKER = "JOB_FAILED"
SKIPPED_MARKER = "JOB_SKIPPED"


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Creating the store and experiment here, once, keeps parallel jobs from racing on
        # SQLite schema creation.
        tracking.Tracker.from_config(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        tracker = tracking.Tracker.from_config(config)
        runs = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{tracking.TAG}sweep_dir` = '{sweep_dir}'",
            order_by=["attributes.start_time ASC"], max_results=10000)
        # One line per cell: runs without folds and the parents of fold runs, also a parent an
        # earlier job started (this sweep trained some of its folds), not the fold runs.
        cells = [r for r in runs if f"{tracking.TAG}fold" not in r.data.tags]
        parents = {r.data.tags.get("mlflow.parentRunId") for r in runs} - {r.info.run_id for r in cells}
        cells += [tracker.client.get_run(run_id) for run_id in sorted(parents - {None})]
        skipped = len(list(Path(sweep_dir).glob(f"*/{SKIPPED_MARKER}")))
        print(f"\nSweep {sweep_dir}: {len(cells)} runs in {tracker.uri}, {skipped} cells skipped "
              "(already FINISHED)")
        for run in cells:
            metric = run.data.tags.get(f"{tracking.TAG}summary_metric")  # Task.summary_metric
            value = run.data.metrics.get(metric) if metric else None
            shown = f"{metric} {value:.4f}" if value is not None else f"no {metric or 'summary metric'}"
            failure = run.data.tags.get(f"{tracking.TAG}failure", "")
            print(f"  {run.info.run_name:<60} {run.info.status:<9} {shown} {failure}".rstrip())
        failed = sorted(Path(sweep_dir).glob(f"*/{FAILED_MARKER}"))
        if failed:
            print(f"\n{len(failed)} job(s) of this sweep failed:")
            for marker in failed:
                print(f"  job {marker.parent.name}: {marker.read_text().strip()}")
            raise SystemExit(1)
