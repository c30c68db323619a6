"""Predict's progress: bars over the images and the tile batches on a terminal, one line per
image in a log file, and where predict is for the line a stop ends with."""

import logging
from pathlib import Path

import pytest

from dedl_experiments.inference import progress
from dedl_experiments.predict import Outcome
from dedl_experiments.inference.progress import Progress


def _segment(progress: Progress, tiles: int, batch_size: int) -> list[str]:
    """What `where` says as predict goes through one image's tile batches."""
    places = []
    progress.start(1, Path("big.tif"), (1, 300, 400))
    for done in [0, *range(batch_size, tiles, batch_size), tiles]:
        progress.tiles(done, tiles)
        places.append(progress.outcome.where)
    progress.done()
    progress.close()
    return places


def test_in_a_log_one_line_per_image_and_no_bars(monkeypatch, capsys, caplog):
    monkeypatch.setattr(predict_progress, "progress_bars_off", lambda: True)
    caplog.set_level(logging.INFO, logger="dedl_experiments.predict")
    places = _segment(Progress(Outcome(), 2, 4), tiles=10, batch_size=4)
    assert [r.getMessage() for r in caplog.records] == [
        "image 1/2 (big.tif): 300 x 400 px, 10 tiles in 3 batches"]
    assert capsys.readouterr().err == ""
    # Where a stop would say predict was: the batch being predicted.
    assert places == ["image 1/2 (big.tif), tile batch 1/3", "image 1/2 (big.tif), tile batch 2/3",
                      "image 1/2 (big.tif), tile batch 3/3", "image 1/2 (big.tif), tile batch 3/3"]


@pytest.mark.parametrize("tiles, tile_bar", [(10, True), (4, False)])
def test_on_a_terminal_bars_for_images_and_for_the_batches_of_large_ones(monkeypatch, capsys, caplog,
                                                                          tiles, tile_bar):
    monkeypatch.setattr(predict_progress, "progress_bars_off", lambda: False)
    caplog.set_level(logging.INFO, logger="dedl_experiments.predict")
    _segment(Progress(Outcome(), 2, 4), tiles=tiles, batch_size=4)
    shown = capsys.readouterr().err
    assert "images:" in shown and "1/2" in shown
    assert ("tile batches:" in shown) == tile_bar
    assert not caplog.records
