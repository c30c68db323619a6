"""A cell's key names what the job computes: the same cell run from another folder, launcher,
store, machine or table sweep has the same key (so it is skipped or resumed); any change to a
hyperparameter or to the data's content gives a new cell."""

from __future__ import annotations

import pytest

from conftest import compose_config
from dedl_experiments.tasks import task_class
from dedl_experiments.tracking.cells import cell_key
from dedl_experiments.tracking.cells import factor_tags as tracking_factor_tags


def run_name(cfg) -> str:
    return task_class(cfg).run_name(cfg)


def factor_tags(cfg) -> dict[str, str]:
    return tracking_factor_tags(cfg, task_class(cfg).factors(cfg))

BASE = ["budget=smoke", "init=random"]
DIGEST = "0" * 64


@pytest.fixture(scope="module")
def base_key() -> str:
    return cell_key(compose_config(BASE), DIGEST)


def test_key_is_stable_and_short(base_key: str) -> None:
    assert cell_key(compose_config(BASE), DIGEST) == base_key
    assert len(base_key) == 16 and int(base_key, 16) >= 0
    # Override order does not matter.
    assert cell_key(compose_config(["init=random", "budget=smoke"]), DIGEST) == base_key


@pytest.mark.parametrize("override", [
    ["hydra.run.dir=/elsewhere/run"],
    ["hydra.sweep.dir=/elsewhere/sweep"],
    ["hydra/launcher=local"],
    ["tracking.uri=sqlite:////tmp/other.db"],
    ["tracking.experiment=my-experiment"],
    ["data_dir=/mnt/other-data"],
    ["device=cpu"],
    ["device=cuda:1"],
    ["loader.num_workers=7"],
    ["speed.amp=none", "speed.compile=false", "speed.channels_last=true"],
    ["force=true"],
    ["resume=false"],
    ["+experiment=table2"],  # the table a sweep belongs to: Tables 1/2/6 share cells
    ["+experiment=table6"],
    ["claim.heartbeat_s=1", "claim.lease_s=5", "claim.on_busy=wait"],
    # The paper's optimiser, the default, named: its cells were keyed before the choice existed.
    ["optimizer=adam"],
    # How the report shows a cell: a choice's display name, an experiment's report block.
    ["encoder.label=Another name"],
    ["architecture.label=U-Net"],
    ["+report.title=Mine", "+report.metric=test_dice"],
])
def test_where_and_how_a_job_runs_is_not_part_of_the_cell(base_key: str, override: list[str]) -> None:
    assert cell_key(compose_config([*BASE, *override]), DIGEST) == base_key


def test_data_root_is_not_part_of_the_cell() -> None:
    first = cell_key(compose_config([*BASE, "dataset=myositis", "dataset.root=/data/export-a"]), DIGEST)
    assert cell_key(compose_config([*BASE, "dataset=myositis", "dataset.root=/mnt/copy/export-a"]), DIGEST) == first


@pytest.mark.parametrize("override", [
    ["encoder=resnet34"],
    ["encoder=efficientnet_b0"],
    ["architecture=unetplusplus"],
    ["app=gelu"],
    ["app=relu"],
    ["app=gelu", "app.lr=0.01"],
    ["app=relu", "app_lr_schedule=cosine"],
    ["seed=77"],
    ["optimizer.lr=0.001"],
    ["optimizer.weight_decay=0"],
    ["optimizer=adamw"],
    ["optimizer=sgd"],
    ["train.epochs=7"],
    ["budget.epochs=7"],
    ["train.batch_size=4"],
    ["train.patience=null"],
    ["budget=paper"],
    ["budget.scale=0.25"],
    ["tiling=px256"],
    ["tiling.stride=32"],
    ["init=imagenet"],
    ["lr_schedule=step"],
    ["loss=ce"],
    ["architecture.attention=null"],
    ["dataset=myositis", "dataset.root=/data"],
    ["dataset.generator_seed=1"],
    ["task=classification"],
])
def test_every_hyperparameter_is_part_of_the_cell(base_key: str, override: list[str]) -> None:
    assert cell_key(compose_config([*BASE, *override]), DIGEST) != base_key


def test_classification_cells_differ_by_model_init_and_seed() -> None:
    base = ["task=classification", *BASE]
    keys = {cell_key(compose_config([*base, *extra]), DIGEST) for extra in (
        [], ["encoder=swin_base"], ["seed=994"], ["init=imagenet"], ["task.folds=3"])}
    assert len(keys) == 5


@pytest.mark.parametrize("overrides, recorded", [
    (["budget=smoke", "init=random"], "f964b54cf5b0a9de"),
    (["budget=smoke", "init=random", "optimizer=adam"], "f964b54cf5b0a9de"),
    (["task=classification", "budget=smoke", "init=random"], "6f0bb8f944744c30"),
    (["task=classification"], "9db82c5f15c7ab72"),
    ([], "c1599048e2338b02"),
    (["+experiment=table2", "encoder=resnet50", "app=gelu", "seed=334"], "bf24342c1eb711fc"),
    (["optimizer.lr=0.001"], "bca4de6a26f3cd4c"),
])
def test_the_key_with_a_digest_is_the_one_stores_recorded(overrides, recorded) -> None:
    """Keys recorded before the optimizer group: its default (Adam, the paper's) keeps them."""
    assert cell_key(compose_config(overrides), DIGEST) == recorded


def test_another_optimizer_is_another_cell_named_and_tagged_by_it() -> None:
    adam, adamw = compose_config(BASE), compose_config([*BASE, "optimizer=adamw"])
    assert cell_key(adamw, DIGEST) != cell_key(adam, DIGEST)
    assert cell_key(adamw, None) != cell_key(adam, None)
    assert run_name(adam) == "seg-unet-resnet18-app_none-cosine-random-smoke-s26"
    assert run_name(adamw) == "seg-unet-resnet18-app_none-adamw-cosine-random-smoke-s26"
    assert factor_tags(adam)["optimizer"] == "adam" and factor_tags(adamw)["optimizer"] == "adamw"
    classification = ["task=classification", *BASE, "fold=1"]
    assert run_name(compose_config(classification)) == "cls-resnet18-random-smoke-s26-f1"
    assert run_name(compose_config([*classification, "optimizer=sgd"])) == "cls-resnet18-sgd-random-smoke-s26-f1"
    assert factor_tags(compose_config([*classification, "optimizer=sgd"]))["optimizer"] == "sgd"


def test_the_data_content_is_part_of_the_cell(base_key: str) -> None:
    cfg = compose_config(BASE)
    assert cell_key(cfg, "1" * 64) != base_key
    # Runs recorded before data digests keep the key they had (found by a migration).
    assert cell_key(cfg, None) not in (base_key, cell_key(cfg, "1" * 64))


@pytest.mark.parametrize("overrides, recorded", [
    (["budget=smoke", "init=random"], "a2da36a591481d04"),
    (["task=classification", "budget=smoke", "init=random"], "b9f4c514fcee7dfb"),
    (["+experiment=table2", "encoder=resnet50", "app=gelu", "seed=334"], "dd82e5faaee632df"),
])
def test_the_legacy_key_is_the_one_stores_recorded_before_digests(overrides, recorded) -> None:
    """Keys recorded by the release before data digests: `adopt_legacy_runs=true` finds runs by
    them, so they must not drift as settings are added."""
    assert cell_key(compose_config(overrides), None) == recorded
