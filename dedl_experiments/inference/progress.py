"""Predict's progress: over the images and the tile batches of each, shown as the training loop
shows its own (bars on a terminal only), and where predict is, for the line a stop ends with."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from dedl_experiments.training.loop import progress_bars_off

log = logging.getLogger("dedl_experiments.predict")


@dataclass
class Outcome:
    """What a predict call did: the masks written, the images skipped, and where it is."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    where: str = "setup"  # what predict is doing, e.g. "image 2/5 (a.tif), tile batch 3/40"


def counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class Progress:
    """Progress over the images and the tile batches of each, as the training loop shows it:
    bars on a terminal only (the tile bar for images of several batches); in a log file, where
    every bar update would stay, one line per image as it starts (loop.progress_bars_off)."""

    def __init__(self, outcome: Outcome, count: int, batch_size: int):
        self.outcome, self.count, self.batch_size = outcome, count, batch_size
        self.bars = not progress_bars_off()
        self.images = tqdm(total=count, desc="images", unit="image", dynamic_ncols=True,
                           disable=not self.bars)
        self.batches: tqdm | None = None
        self.image = ""

    def start(self, number: int, path: Path, shape: tuple[int, ...]) -> None:
        self.image = f"image {number}/{self.count} ({path})"
        self.shape = shape[-2:]
        self.outcome.where = self.image

    def tiles(self, done: int, total: int) -> None:
        """inference.Progress: `done` of the image's `total` tiles predicted."""
        batches = math.ceil(total / self.batch_size)
        current = min(batches, done // self.batch_size + 1)  # the batch being predicted
        self.outcome.where = f"{self.image}, tile batch {current}/{batches}"
        if done == 0:
            if not self.bars:
                log.info("%s: %d x %d px, %d tiles in %d batch%s", self.image, *self.shape, total,
                         batches, "" if batches == 1 else "es")
            elif batches > 1:
                self.batches = tqdm(total=batches, desc="tile batches", unit="batch", leave=False,
                                    dynamic_ncols=True)
        elif self.batches is not None:
            self.batches.update(1)

    def done(self) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None
        self.images.update(1)

    def close(self) -> None:
        if self.batches is not None:
            self.batches.close()
        self.images.close()
