"""Segmentation end to end: APP training-only, the saved model, predict, other raw layouts."""

from pathlib import Path

import mlflow
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from conftest import TINY, run_cli
from dedl_experiments.data import inform, synthetic

pytestmark = pytest.mark.slow


def _finished_runs(cwd: Path):
    client = mlflow.MlflowClient(f"sqlite:///{cwd / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dedl")
    runs = client.search_runs([exp.experiment_id])
    assert runs and all(r.info.status == "FINISHED" for r in runs), [r.info for r in runs]
    return client, runs


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """UNet and UNet++, each without and with the GELU APP, on one store."""
    cwd = tmp_path_factory.mktemp("seg")
    run_cli(["-m", *TINY, f"data_dir={cwd / 'data'}", "architecture=unet,unetplusplus",
             "app=none,gelu"], cwd)
    return cwd, *_finished_runs(cwd)


def _checkpoint(run) -> Path:
    return Path(run.data.tags["dedl.output_dir"]) / "best_model.pt"


def test_app_is_training_only(sweep):
    _, client, runs = sweep
    assert len(runs) == 4
    by_cell = {(r.data.params["architecture.name"], r.data.params["app.name"]): r for r in runs}
    for arch in ("unet", "unetplusplus"):
        plain, app = by_cell[(arch, "none")], by_cell[(arch, "gelu")]
        assert plain.data.metrics["params_app"] == 0 and app.data.metrics["params_app"] > 0
        assert plain.data.metrics["params_net"] == app.data.metrics["params_net"]
        # Same weights file size with and without the APP: only the network is saved.
        assert _checkpoint(plain).stat().st_size == _checkpoint(app).stat().st_size
        state = torch.load(_checkpoint(app), weights_only=True)["state_dict"]
        assert not any("app" in key or "autoencoder" in key for key in state)
        # Nor the encoder stages the network does not run (encoder_depth=3 of ResNet-18's 4).
        assert not any(key.startswith(("encoder.layer3.", "encoder.layer4.")) for key in state)
        assert any(key.startswith("encoder.layer2.") for key in state)
        names = {a.path for a in client.list_artifacts(app.info.run_id)}
        assert {"best_model.pt", "test_overlays.png", "metrics.json", "config.yaml"} <= names
        for key in ("test_iou", "test_miou", "test_dice", "test_pixel_accuracy", "best_epoch",
                    "epochs_run", "train_time_s", "peak_memory_mb", "train_blank_share"):
            assert key in app.data.metrics, key


def test_predict_writes_full_size_masks_that_reproduce_the_test_iou(sweep, tmp_path):
    cwd, _, runs = sweep
    run = next(r for r in runs if r.data.params["architecture.name"] == "unet"
               and r.data.params["app.name"] == "none")
    data_root = next((cwd / "data" / "synthetic").glob("inform-*"))
    samples, _ = inform.find_samples(data_root)
    test = [s for s in samples if s.patient in ("Myo231", "Myo511")]
    source = tmp_path / "in"
    source.mkdir()
    for s in test:
        (source / s.image.name).symlink_to(s.image)
    proc = run_cli([f"checkpoint={_checkpoint(run)}", f"input={source}", f"output={tmp_path / 'out'}"],
                   cwd, module="dedl_experiments.predict")
    assert f"wrote {len(test)} masks" in proc.stdout
    inter = union = 0
    for s in test:
        pred = tifffile.imread(tmp_path / "out" / (s.image.name + "Mask.tif"))
        truth = inform.read_mask(s.mask)
        assert pred.shape == truth.shape and pred.dtype == np.uint8
        assert set(np.unique(pred)) <= {0, 255}
        inter += np.logical_and(pred > 0, truth).sum()
        union += np.logical_or(pred > 0, truth).sum()
    assert inter / union == pytest.approx(run.data.metrics["test_iou"], abs=1e-6)


def test_predict_rejects_a_damaged_checkpoint(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((40, 50), dtype=np.uint8)).save(images / "a.png")
    proc = run_cli([f"checkpoint={bad}", f"input={images}", f"output={tmp_path / 'o'}"],
                   tmp_path, module="dedl_experiments.predict", check=False)
    assert proc.returncode == 2 and f"checkpoint {bad} is damaged" in proc.stderr


def _folder_dataset(root: Path) -> Path:
    """Grey 8- and 16-bit PNGs and TIFFs of different sizes with 0/255 masks."""
    for k, (h, w) in enumerate([(70, 90), (64, 64), (90, 75), (80, 100), (66, 70), (72, 88)]):
        src = synthetic.write_inform_dataset(root / f"src{k}", height=h, width=w,
                                             images_per_patient=1, seed=k)
        sample = inform.find_samples(src)[0][0]
        dapi = inform.normalise(inform.read_channel(sample.image, "DAPI"))
        mask = inform.read_mask(sample.mask).astype(np.uint8) * 255
        (root / "images").mkdir(exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        if k % 2:
            Image.fromarray((dapi * 255).astype(np.uint8)).save(root / "images" / f"img{k}.png")
            Image.fromarray(mask).save(root / "masks" / f"img{k}.png")
        else:
            tifffile.imwrite(root / "images" / f"img{k}.tif", (dapi * 65535).astype(np.uint16))
            tifffile.imwrite(root / "masks" / f"img{k}.tif", mask)
    return root


def test_folder_dataset_trains_on_images_of_varied_sizes(tmp_path):
    root = _folder_dataset(tmp_path / "plain")
    (root / "splits.csv").write_text("id,split\nimg0,train\nimg1,train\nimg2,train\n"
                                     "img3,val\nimg4,test\nimg5,test\n")
    proc = run_cli([*TINY, "dataset=folder", f"dataset.root={root}",
                    f"data_dir={tmp_path / 'data'}"], tmp_path)
    assert "test IoU" in proc.stdout
    _, runs = _finished_runs(tmp_path)
    assert runs[0].data.metrics["train_tiles"] > 0


def test_myositis_dataset_reads_an_export_root(tmp_path, shared_data_dir):
    export = synthetic.write_inform_dataset(tmp_path / "export", height=88, width=117,
                                            images_per_patient=1, seed=3)
    run_cli([*TINY, "dataset=myositis", f"dataset.root={export}", f"data_dir={tmp_path / 'd'}"],
            tmp_path)
    _finished_runs(tmp_path)


@pytest.mark.parametrize("dataset", ["myositis", "folder"])
def test_a_missing_dataset_root_is_named(tmp_path, dataset):
    proc = run_cli([*TINY, f"dataset={dataset}", f"dataset.root={tmp_path / 'nowhere'}",
                    f"data_dir={tmp_path / 'd'}"], tmp_path, check=False)
    assert proc.returncode == 2
    assert f"dataset root {tmp_path / 'nowhere'} does not exist" in proc.stdout + proc.stderr
    if (tmp_path / "mlflow.db").exists():  # the store may exist, but no run was started
        client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()])
