"""Segment whole images with a saved model.

    python -m dedl_experiments.predict checkpoint=outputs/.../best_model.pt input=DIR_OR_FILE output=DIR

Inputs are inForm component TIFFs (`*_component_data.tif`, the configured channel is used) or
plain TIFF/PNG images. Each image is normalised exactly as in training (the checkpoint
carries the preprocessing), tiled, predicted and stitched back; one mask TIFF (0/255, uint8)
per image is written at its original size: `<sample>_component_data.tifMask.tif` for inForm
inputs (the export's own mask naming) and `<stem>_mask.tif` for plain images.
Optional: `device=auto|cpu|cuda`, `batch_size=16`, `threshold=0.5`.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import tifffile
import torch
from omegaconf import OmegaConf

from dedl_experiments.checkpoint import CheckpointError, load
from dedl_experiments.data import folder, inform
from dedl_experiments.data.errors import DataError
from dedl_experiments.inference import predict_image
from dedl_experiments.models.segmentation import build_segmentation_model
from dedl_experiments.tasks.segmentation import INFERENCE_FORMAT

log = logging.getLogger("dedl_experiments.predict")
USAGE = "usage: python -m dedl_experiments.predict checkpoint=PATH input=DIR_OR_FILE output=DIR"


def load_model(path: Path, device: torch.device) -> tuple[torch.nn.Module, dict]:
    checkpoint = load(path)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != INFERENCE_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a segmentation model saved by "
                              f"dedl_experiments (expected format {INFERENCE_FORMAT})")
    net = build_segmentation_model(weights=None, **checkpoint["model"])
    net.load_state_dict(checkpoint["state_dict"])
    return net.to(device).eval(), checkpoint["preprocess"]


def input_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"input {path} does not exist")
    components = sorted(p for p in path.rglob(f"*{inform.IMAGE_SUFFIX}")
                        if inform.LABELS_FOLDER not in p.parts)
    files = components or sorted(p for p in path.iterdir()
                                 if p.is_file() and p.suffix.lower() in folder.EXTENSIONS)
    if not files:
        raise DataError(f"input {path} holds no {inform.IMAGE_SUFFIX} files and no "
                        f"{' '.join(folder.EXTENSIONS)} images")
    return files


def read_input(path: Path, pre: dict) -> tuple[np.ndarray, str]:
    """Normalised (C, H, W) image and the output file name."""
    low, high = pre["percentiles"]
    if path.name.endswith(inform.IMAGE_SUFFIX):
        image = inform.read_channel(path, pre["channel"])[None]
        out_name = path.name + "Mask.tif"
    else:
        image = folder.read_folder_image(path, pre["colour"])
        image = image if image.ndim == 3 else image[None]
        out_name = f"{path.stem}_mask.tif"
    return inform.normalise(image, pre["normalisation"], low=low, high=high), out_name


def predict(checkpoint: Path, source: Path, output: Path, device: torch.device,
            batch_size: int = 16, threshold: float = 0.5) -> list[Path]:
    net, pre = load_model(checkpoint, device)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for path in input_files(source):
        image, out_name = read_input(path, pre)
        prob = predict_image(net, image, pre["tile_size"], pre["stride"], pre["mean"], pre["std"],
                             batch_size, device)
        mask = np.where(prob > threshold, 255, 0).astype(np.uint8)
        tifffile.imwrite(output / out_name, mask)
        written.append(output / out_name)
        log.info("%s -> %s (%d x %d, %.1f %% nucleus)", path, output / out_name, *mask.shape,
                 100 * (mask > 0).mean())
    return written


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = OmegaConf.from_dotlist(argv)
    missing = [k for k in ("checkpoint", "input", "output") if k not in args]
    if missing:
        print(f"missing {', '.join(missing)}\n{USAGE}", file=sys.stderr)
        return 2
    device_name = str(args.get("device", "auto"))
    device = torch.device("cuda" if device_name == "auto" and torch.cuda.is_available()
                          else "cpu" if device_name == "auto" else device_name)
    try:
        written = predict(Path(str(args.checkpoint)), Path(str(args.input)),
                          Path(str(args.output)), device, int(args.get("batch_size", 16)),
                          float(args.get("threshold", 0.5)))
    except (CheckpointError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} masks to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
