"""The tags a job puts on its MLflow runs and the report reads, and the store's bookkeeping
experiments: the vocabulary shared by the job's records and the report."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

TAG = "dedl."
# Tags on the runs of cells, read by the report.
CELL_KEY_TAG = f"{TAG}cell_key"
PARENT_TAG = f"{TAG}parent"  # "1" on a run that only groups child runs (a seed's folds)
SEED_TAG, FOLD_TAG = f"{TAG}seed", f"{TAG}fold"
FOLDS_TAG = f"{TAG}folds"  # on a cell with folds (parent and child runs): how many folds it has
DATASET_NAME_TAG, DATASET_DIGEST_TAG = f"{TAG}dataset_name", f"{TAG}dataset_digest"
DEVICE_TAG, DEVICE_NAME_TAG = f"{TAG}device", f"{TAG}device_name"
# Experiments of the store that hold no cells: the reports, and the jobs' claims on cells.
REPORTS_EXPERIMENT = "dedl-reports"
CLAIMS_EXPERIMENT = "dedl.claims"
# MLflow's UI opens an experiment of this kind on its training-runs table (not GenAI traces).
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


@functools.cache
def source_tags() -> dict[str, str]:
    """MLflow's source tags: the entry point and, in a git checkout, its commit."""
    tags = {"mlflow.source.name": "python -m dedl_experiments", "mlflow.source.type": "LOCAL"}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return tags
    if commit.returncode == 0 and commit.stdout.strip():
        tags["mlflow.source.git.commit"] = commit.stdout.strip()
    return tags
