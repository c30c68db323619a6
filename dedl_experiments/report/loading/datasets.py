"""Datasets by content: runs are grouped by the tag `dedl.dataset_digest` (a digest of the
training data) and their dataset's name, never by the name alone, so that two different folder
datasets are never one cell. Runs recorded before digests existed (no tag) form a group of
their own per name, "recorded before dataset digests": nothing tells which data they used, so
they are never merged with a digest group.

Choosing the group a table shows (`dataset=`):

- `auto` (default): real data over the built-in synthetic data (names starting "synthetic"),
  then groups with a digest over those without, then the group with the most runs, then by
  name and digest; a note names the groups left out and how to select them;
- a dataset name (`myositis`), a digest prefix (4+ hex characters), a group's id as the notes
  print it (`myositis@1a2b3c4d`, `myositis@before-digests`) or `before-digests` (the groups
  without digests): the matching groups, and among several the `auto` order picks one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from dedl_experiments.report.cells.aggregate import RunRecord
from dedl_experiments.tracking.run_tags import DATASET_DIGEST_TAG as DIGEST_TAG, DATASET_NAME_TAG as NAME_TAG
LEGACY = "before-digests"
_HEX = re.compile(r"[0-9a-f]{4,}")


@dataclass(frozen=True)
class DatasetGroup:
    name: str
    digest: str | None  # None: runs recorded before dataset digests

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.digest[:8] if self.digest else LEGACY}"

    @property
    def synthetic(self) -> bool:
        return self.name.startswith("synthetic")

    def describe(self, roots: Iterable[str] = ()) -> str:
        if self.digest:
            text = f"{self.name} (digest {self.digest[:8]})"
        else:
            text = f"{self.name}, recorded before dataset digests (cannot tell which data)"
        roots = sorted(set(roots))
        return text + (f", root {', '.join(roots)}" if roots else "")


def group_of(run: RunRecord) -> DatasetGroup:
    name = run.tags.get(NAME_TAG) or run.params.get("dataset.name") or "?"
    return DatasetGroup(name, run.tags.get(DIGEST_TAG) or None)


def roots(runs: Iterable[RunRecord]) -> list[str]:
    return sorted({run.params["dataset.root"] for run in runs
                   if run.params.get("dataset.root") not in (None, "", "None", "null")})


def _rank(group: DatasetGroup, count: int) -> tuple:
    return group.synthetic, group.digest is None, -count, group.name, group.digest or ""


def _selects(wanted: str, group: DatasetGroup) -> bool:
    wanted = wanted.lower()
    if wanted in (group.name.lower(), group.ident.lower()):
        return True
    if wanted == LEGACY:
        return group.digest is None
    return bool(group.digest and _HEX.fullmatch(wanted) and group.digest.lower().startswith(wanted))


def choose(runs: list[RunRecord], wanted: str = "auto") -> tuple[DatasetGroup | None, list[str]]:
    """The group of runs a table shows, and notes on the groups left out (None: no run matches)."""
    counts: dict[DatasetGroup, int] = {}
    for run in runs:
        group = group_of(run)
        counts[group] = counts.get(group, 0) + 1
    pool = counts if wanted == "auto" else {g: n for g, n in counts.items() if _selects(wanted, g)}
    notes = []
    if not pool:
        if counts:
            listed = ", ".join(f"`{g.ident}` ({n} runs)" for g, n in sorted(counts.items(), key=lambda x: _rank(*x)))
            notes.append(f"No runs of dataset {wanted!r} for this table; its runs are of: {listed}.")
        return None, notes
    chosen = min(pool, key=lambda g: _rank(g, pool[g]))
    others = sorted(((g, n) for g, n in counts.items() if g != chosen), key=lambda x: _rank(*x))
    if others:
        listed = ", ".join(f"{g.describe()} ({n} runs; `dataset={g.ident}`)" for g, n in others)
        notes.append(f"Runs of other datasets are left out: {listed}.")
    if chosen.digest is None:
        notes.append(f"The runs shown were recorded before dataset digests: nothing tells which data of "
                     f"dataset {chosen.name} they used.")
    return chosen, notes
