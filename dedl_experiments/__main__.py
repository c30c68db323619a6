"""`python -m dedl_experiments [overrides]` runs one job; `-m` sweeps.

Ctrl-C (SIGINT) or SIGTERM ends a job, or a whole sweep, with one line and exit code 130 or
143; the interrupted run is KILLED and a rerun of the same command resumes it. Overrides or
option files that do not compose (an unknown option, a misspelt key, a value of the wrong type)
are one line and exit code 2, like the config checks. DEDL_DEBUG=1 adds the traceback.
"""

import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from dedl_experiments.run import job
from dedl_experiments.training.checkpoint import CheckpointError
from dedl_experiments.config.config_files import CONFIG_PATH
from dedl_experiments.config.checks import ConfigError, compose_error_message
from dedl_experiments.data.errors import DataError
from dedl_experiments.run.folders import DiskFull
from dedl_experiments.models.pretrained import WeightsUnavailable
from dedl_experiments.run.stop import Terminated
from dedl_experiments.config.sweep_callbacks import BUSY_MARKER, FAILED_MARKER, SKIPPED_MARKER
from dedl_experiments.tracking.store_checks import TrackingError
from multirun_launchers.devices import register_resolvers

# Problems with the user's input or environment: one clear line, no traceback.
# A full disk and a tracking server that went away are one line too: the run stays resumable.
USER_ERRORS = (ConfigError, DataError, WeightsUnavailable, TrackingError, CheckpointError, DiskFull)
log = logging.getLogger("dedl_experiments")
_jobs_started = 0


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def run_jobs(cfg: DictConfig) -> dict | None:
    global _jobs_started
    _jobs_started += 1
    hc = HydraConfig.get()
    output_dir = Path(hc.runtime.output_dir)
    if hc.mode.name != "MULTIRUN":
        try:
            return job.run(cfg, output_dir)
        except USER_ERRORS as err:
            log.error("%s: %s", type(err).__name__, err)
            sys.exit(2)
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
    if result["status"] == "skipped":  # the summary tells finished cells from busy ones
        output_dir.mkdir(parents=True, exist_ok=True)
        if result.get("busy"):
            (output_dir / BUSY_MARKER).write_text(f"{result['run_name']}: {result['busy']}\n")
        else:
            (output_dir / SKIPPED_MARKER).write_text(f"{result['run_name']} {result['run_id']}\n")
    return result


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name, 128 + signum)


def _does_not_compose(err: Exception) -> bool:
    """Hydra's errors come before or between jobs (composing a job's config, launching it);
    OmegaConf's, before any job (after, they come from a job's code: a traceback)."""
    return isinstance(err, HydraException) or (isinstance(err, OmegaConfBaseException)
                                                and not _jobs_started)


def main() -> None:
    register_resolvers()  # the launcher presets' resolvers, before Hydra composes
    debug = bool(os.environ.get("DEDL_DEBUG") or os.environ.get("HYDRA_FULL_ERROR"))
    # Hydra raises its errors instead of printing them on several lines: reported below.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    # Hydra reports only Exceptions: a stop (Terminated, KeyboardInterrupt, both
    # BaseExceptions) comes out here, from a single job or from any job of an in-process sweep.
    signal.signal(signal.SIGTERM, _raise_terminated)  # outside jobs too, e.g. between jobs
    try:
        run_jobs()
    except Exception as err:
        if debug or not _does_not_compose(err):
            raise
        if not logging.getLogger().handlers:  # Hydra had not set up logging yet
            logging.basicConfig(format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
        log.error("ConfigError: %s", compose_error_message(err))
        sys.exit(2)
    except (Terminated, KeyboardInterrupt) as err:
        for sig in (signal.SIGINT, signal.SIGTERM):  # more Ctrl-C must not add a traceback
            signal.signal(sig, signal.SIG_IGN)
        stop = err if isinstance(err, Terminated) else Terminated("SIGINT", 130)
        log.error("stopped by %s; rerun the same command to resume", stop,
                  exc_info=bool(os.environ.get("DEDL_DEBUG")))
        sys.exit(stop.exit_code)


if __name__ == "__main__":
    main()
