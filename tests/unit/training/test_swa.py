"""Stochastic weight averaging really averages: the evaluated weights are the mean of the
per-epoch snapshots, not the last epoch's."""

import torch

from conftest import TINY, compose_config
from dedl_experiments.data.preparation_classification import prepare_classification
from dedl_experiments.placement import JobPlacement
from dedl_experiments.tasks.classification import ClassificationTask


def _task(tmp_path, *overrides):
    cfg = compose_config(["task=classification", *TINY, "dataset.n_images=30", "task.folds=3",
                          f"data_dir={tmp_path}", *overrides])
    torch.manual_seed(0)
    return ClassificationTask(cfg, prepare_classification(cfg), JobPlacement(torch.device("cpu")), fold=0)


def test_swa_weights_are_the_mean_of_the_snapshots(tmp_path):
    task = _task(tmp_path, "budget.epochs=4", "task.swa.start_epoch=2")
    snapshots = []
    for epoch in range(4):
        with torch.no_grad():  # stands in for an epoch of training
            for p in task.net.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        if epoch >= 2:
            snapshots.append({k: v.clone() for k, v in task.net.named_parameters()})
        task.end_epoch(epoch)
    assert task.swa_snapshots == 2
    final = task.final_state(best_state={}, seed=0)
    last = dict(task.net.named_parameters())
    for name, first in snapshots[0].items():
        expected = (first + snapshots[1][name]) / 2
        assert torch.allclose(final[name], expected, atol=1e-6), name
        assert not torch.allclose(final[name], last[name])
    # BatchNorm statistics were recomputed for the averaged weights (not left at init).
    running = [v for k, v in final.items() if k.endswith("running_mean")]
    assert running and any(v.abs().sum() > 0 for v in running)


def test_without_swa_the_best_epoch_is_evaluated(tmp_path):
    task = _task(tmp_path, "task.swa.enabled=false")
    best = {k: v.clone() for k, v in task.net.state_dict().items()}
    task.end_epoch(0)
    assert task.swa_snapshots == 0 and task.final_state(best, seed=0) is best


def test_swa_schedule_replaces_cosine_from_its_start(tmp_path):
    task = _task(tmp_path, "budget.epochs=4", "task.swa.start_epoch=2", "task.swa.lr=0.05",
                 "task.swa.anneal_epochs=1")
    lrs = []
    for epoch in range(4):
        task.end_epoch(epoch)
        lrs.append(task.optimizers["net"].param_groups[0]["lr"])
    assert lrs[-1] == 0.05 and lrs[0] < 1e-3  # cosine decayed first, then the SWA rate
