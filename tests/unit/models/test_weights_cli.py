"""`weights check` lists what a sweep needs and where it is found, with no network."""

import pytest
import torch

from dedl_experiments import weights as weights_cli
from dedl_experiments.models import pretrained


pytestmark = pytest.mark.usefixtures("isolated_weight_stores")


def _fake(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"conv1.weight": torch.zeros(1)}, path.with_suffix(".pth"))


def test_check_lists_present_and_missing_weights_of_a_sweep(capsys):
    _fake(pretrained.smp_weights_file("resnet18", "imagenet"))
    code = weights_cli.main(["check", "encoder=resnet18,resnet34", "app=none,gelu"])
    out = capsys.readouterr().out
    assert code == 1
    assert "4 jobs need 2 pretrained weights" in out
    assert "local    smp resnet18 / imagenet" in out
    assert "missing  smp resnet34 / imagenet" in out and "1 missing" in out

    _fake(pretrained.smp_weights_file("resnet34", "imagenet"))
    assert weights_cli.main(["check", "encoder=resnet18,resnet34"]) == 0


def test_random_init_and_classification_tags(capsys):
    assert weights_cli.main(["check", "init=random"]) == 0
    assert "1 jobs need 0 pretrained weights" in capsys.readouterr().out
    _fake(pretrained.timm_weights_file("tf_efficientnet_b0.ns_jft_in1k"))
    code = weights_cli.main(["check", "task=classification", "encoder=efficientnet_b0",
                             "init=noisy_student,advprop"])
    out = capsys.readouterr().out
    assert code == 1
    assert "local    timm tf_efficientnet_b0 / ns_jft_in1k" in out
    assert "missing  timm tf_efficientnet_b0 / ap_in1k" in out


def test_fetch_says_downloads_are_off_when_offline(capsys):
    assert weights_cli.main(["fetch", "encoder=resnet50"]) == 1
    assert "downloads are off" in capsys.readouterr().out


def test_usage_without_a_command(capsys):
    assert weights_cli.main([]) == 2
