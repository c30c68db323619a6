"""Patient-level, seeded and multi-label stratified splits and their JSON files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dedl_experiments.data.errors import DataError
from dedl_experiments.data.inform import Sample
from dedl_experiments.data.splits import (
    multilabel_folds,
    multilabel_train_test,
    read_splits,
    seeded_split,
    split_by_patient,
    write_splits,
)

# The prior work's patient split, used by the paper.
PATIENT_SPLIT = {
    "train": ["Myo089", "Myo253", "Myo368"],
    "val": ["Myo208", "Myo388"],
    "test": ["Myo231", "Myo511"],
}


def _samples(patients: list[str], per_patient: int = 2) -> list[Sample]:
    return [
        Sample(
            name=f"121919_{patient}_[{i},{i}]",
            patient=patient,
            image=Path(f"{patient}_{i}_component_data.tif"),
            mask=None,
        )
        for patient in patients
        for i in range(per_patient)
    ]


def test_split_by_patient_keeps_patients_apart_and_reports_unassigned() -> None:
    samples = _samples([*sum(PATIENT_SPLIT.values(), []), "Myo999"])
    splits = split_by_patient(samples, PATIENT_SPLIT)
    assert set(splits) == {"train", "val", "test", "unassigned"}
    assert [len(splits[k]) for k in ("train", "val", "test", "unassigned")] == [6, 4, 4, 2]
    patients = {k: {s.patient for s in v} for k, v in splits.items()}
    assert patients["unassigned"] == {"Myo999"}
    for a in splits:
        for b in splits:
            if a != b:
                assert not patients[a] & patients[b]
                assert not {s.name for s in splits[a]} & {s.name for s in splits[b]}


def test_patient_in_two_splits_is_an_error() -> None:
    with pytest.raises(DataError, match="patient Myo089 is listed in two splits: train and test"):
        split_by_patient(_samples(["Myo089"]), {"train": ["Myo089"], "test": ["Myo089"]})


def test_empty_split_names_split_requested_and_present_ids() -> None:
    samples = _samples(["Myo089", "Myo208"])
    with pytest.raises(DataError, match=r"split 'test' has no samples.*\['Myo231', 'Myo511'\].*\['Myo089', 'Myo208'\]"):
        split_by_patient(samples, {"train": ["Myo089"], "val": ["Myo208"], "test": ["Myo231", "Myo511"]})


def test_seeded_split_is_deterministic_disjoint_and_never_empty() -> None:
    ids = [f"img{i:02d}" for i in range(20)]
    first = seeded_split(ids, seed=3)
    assert first == seeded_split(list(reversed(ids)), seed=3)
    assert first != seeded_split(ids, seed=4)
    assert [len(first[k]) for k in ("train", "val", "test")] == [14, 3, 3]
    assert sorted(sum(first.values(), [])) == ids
    tiny = seeded_split(["a", "b", "c"])
    assert all(len(v) == 1 for v in tiny.values())
    with pytest.raises(DataError, match="fractions must be positive and sum to 1"):
        seeded_split(ids, {"train": 0.5, "test": 0.2})


def _imbalanced_labels(n: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 5)) < [0.45, 0.25, 0.2, 0.06, 0.55]).astype(int)
    labels[:3] = 0  # rows without any label must be placed too
    return labels


def test_multilabel_folds_are_disjoint_covering_and_stratified() -> None:
    labels = _imbalanced_labels()
    folds = multilabel_folds(labels, k=6, seed=1)
    assert len(folds) == 6
    joined = np.concatenate(folds)
    assert len(joined) == len(set(joined.tolist())) == len(labels)
    assert all(abs(len(fold) - len(labels) / 6) <= 2 for fold in folds)
    for fold in folds:
        assert labels[fold].sum(axis=0).min() >= 1, "every fold sees every class"
    assert all(np.array_equal(a, b) for a, b in zip(folds, multilabel_folds(labels, k=6, seed=1)))


def test_multilabel_train_test_keeps_class_shares() -> None:
    labels = _imbalanced_labels()
    train, test = multilabel_train_test(labels, test_fraction=0.2, seed=0)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert abs(len(test) - 30) <= 1
    shares = labels[test].sum(axis=0) / labels.sum(axis=0)
    assert np.all(np.abs(shares - 0.2) < 0.1)


def test_multilabel_input_checks() -> None:
    with pytest.raises(DataError, match="labels must be an \\(N, C\\) matrix of 0/1"):
        multilabel_folds(np.array([[0, 2]]), k=2)
    with pytest.raises(DataError, match="k=7 must lie in 2..5"):
        multilabel_folds(np.eye(5, dtype=int), k=7)


def test_splits_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "splits.json"
    splits = {"train": _samples(["Myo089"], 1), "folds": [np.array([0, 2]), np.array([1])], "seed": np.int64(3)}
    write_splits(path, splits)
    assert read_splits(path) == {"train": ["121919_Myo089_[0,0]"], "folds": [[0, 2], [1]], "seed": 3}
    assert [p.name for p in path.parent.iterdir()] == ["splits.json"]


def test_splits_file_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="splits file .*missing.json does not exist"):
        read_splits(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{train: [")
    with pytest.raises(DataError, match="splits file .*broken.json is not valid JSON"):
        read_splits(broken)
