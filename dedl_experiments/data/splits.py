"""Patient-level, seeded and multi-label stratified splits, and their JSON files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.samples import Sample

UNASSIGNED = "unassigned"


def split_by_patient(samples: Iterable[Sample], patients: Mapping[str, list[str]]) -> dict[str, list[Sample]]:
    """Group samples into the named splits (train/val/test) by patient id.

    Samples of patients named in no split are returned under "unassigned" so that they
    are visible to the caller rather than silently dropped.
    """
    if UNASSIGNED in patients:
        raise DataError(f"split name {UNASSIGNED!r} is reserved for samples of unlisted patients")
    owner: dict[str, str] = {}
    for split, ids in patients.items():
        for patient in ids:
            if patient in owner and owner[patient] != split:
                raise DataError(f"patient {patient} is listed in two splits: {owner[patient]} and {split}")
            owner[patient] = split

    samples = list(samples)
    result: dict[str, list[Sample]] = {split: [] for split in patients}
    result[UNASSIGNED] = []
    for sample in samples:
        result[owner.get(sample.patient, UNASSIGNED)].append(sample)

    present = sorted({sample.patient for sample in samples})
    for split, ids in patients.items():
        if not result[split]:
            raise DataError(
                f"split {split!r} has no samples: it asks for patients {sorted(ids)} "
                f"but the samples' patients are {present}"
            )
    return result


def _allocate(n_items: int, fractions: list[float]) -> list[int]:
    """Integer split sizes closest to the fractions (largest remainder), none empty if n allows."""
    exact = np.asarray(fractions) * n_items
    counts = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - counts), kind="stable")[: n_items - counts.sum()]:
        counts[index] += 1
    if n_items >= len(fractions):
        for index in np.flatnonzero(counts == 0):
            counts[index] += 1
            counts[np.argmax(counts)] -= 1
    return counts.tolist()


def seeded_split(
    ids: Iterable[str],
    fractions: Mapping[str, float] | None = None,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Shuffle ids with `seed` and cut them by `fractions` (default train 0.7 / val 0.15 / test 0.15).

    The result depends only on the set of ids, not their order; every split is non-empty
    when there are at least as many ids as splits.
    """
    fractions = dict(fractions or {"train": 0.7, "val": 0.15, "test": 0.15})
    if any(value <= 0 for value in fractions.values()) or not np.isclose(sum(fractions.values()), 1.0):
        raise DataError(f"split fractions must be positive and sum to 1, got {fractions}")
    unique = sorted(set(ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    shuffled = [unique[i] for i in order]
    result, start = {}, 0
    for name, count in zip(fractions, _allocate(len(unique), list(fractions.values()))):
        result[name] = sorted(shuffled[start : start + count])
        start += count
    return result


def _check_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.isin(labels, (0, 1)).all():
        raise DataError(f"labels must be an (N, C) matrix of 0/1, got shape {labels.shape}")
    return labels.astype(bool)


def _iterative_stratification(labels: np.ndarray, proportions: list[float], seed: int) -> np.ndarray:
    """Subset index of every row (Sechidis, Tsoumakas & Vlahavas 2011, Algorithm 1).

    Rarest label first, each of its rows goes to the subset that still wants most rows of
    that label (ties: most rows wanted overall, then random). Rows without labels go to
    the subset wanting most rows.
    """
    rng = np.random.default_rng(seed)
    n_rows = len(labels)
    wanted_rows = np.asarray(proportions, dtype=float) * n_rows
    wanted_per_label = np.outer(proportions, labels.sum(axis=0)).astype(float)  # (subsets, C)
    subset = np.full(n_rows, -1)
    remaining = labels.copy()

    def assign(row: int, candidates: np.ndarray) -> None:
        best = candidates[wanted_rows[candidates] == wanted_rows[candidates].max()]
        chosen = rng.choice(best)
        subset[row] = chosen
        wanted_rows[chosen] -= 1
        wanted_per_label[chosen] -= labels[row]
        remaining[row] = False

    while remaining.any():
        counts = remaining.sum(axis=0)
        label_counts = np.where(counts > 0, counts, np.iinfo(int).max)
        rarest = np.flatnonzero(label_counts == label_counts.min())
        label = rng.choice(rarest)
        for row in rng.permutation(np.flatnonzero(remaining[:, label])):
            want = wanted_per_label[:, label]
            assign(row, np.flatnonzero(want == want.max()))
    for row in np.flatnonzero(subset < 0):
        assign(row, np.arange(len(proportions)))
    return subset


def multilabel_train_test(
    labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_idx, test_idx) for a multi-label (N, C) 0/1 matrix; indices sorted."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    subset = _iterative_stratification(_check_labels(labels), [1 - test_fraction, test_fraction], seed)
    return np.flatnonzero(subset == 0), np.flatnonzero(subset == 1)


def multilabel_folds(labels: np.ndarray, k: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Validation indices of k stratified folds: disjoint, sorted, together covering all rows."""
    labels = _check_labels(labels)
    if not 2 <= k <= len(labels):
        raise DataError(f"number of folds k={k} must lie in 2..{len(labels)} (the number of rows)")
    subset = _iterative_stratification(labels, [1 / k] * k, seed)
    return [np.flatnonzero(subset == fold) for fold in range(k)]


def _to_json(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Sample):
        return value.name
    raise TypeError(f"cannot write {type(value).__name__} to a splits file")


def write_splits(path: str | Path, splits: Mapping[str, Any]) -> Path:
    """Write splits as JSON atomically (temporary file, then rename); arrays and Samples are allowed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(dict(splits), indent=2, default=_to_json) + "\n")
    os.replace(temporary, path)
    return path


def read_splits(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"splits file {path} does not exist")
    try:
        splits = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"splits file {path} is not valid JSON ({error})") from error
    if not isinstance(splits, dict):
        raise DataError(f"splits file {path} must hold a JSON object of split name -> ids")
    return splits
