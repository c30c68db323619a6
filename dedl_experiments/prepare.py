"""`python -m dedl_experiments.prepare [overrides]`: build (or reuse) the prepared data only.

Takes the same overrides as a training job and prints the cache folder, the dataset's content
digest and its statistics, so that a cluster user can prepare the data once before submitting
a sweep (the jobs then reuse the cache).
"""

import json
import logging
import sys

import hydra
from omegaconf import DictConfig

from dedl_experiments.config import components
from dedl_experiments.config.config_files import CONFIG_PATH
from dedl_experiments.config.checks import ConfigError, validate
from dedl_experiments.data.errors import DataError
from multirun_launchers.devices import register_resolvers

log = logging.getLogger("dedl_experiments")


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
        prepared = components.target(cfg.task).prepare(cfg)  # the task's prepare step
    except (ConfigError, DataError) as err:
        log.error("%s: %s", type(err).__name__, err)
        sys.exit(2)
    print(f"prepared data: {prepared.root}")
    print(f"dataset digest: {prepared.digest}")
    print(json.dumps(prepared.stats, indent=1))


if __name__ == "__main__":
    register_resolvers()  # the launcher presets' resolvers, before Hydra composes
    main()
