"""The real CLI on overrides that do not compose: one line naming the option and what it must
be, exit code 2, no traceback and nothing left behind, for a single job and for a sweep."""

import pytest

from conftest import TINY, cli_env, run_cli

pytestmark = pytest.mark.slow


@pytest.mark.fresh_store
@pytest.mark.parametrize("args, line", [
    (["budget.epochs=abc"], "ConfigError: budget.epochs=abc is invalid: it must be an integer"),
    (["lr_schedule.t_maks=3"], "ConfigError: lr_schedule.t_maks is not a setting of lr_schedule "
                               "(its settings: name, interval, t_max, eta_min)"),
    (["encoder=resnet19"], "ConfigError: encoder=resnet19 is not an option of encoder; its options: "
                           "coatnet, convnext_base,"),
    (["-m", "seed=1,2", "tiling.size=big"], "ConfigError: tiling.size=big is invalid: it must be an integer"),
    (["dataset=folder", "dataset.root=/data/Müller"],
     """ConfigError: dataset.root=/data/Müller is not a valid override (LexerNoViableAltException); """
     """non-ASCII characters in an override must be quoted: 'dataset.root="/data/Müller"'"""),
])
def test_a_config_that_does_not_compose_is_one_line_and_exit_2(tmp_path, args, line):
    proc = run_cli([*args, *TINY], tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and "HYDRA_FULL_ERROR" not in out, out
    errors = [text for text in out.splitlines() if "Error" in text]
    assert len(errors) == 1 and line in errors[0], out
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "outputs").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli([*TINY, "budget.epochs=abc"], tmp_path, check=False,
                   env=cli_env(DEDL_DEBUG="1"))
    assert proc.returncode == 1 and "Traceback" in proc.stderr


@pytest.mark.fresh_store
def test_the_quoted_form_of_a_non_ascii_value_is_read(tmp_path):
    """What the hint above suggests works: the value reaches the dataset check unchanged."""
    root = tmp_path / "Müller Daten"
    proc = run_cli([*TINY, "dataset=folder", f'dataset.root="{root}"'], tmp_path, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2 and f"DataError: dataset root {root} does not exist" in out, out
