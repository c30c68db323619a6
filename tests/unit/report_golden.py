"""A fixed store of run records for every table, and every table's report rendered from it, as
the report CLI writes them (`python -m dedl_experiments.report table=all`), without MLflow.

The runs (tests/data/reports/runs.json) were made once from the tables' cells: several seeds
per cell, folds for classification, both time measures for the timing tables, the tiling
table's padded and unpadded metrics, a missing, a failed and a not-logged cell, runs of another
dataset and of another budget. `python tests/unit/report_golden.py` rewrites the expected
reports under tests/data/reports/ (after a change that is meant to change them)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dedl_experiments.report import cli
from dedl_experiments.report.aggregate import RunRecord

DATA = Path(__file__).resolve().parents[1] / "data" / "reports"
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


def render(out: Path, monkeypatch) -> str:
    """Every table's report and the claims' summary from the fixed runs, written under `out`
    by the report's own entry point; returns what it printed."""
    import io
    from contextlib import redirect_stdout

    runs = load_runs()
    monkeypatch.setattr(cli, "_store_missing", lambda uri: False)
    monkeypatch.setattr(cli.tracking, "check_store", lambda uri: None)
    monkeypatch.setattr(cli, "load_runs", lambda uri: runs)
    monkeypatch.setattr(cli, "to_png", lambda *args: None)
    monkeypatch.setattr(cli, "log_report", lambda *args: "report-all-paper")
    printed = io.StringIO()
    with redirect_stdout(printed):
        assert cli.main(["table=all", f"out={out}", f"tracking.uri={URI}"]) == 0
    return printed.getvalue()


def written(out: Path) -> dict[str, str]:
    """The compared files, by their path under the report folder."""
    return {str(path.relative_to(out)): path.read_text() for path in sorted(out.rglob("*"))
            if path.is_file() and path.name.endswith((*SUFFIXES, ".md"))}


if __name__ == "__main__":
    import tempfile

    import pytest

    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        render(Path(folder), patch)
        for name, text in written(Path(folder)).items():
            target = DATA / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            print(target, file=sys.stderr)
