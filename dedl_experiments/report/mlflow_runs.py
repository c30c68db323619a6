"""Read run records for the report from an MLflow tracking server or store."""

from mlflow import MlflowClient
from mlflow.entities import Run

from dedl_experiments.report.aggregate import RunRecord

# Set on runs that only group child runs (e.g. the folds of one classification seed);
# their own metrics would double-count the children's.
PARENT_RUN_TAG = "dedl.parent"

_PAGE_SIZE = 1000


def load_runs(tracking_uri: str, experiment_name: str) -> list[RunRecord]:
    """All active (not deleted) runs of the experiment, parent runs excluded."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise ValueError(f"no MLflow experiment named {experiment_name!r} at {tracking_uri}")
    records: list[RunRecord] = []
    page_token: str | None = None
    while True:
        page = client.search_runs([experiment.experiment_id], max_results=_PAGE_SIZE, page_token=page_token)
        records.extend(_to_record(run) for run in page if run.data.tags.get(PARENT_RUN_TAG) != "1")
        page_token = page.token
        if not page_token:
            return records


def _to_record(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id,
        status=run.info.status,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        tags=dict(run.data.tags),
    )
