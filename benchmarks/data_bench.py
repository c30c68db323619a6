"""Data-pipeline benchmark: augmented training tiles per second, released-notebook style vs ours.

    python benchmarks/data_bench.py [--tile 480 --tiles 96 --workers 0 2 --repeats 3]

Both pipelines serve the same tiles: the training tiles that the framework's own prepare step
makes from synthetic full-size inForm images (DAPI page, percentile normalised, `--tile` px).

- REFERENCE (how the paper's released notebooks load data): every tile is its own .npy file,
  and so is its mask; `__getitem__` np.loads both, makes PIL images and applies torchvision's
  RandomRotation(3), RandomVerticalFlip, RandomHorizontalFlip, ToTensor, Normalize. The
  notebooks reuse one random seed for the image and the mask; here the random parameters are
  drawn once and applied to both with torchvision.transforms.functional: the same operations
  and cost, without reseeding the global generator.
- OURS: `TileDataset` over that memory-mapped tile cache, with `segmentation_transform(True)`; intensity normalisation runs once per batch, as the
  training step does it (on the device there; on the CPU here, and timed).

Both use DataLoader(batch_size=16, pin_memory=False) with the same number of workers
(persistent across passes). One full pass warms up (worker start, page cache); then every
timed pass reads all tiles once. torch and OpenCV are held to one thread per process, so
"tiles/s per core" means per process doing the work (the main process when workers=0).
Results go to bench_results/data_bench.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import albumentations
import cv2
import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from hydra import compose, initialize_config_dir  # noqa: E402

from dedl_experiments.config.config_files import CONF_DIR  # noqa: E402
from dedl_experiments.data import synthetic, tiling  # noqa: E402
from dedl_experiments.data.datasets import TileDataset  # noqa: E402
from dedl_experiments.data.preparation import TileSplit, prepare_segmentation  # noqa: E402
from dedl_experiments.data.transforms import IGNORE, segmentation_transform  # noqa: E402
from multirun_launchers.devices import register_resolvers  # noqa: E402

BATCH_SIZE = 16
RESULTS = REPO / "bench_results"


@dataclass(frozen=True)
class Tiles:
    split: TileSplit  # the framework's prepared training tiles
    count: int  # the first `count` of them are used
    mean: float
    std: float

    def masks(self) -> np.ndarray:
        """0/1 masks with padding as background, as the notebooks store them."""
        targets = np.asarray(self.split.targets[: self.count])
        return np.where(targets == IGNORE, 0, targets).astype(np.uint8)


def data_overrides(workdir: Path, tile: int, n_tiles: int, height: int = synthetic.FULL_HEIGHT,
                   width: int = synthetic.FULL_WIDTH) -> list[str]:
    """Config overrides for synthetic images with at least `n_tiles` training tiles of `tile`
    px in `workdir`. Configs composed with them (plus any model or budget overrides) share one
    tile cache: the prepare step's fingerprint depends on the data and tiling values alone."""
    per_image = len(tiling.tile_positions(height, width, tile))
    # The training split holds 3 patients.
    per_patient = max(1, math.ceil(n_tiles / per_image / 3))
    return [f"data_dir={workdir}", f"tiling.size={tile}", f"dataset.height={height}",
            f"dataset.width={width}", f"dataset.images_per_patient={per_patient}"]


def compose_config(overrides: list[str]):
    """The framework's config (conf/config.yaml) with these overrides, as the CLI builds it."""
    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides)


def make_tiles(workdir: Path, tile: int, n_tiles: int, height: int = synthetic.FULL_HEIGHT,
               width: int = synthetic.FULL_WIDTH) -> Tiles:
    """The first `n_tiles` training tiles of the prepare step on synthetic data."""
    prepared = prepare_segmentation(compose_config(data_overrides(workdir, tile, n_tiles, height, width)))
    split = prepared.split("train")
    stats = prepared.stats["train"]
    return Tiles(split, min(n_tiles, len(split.tiles)), stats["mean"][0], stats["std"][0])


# --- REFERENCE: the released notebooks' way ------------------------------------------------


def write_reference_tiles(folder: Path, tiles: Tiles) -> list[tuple[Path, Path]]:
    """One .npy file per tile and one per mask, as the notebooks store them."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    pairs = []
    for index, (image, mask) in enumerate(zip(tiles.split.images[: tiles.count, 0], tiles.masks())):
        pair = (folder / "images" / f"tile_{index:05d}.npy", folder / "masks" / f"tile_{index:05d}.npy")
        np.save(pair[0], image)
        np.save(pair[1], mask)
        pairs.append(pair)
    return pairs


class ReferenceTileDataset(Dataset):
    """np.load + PIL + torchvision per tile, like the released notebooks."""

    def __init__(self, pairs: list[tuple[Path, Path]], mean: float, std: float):
        self.pairs, self.mean, self.std = pairs, mean, std

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = Image.fromarray(np.load(image_path))  # float32 -> PIL mode "F"
        mask = Image.fromarray(np.load(mask_path))  # uint8 -> PIL mode "L"
        # RandomRotation(3), RandomVerticalFlip(), RandomHorizontalFlip(): one draw for both.
        angle = T.RandomRotation.get_params([-3.0, 3.0])
        image, mask = TF.rotate(image, angle), TF.rotate(mask, angle)
        if torch.rand(1) < 0.5:
            image, mask = TF.vflip(image), TF.vflip(mask)
        if torch.rand(1) < 0.5:
            image, mask = TF.hflip(image), TF.hflip(mask)
        image = TF.normalize(TF.to_tensor(image), [self.mean], [self.std])
        return image, torch.from_numpy(np.array(mask, dtype=np.int64))


def _one_thread_per_worker(_: int) -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _loader(dataset: Dataset, batch_size: int, workers: int) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                      pin_memory=False, persistent_workers=workers > 0,
                      worker_init_fn=_one_thread_per_worker if workers > 0 else None)


def reference_loader(pairs: list[tuple[Path, Path]], mean: float, std: float,
                     batch_size: int = BATCH_SIZE, workers: int = 0) -> DataLoader:
    return _loader(ReferenceTileDataset(pairs, mean, std), batch_size, workers)


# --- OURS: memory-mapped cache + albumentations ------------------------------------------


class NormalisedBatches:
    """Our loader plus the per-batch normalisation the training step applies."""

    def __init__(self, loader: DataLoader, mean: float, std: float):
        self.loader, self.mean, self.std = loader, mean, std

    def __iter__(self):
        for image, target in self.loader:
            yield (image - self.mean) / self.std, target.long()


def framework_loader(tiles: Tiles, batch_size: int = BATCH_SIZE, workers: int = 0,
                     n_tiles: int | None = None) -> NormalisedBatches:
    """Our loader over the first `tiles.count` tiles, cycled up to `n_tiles` when given."""
    indices = np.resize(np.arange(tiles.count), n_tiles or tiles.count)
    dataset = TileDataset(tiles.split, segmentation_transform(True), indices)
    mean, std = tiles.mean, tiles.std
    return NormalisedBatches(_loader(dataset, batch_size, workers), mean, std)


# --- timing --------------------------------------------------------------------------------


def _one_pass(loader) -> int:
    count = 0
    for batch in loader:
        count += len(batch[0])
    return count


def time_passes(loaders: dict, repeats: int) -> dict[str, list[float]]:
    """Tiles/s of `repeats` full passes per loader, after one untimed warm-up pass each.

    Passes alternate between the loaders, so that load from other processes on a shared
    machine falls on both alike.
    """
    for loader in loaders.values():
        _one_pass(loader)
    rates: dict[str, list[float]] = {name: [] for name in loaders}
    for _ in range(repeats):
        for name, loader in loaders.items():
            start = time.perf_counter()
            count = _one_pass(loader)
            rates[name].append(count / (time.perf_counter() - start))
    return rates


def _ms_per_call(function, calls: int) -> float:
    function()  # warm
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return 1e3 * (time.perf_counter() - start) / calls


def stage_costs(pairs: list[tuple[Path, Path]], split: TileSplit, mean: float, std: float,
                calls: int = 30) -> dict[str, dict[str, float]]:
    """Milliseconds per tile of each step of both pipelines, in this process (one thread).

    Steps are timed one by one on tile 0 (the albumentations steps each inside their own
    Compose, less the cost of an empty Compose), so they show where time goes; their sum
    need not equal the loader's time per tile.
    """
    image_path, mask_path = pairs[0]
    image_array, mask_array = np.load(image_path), np.load(mask_path)
    image, mask = Image.fromarray(image_array), Image.fromarray(mask_array)
    reference_item = ReferenceTileDataset(pairs, mean, std)[0]
    reference = {
        "np.load image + mask": _ms_per_call(lambda: (np.load(image_path), np.load(mask_path)), calls),
        "to PIL": _ms_per_call(lambda: (Image.fromarray(image_array), Image.fromarray(mask_array)), calls),
        "rotate image + mask": _ms_per_call(lambda: (TF.rotate(image, 2.0), TF.rotate(mask, 2.0)), calls),
        # each flip runs on half of the tiles
        "flips image + mask": 0.5 * (_ms_per_call(lambda: (TF.vflip(image), TF.vflip(mask)), calls)
                                     + _ms_per_call(lambda: (TF.hflip(image), TF.hflip(mask)), calls)),
        "to_tensor + normalize": _ms_per_call(
            lambda: TF.normalize(TF.to_tensor(image), [mean], [std]), calls),
        "collate (per tile)": _ms_per_call(
            lambda: torch.utils.data.default_collate([reference_item] * BATCH_SIZE), calls) / BATCH_SIZE,
    }
    dataset = TileDataset(split, segmentation_transform(True))
    ours_item = dataset[0]
    ours = {
        "mmap read image + target": _ms_per_call(
            lambda: (np.array(split.images[0]), np.array(split.targets[0])), calls),
        "set_random_seed": _ms_per_call(lambda: dataset.transform.set_random_seed(1), calls),
        "collate (per tile)": _ms_per_call(
            lambda: torch.utils.data.default_collate([ours_item] * BATCH_SIZE), calls) / BATCH_SIZE,
        "whole __getitem__": _ms_per_call(lambda: dataset[0], calls),
    }
    reference["whole __getitem__"] = _ms_per_call(lambda: ReferenceTileDataset(pairs, mean, std)[0], calls)
    return {"reference": reference, "ours": ours}


def _summary(rates: list[float], workers: int) -> dict:
    median = statistics.median(rates)
    return {"workers": workers, "median": median, "min": min(rates), "max": max(rates),
            "per_core": median / max(1, workers), "runs": rates}


def run(tile: int, n_tiles: int, workers_list: list[int], repeats: int, workdir: Path,
        height: int = synthetic.FULL_HEIGHT, width: int = synthetic.FULL_WIDTH) -> dict:
    start = time.perf_counter()
    tiles = make_tiles(workdir, tile, n_tiles, height, width)
    pairs = write_reference_tiles(workdir / "reference", tiles)
    setup_s = time.perf_counter() - start
    load_before = os.getloadavg()
    stages = stage_costs(pairs, tiles.split, tiles.mean, tiles.std)
    results = []
    for workers in workers_list:
        rates = time_passes({
            "reference": reference_loader(pairs, tiles.mean, tiles.std, workers=workers),
            "ours": framework_loader(tiles, workers=workers),
        }, repeats)
        reference, ours = _summary(rates["reference"], workers), _summary(rates["ours"], workers)
        results.append({"workers": workers, "reference": reference, "ours": ours,
                        "ratio": ours["median"] / reference["median"]})
    return {
        "config": {"tile": tile, "tiles": tiles.count, "repeats": repeats,
                   "batch_size": BATCH_SIZE, "image_size": [height, width],
                   "threads_per_process": 1, "cpus": os.cpu_count(), "setup_s": round(setup_s, 1),
                   "load_average_before": [round(x, 2) for x in load_before],
                   "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "torchvision": torchvision.__version__, "albumentations": albumentations.__version__,
                     "numpy": np.__version__, "opencv": cv2.__version__},
        "machine": platform.platform(),
        "results": results,
        "stage_ms_per_tile": stages,
    }


def markdown(report: dict) -> str:
    config = report["config"]
    lines = [
        "# Data pipeline benchmark: augmented training tiles per second",
        "",
        f"{config['tiles']} tiles of {config['tile']} px from synthetic {config['image_size'][0]} x "
        f"{config['image_size'][1]} images, batch {config['batch_size']}, {config['repeats']} timed "
        f"passes (alternating between the pipelines) after one warm-up pass, one thread per "
        f"process, {config['cpus']} CPUs; 1-minute load average {config['load_average_before'][0]} "
        f"before, {config['load_average_after'][0]} after (other processes share the machine).",
        "",
        "| pipeline | workers | median tiles/s | min | max | tiles/s per core |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in report["results"]:
        for name, label in (("reference", "REFERENCE (notebook: .npy per tile + PIL + torchvision)"),
                            ("ours", "ours (mmap cache + albumentations)")):
            r = result[name]
            lines.append(f"| {label} | {r['workers']} | {r['median']:.1f} | {r['min']:.1f} | "
                         f"{r['max']:.1f} | {r['per_core']:.1f} |")
    lines.append("")
    for result in report["results"]:
        # Same worker count on both sides, so the per-core ratio equals the throughput ratio.
        lines.append(f"- workers={result['workers']}: ours / reference = {result['ratio']:.2f}x "
                     f"(tiles/s and tiles/s per core alike)")
    lines += ["", "Where the time goes (ms per tile, main process, each step timed alone on one tile):", ""]
    for name, stages in report["stage_ms_per_tile"].items():
        label = "REFERENCE" if name == "reference" else "ours"
        lines.append(f"- {label}: " + ", ".join(f"{step} {ms:.3f}" for step, ms in stages.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=480)
    parser.add_argument("--tiles", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory(prefix="data_bench-") as workdir:
        report = run(args.tile, args.tiles, args.workers, args.repeats, Path(workdir))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "data_bench.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (args.out / "data_bench.md").write_text(table)
    print(table)
    return report


if __name__ == "__main__":
    main()
