"""Reproduce and extend the ablations of Singh & Cirrone's histopathology segmentation and
classification paper: Hydra-configured jobs, one plain-PyTorch training loop, MLflow records."""

from dedl_experiments.config import schemas

# Before any config is composed: the option files of fixed-key groups name these schemas.
schemas.register()
