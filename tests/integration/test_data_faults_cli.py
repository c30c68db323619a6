"""Bad data in a small folder dataset through the real CLI: one line naming the file, exit code 2,
before the MLflow store is created; a prepared cache changed in place is rebuilt, not used."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import TINY, run_cli

pytestmark = pytest.mark.slow


def _folder_dataset(root: Path, train_nuclei: bool = True) -> Path:
    """4 grey 50x50 images (img0, img1 train / img2 val / img3 test) with 0/255 masks."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(4):
        image = np.random.default_rng(k).integers(0, 256, (50, 50), dtype=np.uint8)
        Image.fromarray(image).save(root / "images" / f"img{k}.png")
        mask = np.zeros((50, 50), dtype=np.uint8)
        if train_nuclei or k >= 2:
            mask[10:25, 10:25] = 255
        Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
    (root / "splits.csv").write_text("id,split\nimg0,train\nimg1,train\nimg2,val\nimg3,test\n")
    return root


def _one_error_line(proc) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out, out
    errors = [line for line in out.splitlines() if "Error" in line]
    assert len(errors) == 1, out
    return errors[0]


@pytest.mark.fresh_store
def test_nan_pixels_are_one_line_before_the_store_is_created(tmp_path):
    root = _folder_dataset(tmp_path / "plain")
    image = np.random.default_rng(9).random((50, 50), dtype=np.float32)
    image[:40, :40] = np.nan  # 1,600 NaN pixels
    (root / "images" / "img1.png").unlink()
    tifffile.imwrite(root / "images" / "img1.tif", image)
    proc = run_cli([*TINY, "dataset=folder", f"dataset.root={root}", f"data_dir={tmp_path / 'd'}"],
                   tmp_path, check=False)
    line = _one_error_line(proc)
    assert f"DataError: {root / 'images' / 'img1.tif'}: 1600 of 2500 pixels are NaN or infinite" in line
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.fresh_store
def test_training_masks_without_nuclei_are_one_line_before_the_store_is_created(tmp_path):
    root = _folder_dataset(tmp_path / "plain", train_nuclei=False)
    proc = run_cli([*TINY, "dataset=folder", f"dataset.root={root}", f"data_dir={tmp_path / 'd'}"],
                   tmp_path, check=False)
    line = _one_error_line(proc)
    assert f"DataError: {root / 'masks'}: all 2 masks of split 'train' are empty" in line
    assert not (tmp_path / "mlflow.db").exists()


def test_a_cache_array_changed_in_place_is_rebuilt(tmp_path):
    root = _folder_dataset(tmp_path / "plain")
    args = [*TINY, "dataset=folder", f"dataset.root={root}", f"data_dir={tmp_path / 'd'}"]
    first = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    cache = Path(next(line.split(": ", 1)[1] for line in first.stdout.splitlines()
                      if line.startswith("prepared data: ")))
    images = cache / "train_images.npy"
    expected = np.load(images)
    with open(images, "r+b") as handle:  # 4 KiB overwritten in place: same size, other values
        handle.seek(images.stat().st_size // 2)
        handle.write(b"\x7f" * 4096)
    again = run_cli(args, tmp_path, module="dedl_experiments.prepare")
    log = again.stdout + again.stderr
    assert f"{images} changed since it was built" in log and "rebuilding" in log, log
    np.testing.assert_array_equal(np.load(images), expected)
