"""Training subsets (dataset.train_fraction, dataset.train_count): nested for one seed, chosen by
the seed alone (the arms of a paired comparison train on the same images), validation and test
untouched, one shared cache, and a one-line error naming the option where too little is left."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf, open_dict

from conftest import TINY, compose_config
from dedl_experiments.config.config_rules import ConfigError
from dedl_experiments.data import preparation as prepare_mod, subsets
from dedl_experiments.tasks import task_class
from dedl_experiments.tasks.classification import ClassificationTask

IDS = [f"img{i:02d}" for i in range(40)]


def settings(fraction: float = 1.0, count: int | None = None, seed: int = 26, batch_size: int = 4):
    return OmegaConf.create({"seed": seed, "train": {"batch_size": batch_size},
                             "dataset": {"train_fraction": fraction, "train_count": count}})


@pytest.mark.parametrize("seed", [26, 77, 334])
def test_a_smaller_fraction_keeps_a_subset_of_a_larger_ones_images(seed: int) -> None:
    kept = {f: set(subsets.training_ids(settings(f, seed=seed), IDS))
            for f in (0.0625, 0.125, 0.25, 0.5, 1.0)}
    assert [len(kept[f]) for f in sorted(kept)] == [3, 5, 10, 20, 40]  # ceil(f * 40)
    assert kept[0.0625] < kept[0.125] < kept[0.25] < kept[0.5] < kept[1.0] == set(IDS)
    # A count is a prefix of the same order.
    assert set(subsets.training_ids(settings(count=7, seed=seed), IDS)) < kept[0.25]


def test_the_subset_depends_on_the_seed_and_the_ids_not_their_order() -> None:
    half = subsets.training_ids(settings(0.5), IDS)
    assert subsets.training_ids(settings(0.5), IDS[::-1]) == half == sorted(half)
    assert subsets.training_ids(settings(0.5, seed=77), IDS) != half


def test_a_fraction_just_above_a_whole_number_of_images_is_not_rounded_up() -> None:
    # 0.7 * 10 is 7.000000000000001 in floating point.
    assert len(subsets.training_ids(settings(0.7), IDS[:10])) == 7


@pytest.mark.parametrize("fraction, count, message", [
    (1e-11, None, "dataset.train_fraction=1e-11 leaves no training image: 40 training images available; "
                 "use at least 0.025 (one image) or dataset.train_count=1"),
    (1.0, 41, "dataset.train_count=41 is larger than the training set: 40 training images available; "
              "use at most 40"),
    (1.0, 1, "dataset.train_count=1 keeps 1 of 40 training images available: fewer than one batch "
             "(train.batch_size=4); keep more images or lower train.batch_size"),
])
def test_too_few_training_images_is_one_line_naming_the_option(fraction, count, message) -> None:
    with pytest.raises(ConfigError) as raised:
        cfg = settings(fraction, count)
        ids = subsets.training_ids(cfg, IDS)
        subsets.check_batch(cfg, len(ids), len(ids), len(IDS))
    assert str(raised.value) == message


@pytest.mark.parametrize("fraction, count, message", [
    (0.0, None, "dataset.train_fraction=0.0 is invalid: it must be a number in (0, 1]"),
    (1.5, None, "dataset.train_fraction=1.5 is invalid: it must be a number in (0, 1]"),
    ("half", None, "dataset.train_fraction='half' is invalid: it must be a number in (0, 1]"),
    (1.0, 0, "dataset.train_count=0 is invalid: it must be null or an integer >= 1"),
    (0.5, 3, "dataset.train_fraction=0.5 and dataset.train_count=3 are both set: give one of them"),
])
def test_bad_settings_are_refused_before_any_data_is_read(fraction, count, message) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        subsets.check_settings(settings(fraction, count))


def test_a_user_dataset_yaml_gets_the_defaults(tmp_path) -> None:
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "mine.yaml").write_text("name: mine\ntask: segmentation\nroot: /data\n")
    cfg = compose_config([f"hydra.searchpath=[file://{tmp_path}]", "dataset=mine"])
    assert (cfg.dataset.train_fraction, cfg.dataset.train_count, cfg.dataset.root) == (1.0, None, "/data")


# --- on prepared synthetic data -----------------------------------------------------------------

@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("subsets") / "data"


def _prepared(data_dir, *overrides: str):
    cfg = compose_config([*TINY, f"data_dir={data_dir}", *overrides])
    task = task_class(cfg)
    return task.training_subset(cfg, task.prepare(cfg))


def test_segmentation_subsets_are_whole_images_paired_across_arms_with_val_and_test_untouched(data_dir) -> None:
    full = _prepared(data_dir)
    half = _prepared(data_dir, "dataset.train_fraction=0.5")
    other_arm = _prepared(data_dir, "dataset.train_fraction=0.5", "app=gelu", "encoder=resnet34")
    assert half.root == full.root  # one cache for every fraction
    assert half.splits["train"] == other_arm.splits["train"]
    assert len(half.splits["train"]) == 3 and set(half.splits["train"]) < set(full.splits["train"])
    tiles = half.split("train").tiles
    assert {t["sample"] for t in tiles} == set(half.splits["train"])
    assert len(tiles) == half.stats["train"]["tiles"] == 12 * 3  # every tile of each image kept
    for split in ("val", "test"):
        assert half.splits[split] == full.splits[split] and half.stats[split] == full.stats[split]
        assert np.array_equal(half.split(split).images, full.split(split).images)
    # Training statistics are the subset's own.
    assert half.stats["train"]["pixel_counts"] != full.stats["train"]["pixel_counts"]


def test_the_subsets_statistics_are_those_of_its_images(data_dir) -> None:
    """Every image kept as a subset: the statistics stitched from the tiles are the cache's."""
    full, every = _prepared(data_dir), _prepared(data_dir, "dataset.train_count=6")
    assert every.splits["train"] == sorted(full.splits["train"])
    assert every.stats["train"]["pixel_counts"] == full.stats["train"]["pixel_counts"]
    for key in ("mean", "std"):
        assert np.allclose(every.stats["train"][key], full.stats["train"][key], rtol=1e-6)


def test_a_segmentation_subset_smaller_than_a_batch_stops_naming_the_tiles(data_dir) -> None:
    with pytest.raises(ConfigError, match=re.escape(
            "dataset.train_count=1 keeps 1 of 6 training images available (12 tiles): fewer than one "
            "batch (train.batch_size=16)")):
        _prepared(data_dir, "dataset.train_count=1", "train.batch_size=16")


def test_the_cache_fingerprint_leaves_the_subset_out(data_dir) -> None:
    """Every fraction shares one cache, named as before these settings existed."""
    cfg = compose_config([*TINY, f"data_dir={data_dir}"])
    raw = prepare_mod.open_raw_segmentation(cfg)
    before = cfg.copy()
    with open_dict(before):
        for key in subsets.KEYS:
            del before.dataset[key]
    fingerprints = {prepare_mod._fingerprint(c, raw, 32) for c in (
        cfg, before, compose_config([*TINY, f"data_dir={data_dir}", "dataset.train_fraction=0.25"]))}
    assert len(fingerprints) == 1


def test_classification_subsets_are_taken_inside_each_folds_training_part() -> None:
    names = [f"cls{i:03d}" for i in range(60)]
    folds = [list(range(k, 60, 3)) for k in range(3)]
    prepared = SimpleNamespace(folds=folds)
    cfg = compose_config(["task=classification", "budget=smoke", "init=random", "task.folds=3"])
    with open_dict(cfg):
        cfg.train.batch_size = 4
    for fold in range(3):
        train_all, val_all = ClassificationTask.fold_indices(cfg, prepared, names, fold)
        kept = {}
        for fraction in (0.25, 0.5):
            cfg.dataset.train_fraction = fraction
            train, val = ClassificationTask.fold_indices(cfg, prepared, names, fold)
            assert np.array_equal(val, val_all)  # validation untouched
            kept[fraction] = set(train.tolist())
            assert len(train) == np.ceil(fraction * len(train_all))
        cfg.dataset.train_fraction = 1.0
        assert kept[0.25] < kept[0.5] < set(train_all.tolist())
    cfg.dataset.train_fraction = 0.05  # 2 of 40 images: fewer than a batch of 4
    with pytest.raises(ConfigError, match=re.escape(
            "dataset.train_fraction=0.05 keeps 2 of 40 training images available in fold 0's training "
            "part: fewer than one batch")):
        ClassificationTask.training_subset(cfg, SimpleNamespace(
            folds=folds, split=lambda name: SimpleNamespace(names=names)))


def test_a_task_without_its_own_subset_refuses_one_and_takes_the_data_as_prepared() -> None:
    from dedl_experiments.tasks.base import Task

    cfg = settings(0.5)
    cfg.task = {"name": "regression"}
    prepared = object()
    with pytest.raises(ConfigError, match=re.escape("task=regression does not take a training subset")):
        Task.training_subset(cfg, prepared)
    cfg.dataset.train_fraction = 1.0
    assert Task.training_subset(cfg, prepared) is prepared
