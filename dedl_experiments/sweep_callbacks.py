"""Hydra callbacks for multiruns: prepare the tracking store once, summarise at the end.

Launchers run jobs in other processes, so the summary reads what the jobs recorded in MLflow
(runs tagged with this sweep's folder) rather than job return values.
"""

from __future__ import annotations

import logging
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dedl_experiments import tracking

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Creating the store and experiment here, once, keeps parallel jobs from racing on
        # SQLite schema creation.
        tracking.Tracker.from_config(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        tracker = tracking.Tracker.from_config(config)
        runs = tracker.client.search_runs(
            [tracker.experiment_id],
            filter_string=f"tags.`{tracking.TAG}sweep_dir` = '{config.hydra.sweep.dir}'",
            order_by=["attributes.start_time ASC"], max_results=10000)
        if not runs:
            return
        print(f"\nSweep {config.hydra.sweep.dir}: {len(runs)} runs in {tracker.uri}")
        for run in runs:
            iou = run.data.metrics.get("test_iou")
            value = f"test IoU {iou:.4f}" if iou is not None else "no test IoU"
            failure = run.data.tags.get(f"{tracking.TAG}failure", "")
            print(f"  {run.info.run_name:<60} {run.info.status:<9} {value} {failure}".rstrip())
