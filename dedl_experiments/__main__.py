"""`python -m dedl_experiments [overrides]` runs one job; `-m` sweeps."""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dedl_experiments import job
from dedl_experiments.config import ConfigError
from dedl_experiments.data.errors import DataError
from dedl_experiments.models.weights import WeightsUnavailable
from dedl_experiments.tracking import TrackingError

# Problems with the user's input or environment: one clear line, no traceback.
USER_ERRORS = (ConfigError, DataError, WeightsUnavailable, TrackingError)
log = logging.getLogger("dedl_experiments")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict:
    hc = HydraConfig.get()
    multirun = hc.mode.name == "MULTIRUN"
    try:
        return job.run(cfg, Path(hc.runtime.output_dir), hc.sweep.dir if multirun else None)
    except USER_ERRORS as err:
        log.error("%s: %s", type(err).__name__, err)
        if multirun:
            raise  # Hydra marks this job failed and the sweep goes on
        sys.exit(2)


if __name__ == "__main__":
    main()
