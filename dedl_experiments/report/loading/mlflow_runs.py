"""Read run records for the report from an MLflow tracking server or store.

A cell's runs may sit in any experiment of the project: the cell key leaves out `table`, so a
cell that Table 2's sweep recorded in ``dedl-table2`` is also a cell of Tables 1, 6 and 3, and a
later sweep for one of those skips it. The report therefore reads every experiment that holds
cells (``dedl`` or ``dedl-*``, not the reports' or the claims', mlflow_store.is_cell_experiment) and
selects runs by their params, never by experiment.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlflow import MlflowClient
from mlflow.entities import Run, ViewType

from dedl_experiments.tracking import cells, mlflow_store
from dedl_experiments.report.cells.aggregate import RunRecord
from dedl_experiments.tracking.run_tags import CELL_KEY_TAG, FOLD_TAG, PARENT_TAG

PARENT_ID_TAG = "mlflow.parentRunId"
_PAGE_SIZE = 1000


def project_experiment_ids(client: MlflowClient) -> list[str]:
    return [
        experiment.experiment_id
        for experiment in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        if mlflow_store.is_cell_experiment(experiment.name)
    ]


def load_runs(tracking_uri: str, experiment_name: str | None = None, *, latest_only: bool = True) -> list[RunRecord]:
    """Active (not deleted) runs, parent runs excluded.

    experiment_name: one experiment (an error if absent), or None for every project
    experiment (``dedl``, ``dedl-*``; none at all gives an empty list).
    latest_only: one run per cell and seed (and fold): the newest FINISHED one, else the newest
    attempt, so that a cell rerun with ``force=true`` or after a failure is counted once.
    """
    client = MlflowClient(tracking_uri=tracking_uri)
    if experiment_name is None:
        experiment_ids = project_experiment_ids(client)
    else:
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            raise ValueError(f"no MLflow experiment named {experiment_name!r} at {tracking_uri}")
        experiment_ids = [experiment.experiment_id]
    if not experiment_ids:
        return []
    runs = list(_search_all(client, experiment_ids))
    if latest_only:
        runs = latest_per_cell(runs)
    return [_to_record(run) for run in runs if run.data.tags.get(PARENT_TAG) != "1"]


def _search_all(client: MlflowClient, experiment_ids: list[str]) -> Iterable[Run]:
    page_token: str | None = None
    while True:
        page = client.search_runs(experiment_ids, max_results=_PAGE_SIZE, page_token=page_token)
        yield from page
        page_token = page.token
        if not page_token:
            return


def latest_per_cell(runs: list[Run]) -> list[Run]:
    """Keep one run per (cell key, fold): the newest FINISHED run, or without one the newest
    attempt (so a cell that only failed counts as one failure however often it was tried).
    A child run without its own cell key takes its parent's; a run with neither stands alone.
    Parent runs are kept (callers drop them)."""
    by_id = {run.info.run_id: run for run in runs}

    def identity(run: Run) -> tuple[str, str]:
        tags = run.data.tags
        key = tags.get(CELL_KEY_TAG)
        if key is None and tags.get(PARENT_ID_TAG) in by_id:
            key = by_id[tags[PARENT_ID_TAG]].data.tags.get(CELL_KEY_TAG)
        if key is None or tags.get(PARENT_TAG) == "1":
            key = run.info.run_id
        return key, tags.get(FOLD_TAG, "")

    def rank(run: Run) -> tuple[bool, int]:
        return run.info.status == "FINISHED", run.info.start_time or 0

    best: dict[tuple[str, str], Run] = {}
    for run in runs:
        ident = identity(run)
        if ident not in best or rank(run) > rank(best[ident]):
            best[ident] = run
    kept = {id(run) for run in best.values()}
    return [run for run in runs if id(run) in kept]


# Settings added after runs were recorded, as params those runs would have logged: an older run
# did what the added setting's default does, so it still matches the tables' recipe.
# (Runs recorded before the training-set size settings trained on all the training images:
# those settings are among cells.ADDED_SETTINGS at their defaults.)
_ADDED_PARAMS = {key: str(value) for key, value in cells.ADDED_SETTINGS.items()}


def _to_record(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        params=_ADDED_PARAMS | dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
        experiment_id=run.info.experiment_id,
        start_time=run.info.start_time or 0,
    )
