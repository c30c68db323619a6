"""`python -m dedl_experiments.predict` on a large image: progress as it goes (one line per image
in a log), and Ctrl-C or SIGTERM in the middle of an image ends it with one line and exit code
130 / 143, the masks written before complete and no half-written one left."""

import signal
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from conftest import cli_env
from dedl_experiments.training.checkpoint import atomic_save
from forked_cli import start_forked
from test_predict import PREDICT, inference_checkpoint

pytestmark = pytest.mark.slow

# Large enough to take seconds on one thread: 3969 tiles of 32 px in batches of 8.
SIDE = 2000


@pytest.fixture(scope="module")
def large_input(tmp_path_factory) -> tuple[Path, Path]:
    """A model, and a folder with a small image and then a large one (segmented in that order)."""
    folder = tmp_path_factory.mktemp("large")
    torch.manual_seed(0)
    model = atomic_save(inference_checkpoint(), folder / "best_model.pt")
    rng = np.random.default_rng(0)
    (folder / "in").mkdir()
    tifffile.imwrite(folder / "in" / "a_small.tif", rng.integers(0, 65536, (40, 50), dtype=np.uint16))
    tifffile.imwrite(folder / "in" / "b_large.tif", rng.integers(0, 65536, (SIDE, SIDE), dtype=np.uint16))
    return model, folder / "in"


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_segmenting_a_large_image_stops_in_one_line(tmp_path, large_input, sig, code):
    model, source = large_input
    output = tmp_path / "out"
    proc = start_forked(PREDICT, [f"checkpoint={model}", f"input={source}", f"output={output}",
                                  "device=cpu", "batch_size=8"], tmp_path, cli_env(OMP_NUM_THREADS="1"))
    seen = []
    try:
        # Outside a terminal: one line per image as it starts, no progress bars.
        while not any(line.startswith("image 2/2") for line in seen):
            line = proc.stdout.readline()
            assert line, f"predict ended before the large image: {''.join(seen)}"
            seen.append(line)
        proc.send_signal(sig)
        rest = proc.stdout.read()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    out = "".join(seen) + rest
    assert proc.returncode == code, out
    assert "Traceback" not in out and "\r" not in out, out
    assert seen[0].startswith(f"image 1/2 ({source / 'a_small.tif'}): 40 x 50 px, 4 tiles in 1 batch")
    assert seen[-1].startswith(f"image 2/2 ({source / 'b_large.tif'}): {SIDE} x {SIDE} px, 3969 tiles in 497 batches")
    [stop] = rest.strip().splitlines()
    assert stop.startswith(f"stopped by {sig.name} in image 2/2 ({source / 'b_large.tif'}), tile batch "), stop
    assert stop.endswith("/497; 1 mask written before is complete; rerun the same command to segment the images")
    # The small image's mask is complete; the large one's was never begun on disk.
    assert sorted(p.name for p in output.iterdir()) == ["a_small_mask.tif"]
    assert tifffile.imread(output / "a_small_mask.tif").shape == (40, 50)
