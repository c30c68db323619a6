"""Warm-up time: the first epoch a process trains runs torch.compile's compilation (and CUDA's
first-call set-up), so it takes longer than the rest. The excess is logged on its own, so that
timing measures can leave it out while the wall time (what the paper timed) stays as it was:

- `compile_time_s`: the excess of the warm-up epochs (the run's first, and the first after a
  resume) over the median epoch of the others, never below zero;
- `train_epoch_time_warm_mean_s`: the mean training phase of the other epochs.

Neither is logged for a run with no epoch besides its warm-up epochs.
"""

from __future__ import annotations

import statistics


def warmup_metrics(history: list[dict], warmup_epochs: set[int]) -> dict[str, float]:
    """From each epoch's row (`epoch_time_s`, `epoch_train_time_s`), indexed by epoch."""
    timed = [(epoch, row) for epoch, row in enumerate(history) if "epoch_time_s" in row]
    warm = [row for epoch, row in timed if epoch not in warmup_epochs]
    if not warm:
        return {}
    typical = statistics.median(row["epoch_time_s"] for row in warm)
    excess = sum(max(0.0, row["epoch_time_s"] - typical) for epoch, row in timed if epoch in warmup_epochs)
    metrics = {"compile_time_s": float(excess)}
    train_phases = [row["epoch_train_time_s"] for row in warm if "epoch_train_time_s" in row]
    if train_phases:
        metrics["train_epoch_time_warm_mean_s"] = float(statistics.fmean(train_phases))
    return metrics
