"""Every table's report, from a fixed store of runs (report_golden.py), is byte for byte the
report recorded under tests/data/reports/: the printed Markdown with each cell's runs, the
table's CSV and its comparisons' CSV, and the claims' summary of `table=all`."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_golden import DATA, job_tags, load_runs, render, written


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("reports")
    with pytest.MonkeyPatch.context() as patch:
        render(out, patch)
    return written(out)


EXPECTED = sorted(str(path.relative_to(DATA)) for path in DATA.rglob("*") if path.is_file() and path.name != "runs.json")


def test_every_table_and_the_claims_are_recorded(reports: dict[str, str]) -> None:
    assert sorted(reports) == EXPECTED
    assert {Path(name).parts[0] for name in EXPECTED} >= {"table1", "table13", "tiling", "claims"}


@pytest.mark.parametrize("name", EXPECTED)
def test_report_is_unchanged(reports: dict[str, str], name: str) -> None:
    assert reports[name] == (DATA / name).read_text()


def test_the_runs_carry_the_tags_a_job_records() -> None:
    """Cell key, factor tags, task and fold count as a job of each run's config records them
    (sampled: a paper and a smoke segmentation run, one of another learning rate, a fold)."""
    runs = load_runs()
    sample = [runs[0], next(r for r in runs if r.params.get("budget.name") == "smoke"),
              next(r for r in runs if r.params.get("optimizer.lr") == "0.001"), next(r for r in runs if "fold" in r.params)]
    for run in sample:
        tags = job_tags(run)
        assert {key: run.tags.get(key) for key in tags} == tags, run.run_id
    assert all("dedl.cell_key" in run.tags and "encoder" in run.tags for run in runs)
