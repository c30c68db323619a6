"""Cells with cross-validation folds (a task whose `folds(cfg)` is a list): one parent run per
cell, holding the mean and std of every test metric over folds once all have finished, and one
child run per fold, a cell of its own (its config has `fold=K`)."""

from __future__ import annotations

import logging
import os

import numpy as np
from omegaconf import DictConfig, open_dict

from dedl_experiments.config import components
from dedl_experiments.tracking import cells, mlflow_store, run_tags

log = logging.getLogger(__name__)
T = run_tags.TAG


def with_fold(cfg: DictConfig, fold: int | None) -> DictConfig:
    out = cfg.copy()
    with open_dict(out):
        out.fold = fold
    return out


def finished_fold(tracker: mlflow_store.Tracker, cfg: DictConfig, fold: int, digest: str):
    """A FINISHED run of the fold's cell (under any parent), or None."""
    key = cells.cell_key(with_fold(cfg, fold), digest)
    return next((r for r in tracker.runs_of_cell(key) if r.info.status == "FINISHED"), None)


def parent_run(cfg: DictConfig, tracker: mlflow_store.Tracker, key: str, name: str, tags: dict,
               prepared) -> str:
    """The cell's unfinished parent run, created if needed. Fold jobs that start together may
    each create one: all then use the oldest, and the others are deleted."""
    def open_parents():
        return [r for r in tracker.runs_of_cell(key) if r.info.status != "FINISHED"]

    if not open_parents():
        run_id = tracker.start(name, tags | {f"{T}cell_key": key, f"{T}parent": "1"}).info.run_id
        tracker.log_params(run_id, cells.flatten(components.loggable_values(with_fold(cfg, None))))
        tracker.log_dataset(run_id, cfg.dataset.name, prepared.digest, str(prepared.root))
    parents = sorted(open_parents(), key=lambda r: (r.info.start_time, r.info.run_id))
    for extra in parents[1:]:
        if extra.data.tags.get(f"{T}pid") == str(os.getpid()):
            tracker.client.delete_run(extra.info.run_id)
    tracker.start(name, {}, run_id=parents[0].info.run_id)
    return parents[0].info.run_id


def close_parent(cfg: DictConfig, tracker: mlflow_store.Tracker, parent_id: str, name: str,
                 digest: str, folds: int) -> dict[str, float] | None:
    """Mean and std over folds once each of the `folds` folds has a FINISHED child: logged on
    the parent, which is FINISHED, and returned. None while some fold is missing (the parent
    run stays open)."""
    children = tracker.client.search_runs(
        [tracker.client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'FINISHED'")
    by_fold = {int(r.data.tags[f"{T}fold"]): r for r in children}
    # Folds finished under another parent (e.g. an earlier, replaced one) count too.
    for fold in range(folds):
        if fold not in by_fold:
            done = finished_fold(tracker, cfg, fold, digest)
            if done is not None:
                by_fold[fold] = done
    tracker.set_tags(parent_id, {f"{T}folds_finished": f"{len(by_fold)}/{folds}"})
    if len(by_fold) < folds:
        log.info("%s: %d of %d folds finished; the parent run stays open", name, len(by_fold), folds)
        return None
    summary: dict[str, float] = {}
    keys = set.intersection(*(set(r.data.metrics) for r in by_fold.values()))
    for metric in sorted(k for k in keys if k.startswith("test_")):
        values = np.array([r.data.metrics[metric] for r in by_fold.values()])
        summary[metric] = float(values.mean())
        summary[f"{metric}_std"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    tracker.log_metrics(parent_id, summary)
    tracker.end(parent_id, "FINISHED")
    return summary

