"""A Hydra callback that checks the output folder before Hydra creates it.

Hydra makes `hydra.run.dir` (or `hydra.sweep.dir`) before the job starts, and a folder that
cannot be created or written ends there in a traceback. Checking first gives one line naming
the option, and exit code 2, like every other bad setting.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from dedl_experiments.run.folders import writable_folder_problem


def _check(option: str, folder: str) -> None:
    problem = writable_folder_problem(Path(folder))
    if problem:
        print(f"ConfigError: {option}={folder} cannot be created or written ({problem}); "
              f"choose a writable folder with {option}=...", file=sys.stderr)
        sys.exit(2)


class OutputDirCheck(Callback):
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check("hydra.sweep.dir", config.hydra.sweep.dir)
