"""`python -m dedl_experiments.predict` in a subprocess: masks on tiny images, and bad input.

Every bad option, path or checkpoint ends in exit code 2 and one line on stderr naming it,
before any work. The model is an untrained network saved in the inference checkpoint format
(training one would only make these tests slow).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from conftest import cli_env, cuda_present, run_cli
from dedl_experiments.training.checkpoint import atomic_save
from dedl_experiments.data import inform
from dedl_experiments.models.segmentation import build_segmentation_model
from dedl_experiments.tasks.segmentation import INFERENCE_FORMAT

pytestmark = pytest.mark.slow

PREDICT = "dedl_experiments.predict"
HEIGHT, WIDTH = 40, 50
MODEL = {"architecture": "unet", "encoder": "resnet18", "attention": None, "encoder_depth": 3,
         "decoder_channels": [16, 8, 4], "in_channels": 1, "classes": 2}
PREPROCESS = {"channel": "DAPI", "colour": "grey", "normalisation": "percentile",
              "percentiles": [1.0, 99.8], "mean": [0.3], "std": [0.2], "tile_size": 32,
              "stride": 32}
OPTIONS = "checkpoint, input, output, device, batch_size, threshold, on_bad_image"


def inference_checkpoint(network: dict = MODEL, **changes) -> dict:
    """What training saves as best_model.pt, for an untrained `network`; `changes` replace
    entries."""
    net = build_segmentation_model(weights=None, **network)
    return {"format": INFERENCE_FORMAT, "state_dict": net.state_dict(), "model": dict(network),
            "preprocess": dict(PREPROCESS), **changes}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return atomic_save(inference_checkpoint(), tmp_path_factory.mktemp("model") / "best_model.pt")


def write_png(path: Path, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def write_tiff(path: Path, seed: int = 0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 65536, (HEIGHT, WIDTH), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, pixels)
    return path


def write_components(path: Path, seed: int = 0) -> Path:
    """An inForm `*_component_data.tif`: 8 float32 component pages."""
    pages = np.random.default_rng(seed).random((len(inform.COMPONENTS), HEIGHT, WIDTH))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tiff:
        for page in pages.astype(np.float32):
            tiff.write(page, photometric="minisblack", metadata=None)
    return path


def images(folder: Path) -> Path:
    """A folder with one 8-bit PNG and one 16-bit TIFF."""
    write_png(folder / "a.png", seed=1)
    write_tiff(folder / "b.tif", seed=2)
    return folder


def predict(cwd: Path, checkpoint: Path, source: Path, output: Path, *options: str,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli([f"checkpoint={checkpoint}", f"input={source}", f"output={output}",
                    "device=cpu", *options], cwd, module=PREDICT, check=False, env=env)


def refusal(proc: subprocess.CompletedProcess) -> str:
    """The one stderr line of a run refused with exit code 2."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def check_masks(folder: Path, names: set[str]) -> None:
    for name in names:
        mask = tifffile.imread(folder / name)
        assert mask.shape == (HEIGHT, WIDTH) and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}


# --- masks written ---------------------------------------------------------------------


def test_masks_go_into_the_input_folder_and_a_rerun_does_not_segment_them(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    for _ in range(2):
        proc = predict(tmp_path, checkpoint, source, source)
        assert proc.returncode == 0, proc.stderr
        assert f"wrote 2 masks to {source}" in proc.stdout
    assert {p.name for p in source.iterdir()} == {"a.png", "b.tif", "a_mask.tif", "b_mask.tif"}
    check_masks(source, {"a_mask.tif", "b_mask.tif"})


def test_an_output_folder_inside_the_input_is_not_read(tmp_path, checkpoint):
    source = tmp_path / "export"
    write_components(source / "Panel 1" / "s1_component_data.tif")
    output = source / "masks"
    output.mkdir()
    # An unreadable component file in the output folder: reading it would stop the run.
    (output / "old_component_data.tif").write_bytes(b"not a tiff")
    proc = predict(tmp_path, checkpoint, source, output)
    assert proc.returncode == 0, proc.stderr
    assert f"wrote 1 mask to {output}" in proc.stdout
    check_masks(output, {"s1_component_data.tifMask.tif"})


def test_skip_leaves_out_unreadable_images_and_lists_them(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    (source / "broken.png").write_bytes(b"not a png")
    proc = predict(tmp_path, checkpoint, source, tmp_path / "out", "on_bad_image=skip")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "broken.png" in line]
    assert len(warning) == 1 and "not a readable image" in warning[0]
    assert f"wrote 2 masks to {tmp_path / 'out'}" in proc.stdout
    assert f"skipped 1 image: {source / 'broken.png'}" in proc.stdout
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"a_mask.tif", "b_mask.tif"}
    check_masks(tmp_path / "out", {"a_mask.tif", "b_mask.tif"})


def test_an_unreadable_image_stops_the_run_by_default_and_says_how_to_skip_it(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    (source / "0_broken.png").write_bytes(b"not a png")
    line = refusal(predict(tmp_path, checkpoint, source, tmp_path / "out"))
    assert str(source / "0_broken.png") in line and "not a readable image" in line
    assert "on_bad_image=skip" in line


# --- refused before any work -------------------------------------------------------------


def test_two_images_with_one_mask_name_are_refused(tmp_path, checkpoint):
    source = tmp_path / "in"
    write_png(source / "a.png")
    write_tiff(source / "a.tif")
    line = refusal(predict(tmp_path, checkpoint, source, tmp_path / "out"))
    assert str(source / "a.png") in line and str(source / "a.tif") in line and "a_mask.tif" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, expected", [
    ("treshold=0.99", ["unknown option treshold", OPTIONS]),
    ("batch_size=0", ["batch_size=0", "whole number >= 1"]),
    ("batch_size=2.5", ["batch_size=2.5", "whole number >= 1"]),
    ("threshold=high", ["threshold=high", "between 0 and 1"]),
    ("threshold=1.5", ["threshold=1.5", "between 0 and 1"]),
    ("on_bad_image=ignore", ["on_bad_image=ignore", "error, skip"]),
    ("device=tpu", ["device=tpu", "auto, cpu, cuda, cuda:N"]),
    ("device=cuda:99", ["device=cuda:99", "auto, cpu"]),
])
def test_a_bad_option_is_named_before_any_work(tmp_path, checkpoint, option, expected):
    source = images(tmp_path / "in")
    line = refusal(predict(tmp_path, checkpoint, source, tmp_path / "out", option))
    for text in expected:
        assert text in line
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(cuda_present(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_refused(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    line = refusal(predict(tmp_path, checkpoint, source, tmp_path / "out", "device=cuda"))
    assert "device=cuda" in line and "no CUDA GPU" in line and "auto, cpu" in line


def test_missing_options_are_named_on_one_line(tmp_path):
    line = refusal(run_cli([f"input={tmp_path}"], tmp_path, module=PREDICT, check=False))
    assert "missing checkpoint, output" in line and "usage:" in line


def test_an_output_that_is_a_file_is_refused(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    (tmp_path / "out").write_text("")
    line = refusal(predict(tmp_path, checkpoint, source, tmp_path / "out"))
    assert f"output {tmp_path / 'out'}" in line and "is a file" in line


def _read_only(folder: Path) -> list[str]:
    """A command prefix under which `folder` cannot be written: chmod for a normal user; as
    root (who ignores permissions) a read-only bind mount in a private mount namespace."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare to mount a read-only folder")
    mount = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", mount, str(folder)]
    probe = subprocess.run([*prefix, "touch", str(folder / "probe")], capture_output=True,
                           text=True)
    if "Read-only file system" not in probe.stderr:
        pytest.skip("running as root and cannot mount a read-only folder here")
    return prefix


def test_a_read_only_output_folder_is_refused(tmp_path, checkpoint):
    source = images(tmp_path / "in")
    output = tmp_path / "out"
    output.mkdir()
    prefix = _read_only(output)
    proc = subprocess.run([*prefix, sys.executable, "-m", PREDICT, f"checkpoint={checkpoint}",
                           f"input={source}", f"output={output}", "device=cpu"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=600)
    line = refusal(proc)
    assert f"output {output}" in line and "cannot be written" in line


def test_a_checkpoint_folder_is_named_as_such(tmp_path):
    source = images(tmp_path / "in")
    (tmp_path / "run").mkdir()
    line = refusal(predict(tmp_path, tmp_path / "run", source, tmp_path / "out"))
    assert f"checkpoint {tmp_path / 'run'} is a folder" in line and "best_model.pt" in line
    assert not (tmp_path / "out").exists()


def _without_preprocess() -> dict:
    content = inference_checkpoint()
    del content["preprocess"]
    return content


@pytest.mark.parametrize("make, expected", [
    (_without_preprocess, ["lacks 'preprocess'"]),
    # Weights of a 3-channel network under a 1-channel description.
    (lambda: inference_checkpoint(state_dict=inference_checkpoint({**MODEL, "in_channels": 3})
                                  ["state_dict"]),
     ["state_dict does not fit", "encoder.conv1.weight", "(64, 3, 7, 7)", "(64, 1, 7, 7)"]),
    (lambda: inference_checkpoint(model={**MODEL, "architecture": "fpn"}),
     ["cannot build its network", "fpn"]),
    (lambda: inference_checkpoint(preprocess={**PREPROCESS, "tile_size": 0}),
     ["preprocess", "tile_size"]),
], ids=["missing-key", "wrong-shapes", "unknown-architecture", "bad-preprocess"])
def test_a_checkpoint_with_wrong_contents_is_named(tmp_path, make, expected):
    path = atomic_save(make(), tmp_path / "model.pt")
    line = refusal(predict(tmp_path, path, images(tmp_path / "in"), tmp_path / "out"))
    assert f"checkpoint {path}" in line
    for text in expected:
        assert text in line
    assert not (tmp_path / "out").exists()


def test_dedl_debug_shows_the_traceback(tmp_path, checkpoint):
    proc = predict(tmp_path, checkpoint, images(tmp_path / "in"), tmp_path / "out",
                   "treshold=0.99", env=cli_env(DEDL_DEBUG="1"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    assert "unknown option treshold" in proc.stderr
