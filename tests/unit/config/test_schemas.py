"""Schemas of the fixed-key groups (schemas.py): a wrong key or a wrong type fails when the
config is composed, named in one line; the schemas add no key to any option (a key added would
change every cell's identity)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from conftest import CONF, compose_config
from dedl_experiments.config.checks import ConfigError, compose_error_message, validate
from dedl_experiments.config.schemas import SCHEMAS

BASE = ["budget=smoke", "init=random"]


def compose_error(overrides: list[str]) -> str:
    with pytest.raises(ConfigCompositionException) as raised:
        compose_config([*BASE, *overrides])
    return compose_error_message(raised.value)


@pytest.mark.parametrize("override, message", [
    ("budget.epochs=abc", "budget.epochs=abc is invalid: it must be an integer"),
    ("budget.scale=half", "budget.scale=half is invalid: it must be a number"),
    ("tiling.size=big", "tiling.size=big is invalid: it must be an integer"),
    ("tiling.stride=wide", "tiling.stride=wide is invalid: it must be null or an integer"),
    ("tiling.drop_blank_train=maybe", "tiling.drop_blank_train=maybe is invalid: it must be true or false"),
    ("lr_schedule.t_max=long", "lr_schedule.t_max=long is invalid: it must be an integer"),
    ("app_lr_schedule=cosine", None),
    ("train.patience=x", "train.patience=x is invalid: it must be null or an integer"),
    ("train.batch_size=2.5", "train.batch_size=2.5 is invalid: it must be an integer"),
    ("claim.lease_s=long", "claim.lease_s=long is invalid: it must be a number"),
])
def test_a_wrong_type_fails_at_compose_time(override: str, message: str | None) -> None:
    if message is None:  # a good override composes
        compose_config([*BASE, override])
        return
    assert compose_error([override]) == message


def test_a_wrong_type_of_an_app_setting_fails_at_compose_time() -> None:
    assert compose_error(["app=gelu", "app.lr=fast"]) == "app.lr=fast is invalid: it must be a number"


@pytest.mark.parametrize("override, message", [
    ("lr_schedule.t_maks=3", "lr_schedule.t_maks is not a setting of lr_schedule (its settings: name, interval, t_max, eta_min)"),
    ("budget.epoch=3", "budget.epoch is not a setting of budget (its settings: name, epochs, batch_size, scale, num_workers)"),
    ("tiling.pad=1", "tiling.pad is not a setting of tiling (its settings: size, stride, blank_threshold, drop_blank_train, padding_label)"),
    ("optimizer.lrr=3", "optimizer.lrr is not a setting of optimizer (its settings: name, label, lr, weight_decay)"),
])
def test_a_misspelt_key_fails_at_compose_time(override: str, message: str) -> None:
    assert compose_error([override]) == message


def test_an_unknown_option_lists_the_groups_options() -> None:
    assert compose_error(["lr_schedule=cosinus"]) == (
        "lr_schedule=cosinus is not an option of lr_schedule; its options: constant, cosine, step")
    assert compose_error(["optimizer=foo"]) == (
        "optimizer=foo is not an option of optimizer; its options: adam, adamw, sgd")


def test_a_key_added_with_plus_to_a_schemas_group_is_a_config_error() -> None:
    cfg = compose_config([*BASE, "+lr_schedule.t_maks=3"])  # Hydra lets `+` add a key
    with pytest.raises(ConfigError, match=re.escape(
            "lr_schedule.t_maks is not a setting of lr_schedule (its settings: name, interval, t_max, eta_min)")):
        validate(cfg)


def test_an_option_file_with_a_wrong_key_fails_at_compose_time(tmp_path: Path) -> None:
    (tmp_path / "lr_schedule").mkdir()
    (tmp_path / "lr_schedule" / "slow.yaml").write_text(
        (CONF / "lr_schedule" / "cosine.yaml").read_text().replace("name: cosine", "name: slow")
        .replace("eta_min:", "eta_minimum:"))
    message = compose_error([f"hydra.searchpath=[file://{tmp_path}]", "lr_schedule=slow"])
    assert "eta_minimum is not a setting of lr_schedule" in message
    assert "\n" not in message


def _option_keys(group: str, option: str) -> set[str]:
    data = OmegaConf.to_container(OmegaConf.load(CONF / group / f"{option}.yaml"), resolve=False)
    return {key for key in data if key != "defaults"}


@pytest.mark.parametrize("group", sorted({path.split("/")[0] for path in SCHEMAS if path not in ("train", "claim")}))
def test_a_schema_adds_no_key_to_any_option(group: str) -> None:
    """Composed, every option of a group with a schema has exactly its file's keys."""
    for path in sorted((CONF / group).glob("*.yaml")):
        cfg = compose_config([*BASE, f"{group}={path.stem}"])
        schema = OmegaConf.get_type(cfg, group).__name__
        assert "defaults" in (path.read_text()), f"{path.name} names no schema"
        assert set(cfg[group]) == _option_keys(group, path.stem), (path, schema)


def test_the_primary_configs_blocks_keep_their_keys() -> None:
    cfg = compose_config(BASE)
    primary = OmegaConf.load(CONF / "config.yaml")
    for block in ("train", "claim"):
        assert set(cfg[block]) == set(primary[block])


def test_numbers_keep_the_type_they_are_written_with() -> None:
    """`eta_min=0` stays 0: converted to 0.0 it would be logged as another param and give the
    cell another key than the same override did before the schemas."""
    cfg = compose_config([*BASE, "lr_schedule.eta_min=0", "budget.scale=1", "claim.lease_s=5"])
    assert [type(v) for v in (cfg.lr_schedule.eta_min, cfg.budget.scale, cfg.claim.lease_s)] == [int] * 3
    assert type(compose_config(BASE).claim.heartbeat_s) is int  # config.yaml's 30
    assert compose_config([*BASE, "budget.scale=0.5"]).budget.scale == 0.5
