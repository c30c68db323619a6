"""Segment whole images with a saved model.

    python -m dedl_experiments.predict checkpoint=outputs/.../best_model.pt input=DIR_OR_FILE output=DIR

Inputs are inForm component TIFFs (`*_component_data.tif` anywhere under the input folder, the
configured channel is used) or, when there are none, the plain TIFF/PNG images directly in it.
Each image is normalised exactly as in training (the checkpoint carries the preprocessing),
tiled, predicted and stitched back; one mask TIFF (0/255, uint8) per image is written at its
original size: `<sample>_component_data.tifMask.tif` for inForm inputs (the export's own mask
naming) and `<stem>_mask.tif` for plain images. The output folder is created if missing.

Options (key=value; of a key given twice the last counts; other keys are refused):
    device=auto|cpu|cuda|cuda:N  auto (default): the GPU when there is one, else the CPU
    batch_size=16                tiles per forward pass, a whole number >= 1
    threshold=0.5                nucleus where its probability is above this, between 0 and 1
    on_bad_image=error|skip      error (default): stop at an unreadable image; skip: warn,
                                 go on, and list the skipped images at the end (exit code 0
                                 unless no mask at all was written)

Predict never reads its own masks: files under the output folder are not inputs (it may lie
inside the input folder), and when the output folder is the input folder itself, files named
like masks (`*_mask.tif`, `*_component_data.tifMask.tif`) are left out, so a rerun replaces
them instead of segmenting them. Images whose masks would get one name (`a.tif` and `a.png`)
are refused rather than one overwriting the other.

Bad input ends the run with exit code 2 and one line on stderr naming the option or file,
what is wrong and what is allowed. Options, paths, mask names and the checkpoint are all
checked before the first image is read; `DEDL_DEBUG=1` shows the traceback instead.

Progress: on a terminal, bars over the images and, for an image of several tile batches, over
its batches; in a log (SLURM, CI, `> log`) one line per image as it starts. Ctrl-C or SIGTERM
ends the run with one line saying where it stopped, exit code 130 or 143; the masks written
before are complete (a mask is written to a temporary name and then renamed).
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
import torch

from dedl_experiments.training.checkpoint import CheckpointError
from dedl_experiments.data import folder, inform
from dedl_experiments.data.errors import DataError
from dedl_experiments.run.folders import writable_folder_problem
from dedl_experiments.inference.tiled import predict_image
from dedl_experiments.inference.progress import Outcome, Progress, counted
from dedl_experiments.inference.saved_model import SavedModel, check_checkpoint_file, first_line, load_model
from dedl_experiments.placement.speed import pick_device
from dedl_experiments.run.stop import Terminated

log = logging.getLogger("dedl_experiments.predict")

REQUIRED = ("checkpoint", "input", "output")
DEFAULTS = {"device": "auto", "batch_size": "16", "threshold": "0.5", "on_bad_image": "error"}
OPTIONS = (*REQUIRED, *DEFAULTS)
ON_BAD_IMAGE = ("error", "skip")
DEVICE_NAME = re.compile(r"auto|cpu|cuda(:\d+)?")
USAGE = ("usage: python -m dedl_experiments.predict checkpoint=PATH input=DIR_OR_FILE output=DIR "
         "[device=auto] [batch_size=16] [threshold=0.5] [on_bad_image=error|skip]")
PLAIN_MASK_SUFFIX = "_mask.tif"


@dataclass(frozen=True)
class Options:
    checkpoint: Path
    input: Path
    output: Path
    device: torch.device
    batch_size: int
    threshold: float
    on_bad_image: str


# --- options -----------------------------------------------------------------------------


def given_options(argv: list[str]) -> dict[str, str]:
    """`key=value` arguments by key (a later one wins, as with Hydra overrides); anything
    else or an unknown key is refused."""
    given: dict[str, str] = {}
    for arg in argv:
        key, is_pair, value = arg.partition("=")
        if not is_pair:
            raise DataError(f"argument {arg!r} is not key=value; {USAGE}")
        if key not in OPTIONS:
            raise DataError(f"unknown option {arg}; valid options: {', '.join(OPTIONS)}")
        if not value:
            raise DataError(f"option {key} is empty; {USAGE}")
        given[key] = value
    missing = [key for key in REQUIRED if key not in given]
    if missing:
        raise DataError(f"missing {', '.join(missing)}; {USAGE}")
    return given


def device_option(name: str) -> torch.device:
    if not DEVICE_NAME.fullmatch(name):
        raise DataError(f"device={name}: unknown device; allowed: auto, cpu, cuda, cuda:N")
    device = pick_device(name)
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise DataError(f"device={name}: no CUDA GPU is available here; allowed: auto, cpu")
        if (device.index or 0) >= gpus:
            raise DataError(f"device={name}: this machine has {gpus} CUDA GPU(s); "
                            f"allowed: auto, cpu, cuda, cuda:0 to cuda:{gpus - 1}")
    return device


def batch_size_option(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataError(f"batch_size={text}: must be a whole number >= 1")
    return value


def threshold_option(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:  # also false for NaN
        raise DataError(f"threshold={text}: must be a number between 0 and 1 (exclusive)")
    return value


def on_bad_image_option(text: str) -> str:
    if text not in ON_BAD_IMAGE:
        raise DataError(f"on_bad_image={text}: unknown choice; allowed: {', '.join(ON_BAD_IMAGE)}")
    return text


def parse_options(argv: list[str]) -> Options:
    values = {**DEFAULTS, **given_options(argv)}
    return Options(checkpoint=Path(values["checkpoint"]), input=Path(values["input"]),
                   output=Path(values["output"]), device=device_option(values["device"]),
                   batch_size=batch_size_option(values["batch_size"]),
                   threshold=threshold_option(values["threshold"]),
                   on_bad_image=on_bad_image_option(values["on_bad_image"]))


# --- paths -------------------------------------------------------------------------------


def mask_name(image: Path) -> str:
    if image.name.endswith(inform.IMAGE_SUFFIX):
        return image.name.removesuffix(inform.IMAGE_SUFFIX) + inform.MASK_SUFFIX
    return image.stem + PLAIN_MASK_SUFFIX


def is_mask_name(name: str) -> bool:
    return name.endswith((PLAIN_MASK_SUFFIX, inform.MASK_SUFFIX))


def is_image_name(name: str) -> bool:
    return name.endswith(inform.IMAGE_SUFFIX) or Path(name).suffix.lower() in folder.EXTENSIONS


def input_files(source: Path, output: Path) -> list[Path]:
    """The images to segment, never predict's own masks (see the module docstring)."""
    if source.is_file():
        if not is_image_name(source.name):
            raise DataError(f"input {source}: not an image predict reads (accepted: "
                            f"*{inform.IMAGE_SUFFIX}, {' '.join(folder.EXTENSIONS)})")
        return [source]
    if not source.is_dir():
        raise DataError(f"input {source} does not exist")
    output_folder = output.resolve()
    into_input = output_folder == source.resolve()

    def is_input(path: Path) -> bool:
        # Hidden files are editor or OS leftovers (macOS `._a.tif`), not images.
        if path.name.startswith(".") or not path.is_file():
            return False
        if into_input:
            return not is_mask_name(path.name)
        return not path.parent.resolve().is_relative_to(output_folder)

    components = sorted(p for p in source.rglob(f"*{inform.IMAGE_SUFFIX}")
                        if inform.LABELS_FOLDER not in p.relative_to(source).parts and is_input(p))
    files = components or sorted(p for p in source.iterdir()
                                 if p.suffix.lower() in folder.EXTENSIONS and is_input(p))
    if not files:
        raise DataError(f"input {source} holds no *{inform.IMAGE_SUFFIX} files and no "
                        f"{' '.join(folder.EXTENSIONS)} images")
    return files


def check_unique_mask_names(files: list[Path]) -> None:
    """Two inputs whose masks share a name would overwrite each other: refuse up front."""
    owner: dict[str, Path] = {}
    for path in files:
        name = mask_name(path)
        if name in owner:
            raise DataError(f"input {owner[name]} and {path} would both be written to {name}; "
                            f"rename one or segment them separately")
        owner[name] = path


def check_output_folder(output: Path) -> None:
    """`output` is a folder that can be written, or can be created as one (not created here)."""
    problem = writable_folder_problem(output, create=False)
    if problem:
        raise DataError(f"output {output}: {problem}; output must be a folder you can write to "
                        "(created if missing)")


# --- images ------------------------------------------------------------------------------


def read_image(path: Path, model: SavedModel) -> np.ndarray:
    """Normalised (C, H, W) image, as training saw it; a DataError names the file."""
    pre = model.preprocess
    non_finite = pre.get("non_finite", "error")  # as its training data (older models: error)
    if path.name.endswith(inform.IMAGE_SUFFIX):
        image = inform.read_channel(path, pre["channel"], non_finite)[None]
    else:
        image = folder.read_folder_image(path, pre["colour"], non_finite)
        image = image if image.ndim == 3 else image[None]
    if image.shape[0] != model.in_channels:
        raise DataError(f"{path}: {image.shape[0]} channel(s), the model takes {model.in_channels}")
    low, high = pre["percentiles"]
    return inform.normalise(image, pre["normalisation"], low=low, high=high)


def make_output_folder(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"output {output}: cannot create the folder ({first_line(err)})") from err


def write_mask(path: Path, mask: np.ndarray) -> None:
    """Written under a hidden temporary name (inputs never include hidden files), then renamed:
    a stop or a full disk never leaves a half-written mask."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        tifffile.imwrite(partial, mask)
        os.replace(partial, path)
    except OSError as err:
        raise DataError(f"output {path}: cannot write the mask ({first_line(err)})") from err
    finally:
        partial.unlink(missing_ok=True)


def segment(model: SavedModel, image: np.ndarray, options: Options,
            progress: Progress | None = None) -> np.ndarray:
    """0/255 uint8 mask of one normalised (C, H, W) image, at its size."""
    pre = model.preprocess
    prob = predict_image(model.net, image, pre["tile_size"], pre["stride"], pre["mean"],
                         pre["std"], options.batch_size, options.device,
                         progress.tiles if progress is not None else None)
    return np.where(prob > options.threshold, 255, 0).astype(np.uint8)


def predict(options: Options, outcome: Outcome | None = None) -> Outcome:
    """Check everything that can be checked up front, then segment image by image; `outcome`
    (a new one by default) records the masks written and where predict is."""
    outcome = Outcome() if outcome is None else outcome
    check_checkpoint_file(options.checkpoint)
    files = input_files(options.input, options.output)
    check_unique_mask_names(files)
    check_output_folder(options.output)
    outcome.where = f"loading the model {options.checkpoint}"
    model = load_model(options.checkpoint, options.device)
    make_output_folder(options.output)
    progress = Progress(outcome, len(files), options.batch_size)
    try:
        for number, path in enumerate(files, 1):
            outcome.where = f"image {number}/{len(files)} ({path})"
            try:
                image = read_image(path, model)
            except DataError as err:
                if options.on_bad_image == "error":
                    raise DataError(f"{err}; on_bad_image=skip leaves such images out") from err
                log.warning("skipped %s", err)  # the message names the file and what is wrong
                outcome.skipped.append(path)
                progress.done()
                continue
            progress.start(number, path, image.shape)
            mask = segment(model, image, options, progress)
            target = options.output / mask_name(path)
            write_mask(target, mask)
            outcome.written.append(target)
            progress.done()
    finally:
        progress.close()
    if not outcome.written:
        raise DataError(f"input {options.input}: no mask written, all "
                        f"{counted(len(outcome.skipped), 'image')} were skipped as unreadable")
    return outcome


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signal.Signals(signum).name, 128 + signum)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    debug = os.environ.get("DEDL_DEBUG", "") not in ("", "0")
    outcome = Outcome()
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        options = parse_options(argv)
        predict(options, outcome)
    except (CheckpointError, DataError) as err:
        if debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Terminated) as err:
        for sig in (signal.SIGINT, signal.SIGTERM):  # more Ctrl-C must not add a traceback
            signal.signal(sig, signal.SIG_IGN)
        if debug:
            traceback.print_exc()
        stop = err if isinstance(err, Terminated) else Terminated("SIGINT", 128 + signal.SIGINT)
        count = len(outcome.written)
        written = (f"{counted(count, 'mask')} written before {'is' if count == 1 else 'are'} complete"
                   if count else "no mask was written")
        print(f"stopped by {stop} in {outcome.where}; {written}; rerun the same command to "
              "segment the images", file=sys.stderr)
        return stop.exit_code
    summary = f"wrote {counted(len(outcome.written), 'mask')} to {options.output}"
    if outcome.skipped:
        summary += (f"; skipped {counted(len(outcome.skipped), 'image')}: "
                    f"{', '.join(map(str, outcome.skipped))}")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
