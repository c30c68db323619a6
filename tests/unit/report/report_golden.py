"""A fixed store of run records for every table, and every table's report rendered from it, as
the report CLI writes them (`python -m dedl_experiments.report table=all`), without MLflow.

The runs (tests/data/reports/runs.json) were made once from the tables' cells: several seeds
per cell, folds for classification, both time measures for the timing tables, the tiling
table's padded and unpadded metrics, a missing, a failed and a not-logged cell, runs of another
dataset and of another budget. Each run carries the tags a job records on it (job_tags: its cell
key, factor tags, task, and for a fold its cell's fold count), from the config its params compose.
`python tests/unit/report/report_golden.py` rewrites the expected reports under tests/data/reports/
(after a change that is meant to change them); `... --tag-runs` rewrites the runs' job tags."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

from omegaconf import open_dict

from dedl_experiments.config import components, config_files, sweeps
from dedl_experiments.tracking import cells, run_tags
from dedl_experiments.run.folds import with_fold
from dedl_experiments.report import cli
from dedl_experiments.report.cells.aggregate import RunRecord
from dedl_experiments.tasks import task_class

DATA = Path(__file__).resolve().parents[2] / "data" / "reports"
RUNS = DATA / "runs.json"
URI = "sqlite:///golden.db"
# Each table's files as cli.write and cli.write_claims make them (the .png is not compared).
SUFFIXES = (".md", ".csv", "_comparisons.csv")


def load_runs() -> list[RunRecord]:
    """One run per line: shared params and tags by task, then the run's own."""
    lines = RUNS.read_text().splitlines()
    base = json.loads(lines[0])
    runs = []
    for line in lines[1:]:
        run = json.loads(line)
        common = base[run.pop("base")]
        runs.append(RunRecord(run["id"], run.get("status", "FINISHED"), {**common["params"], **run["params"]},
                              run["metrics"], {**common["tags"], **run.get("tags", {})}, "1", run["start"]))
    return runs


@functools.lru_cache(maxsize=None)  # the runs of one cell but for seed and fold share it
def run_config(items: tuple[tuple[str, str], ...]):
    """The config of a job whose logged params include these (seed and fold aside): each
    `<group>.name` as the group's option of that name (of the run's task), any other value as set."""
    params = dict(items)
    task = params["task.name"]
    overrides = [f"task={task}"]
    for key, value in params.items():
        group = key.removesuffix(".name")
        path = config_files.option_file(group, value) if key.endswith(".name") and group != "task" else None
        if path is not None and config_files.read(path).get("task", task) == task:
            overrides.append(f"{group}={value}")
    cfg = sweeps.compose_config(overrides)
    logged = cells.flatten(components.loggable_values(cfg))
    overrides += [f"{key}={'null' if value == 'None' else value}" for key, value in params.items()
                  if logged.get(key) != value]
    cfg = sweeps.compose_config(overrides)
    logged = cells.flatten(components.loggable_values(cfg))
    assert all(logged.get(key) == value for key, value in params.items()), (params, overrides)
    return cfg


def job_tags(run: RunRecord) -> dict[str, str]:
    """The tags a job records on this run besides those of its data, device and seed."""
    cfg = run_config(tuple(sorted((k, v) for k, v in run.params.items() if k not in cells.REPLICATE_KEYS))).copy()
    with open_dict(cfg):
        cfg.seed = int(run.params["seed"])
        cfg.fold = int(run.params["fold"]) if "fold" in run.params else None
    task = task_class(cfg)
    tags = {"dedl.cell_key": cells.cell_key(cfg, run.tags.get(run_tags.DATASET_DIGEST_TAG)),
            "dedl.task": cfg.task.name, "dedl.summary_metric": task.summary_metric,
            **cells.factor_tags(cfg, task.factors(cfg))}
    folds = task.folds(with_fold(cfg, None))  # every fold of the cell
    if folds is not None:
        tags[run_tags.FOLDS_TAG] = str(len(folds))
    return tags


def tag_runs() -> None:
    """Rewrite runs.json with each run's job tags (its other tags and everything else kept)."""
    lines = RUNS.read_text().splitlines()
    records = load_runs()
    out = [lines[0]]
    for line, record in zip(lines[1:], records):
        run = json.loads(line)
        run["tags"] = {**run.get("tags", {}), **job_tags(record)}
        out.append(json.dumps(run, sort_keys=True))
    RUNS.write_text("\n".join(out) + "\n")


def render(out: Path, monkeypatch) -> str:
    """Every table's report and the claims' summary from the fixed runs, written under `out`
    by the report's own entry point; returns what it printed."""
    import io
    from contextlib import redirect_stdout

    runs = load_runs()
    monkeypatch.setattr(cli, "_store_missing", lambda uri: False)
    monkeypatch.setattr(cli.store_checks, "check_store", lambda uri: None)
    monkeypatch.setattr(cli, "load_runs", lambda uri: runs)
    monkeypatch.setattr(cli, "to_png", lambda *args: None)
    monkeypatch.setattr(cli, "to_forest_png", lambda *args: None)
    monkeypatch.setattr(cli, "log_report", lambda *args: "report-all-paper")
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert cli.main(["table=all", f"out={out}", f"tracking.uri={URI}"]) == 0
    return printed.getvalue()


def written(out: Path) -> dict[str, str]:
    """The compared files, by their path under the report folder."""
    return {str(path.relative_to(out)): path.read_text() for path in sorted(out.rglob("*"))
            if path.is_file() and path.name.endswith((*SUFFIXES, ".md"))}


if __name__ == "__main__" and sys.argv[1:] == ["--tag-runs"]:
    tag_runs()
elif __name__ == "__main__":
    import tempfile

    import pytest

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        render(Path(folder), patch)
        for name, text in written(Path(folder)).items():
            target = DATA / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(target, file=sys.stderr)
