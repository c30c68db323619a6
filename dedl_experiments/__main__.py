"""`python -m dedl_experiments [overrides]` runs one job; `-m` sweeps."""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from dedl_experiments import job
from dedl_experiments.checkpoint import CheckpointError
from dedl_experiments.config import ConfigError
from dedl_experiments.data.errors import DataError
from dedl_experiments.loop import Terminated
from dedl_experiments.models.weights import WeightsUnavailable
from dedl_experiments.sweep_callbacks import FAILED_MARKER, SKIPPED_MARKER
from dedl_experiments.tracking import TrackingError

# Problems with the user's input or environment: one clear line, no traceback.
USER_ERRORS = (ConfigError, DataError, WeightsUnavailable, TrackingError, CheckpointError)
log = logging.getLogger("dedl_experiments")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> dict | None:
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    if hc.mode.name != "MULTIRUN":
        try:
            return job.run(cfg, output_dir)
        except USER_ERRORS as err:
            log.error("%s: %s", type(err).__name__, err)
            sys.exit(2)
        except Terminated as err:
            log.error("stopped by %s; rerun the same command to resume", err)
            sys.exit(143)
    # In a sweep a failed job must not stop the others: it is logged and marked, and the
    # sweep's end (sweep_callbacks.SweepSummary) lists failed cells and exits non-zero.
    try:
        result = job.run(cfg, output_dir, hc.sweep.dir)
    except Exception as err:
        if isinstance(err, USER_ERRORS):
            log.error("%s: %s", type(err).__name__, err)
        else:
            log.exception("job failed")
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / FAILED_MARKER).write_text(f"{type(err).__name__}: {err}\n")
        return None
    if result["status"] == "skipped":
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / SKIPPED_MARKER).write_text(f"{result['run_name']} {result['run_id']}\n")
    return result


if __name__ == "__main__":
    main()
