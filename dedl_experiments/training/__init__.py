"""The one plain-PyTorch training loop and what it optimises and measures: checkpoints, losses,
metrics, learning-rate schedules."""
