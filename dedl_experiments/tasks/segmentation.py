"""Segmentation of DAPI nuclei: smp UNet / UNet++ plus, in training only, the APP autoencoder."""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from dedl_experiments.config.config_rules import (ConfigError, Rule, check_rules, non_negative, optional,
                                           percentile_pair, positive, positive_int)
from dedl_experiments.data import tiling
from dedl_experiments.data.checks import NON_FINITE
from dedl_experiments.data.datasets import TileDataset
from dedl_experiments.data.device_augment import (DeviceTileDataset, DeviceTileLoader, DeviceTiles,
                                                  split_nbytes, use_device_data)
from dedl_experiments.data.preparation import PreparedSegmentation, prepare_segmentation
from dedl_experiments.data.transforms import (IGNORE, check_outside_label, segmentation_transform,
                                              target_classes)
from dedl_experiments.inference.tiled import predict_tiles
from dedl_experiments.training.losses import pixel_class_weights
from dedl_experiments.training.metrics import (PADDED_METRICS, PADDED_SUFFIX, SegmentationMetrics,
                                      map_metrics)
from dedl_experiments.models import count_parameters
from dedl_experiments.models.app import AutoencoderPostProcessing
from dedl_experiments.models.segmentation import build_segmentation_model
from dedl_experiments.models.pretrained import PretrainedWeights
from dedl_experiments.training.schedules import build_scheduler, schedule_interval
from dedl_experiments.tasks.base import Task
from dedl_experiments.tasks.visualise import segmentation_overlays

log = logging.getLogger(__name__)
INFERENCE_FORMAT = "dedl-segmentation-v1"
# Values only segmentation reads (config.validate checks them through check_config).
CONFIG_RULES: list[Rule] = [
    ("tiling.size", lambda x: positive_int(x) and x % 8 == 0 and x >= 32,
     "an integer >= 32 divisible by 8 (the encoder halves it 3 times)"),
    ("tiling.stride", optional(positive_int), "null or an integer >= 1"),
    ("tiling.blank_threshold", non_negative, "a number >= 0"),
    ("app.lr", optional(positive), "a number > 0"),
    ("loss.weighting", lambda x: x in ("inverse_frequency", "fixed", "none"),
     "one of: inverse_frequency, fixed, none"),
    ("dataset.normalisation", lambda x: x in ("percentile", "minmax", "none"),
     "one of: percentile, minmax, none"),
    ("dataset.on_bad_sample", lambda x: x in ("error", "skip"), "one of: error, skip"),
    ("dataset.non_finite", lambda x: x in NON_FINITE, "one of: " + ", ".join(NON_FINITE)),
    ("tiling.padding_label", lambda x: x in ("ignore", "background"), "one of: ignore, background"),
    ("loss.reduction", lambda x: x in ("mean", "sum"), "one of: mean, sum"),
    ("dataset.percentiles", percentile_pair,
     "2 numbers [low, high] with 0 <= low < high <= 100"),
]


class SegmentationTask(Task):
    """Builds the network, APP, loss, optimisers and loaders for one segmentation job."""

    summary_metric = "test_iou"
    recipe_settings = ("lr_schedule.name", "lr_schedule.interval", "app_lr_schedule.interval", "loss.name",
                       "loss.reduction", "architecture.attention", "tiling.padding_label", "augment.rotation_fill")

    @staticmethod
    def check_config(cfg: DictConfig) -> None:
        check_rules(cfg, CONFIG_RULES)
        if not cfg.encoder.get("segmentation"):
            raise ConfigError(f"encoder={cfg.encoder.name} has no segmentation encoder; "
                              "segmentation needs a resnet or efficientnet encoder")
        if cfg.loss.weighting == "fixed" and (cfg.loss.weights is None or len(cfg.loss.weights) != 2):
            raise ConfigError("loss.weights must list 2 numbers (background, nucleus) "
                              "when loss.weighting=fixed")
        stride = cfg.tiling.stride
        if stride is not None and stride > cfg.tiling.size:
            raise ConfigError(f"tiling.stride={stride} is invalid: it must not exceed "
                              f"tiling.size={cfg.tiling.size} (tiles would skip pixels)")

    @staticmethod
    def run_name(cfg: DictConfig) -> str:
        """seg-<architecture>-<encoder>-app_<app>[-applr_<schedule>][-<optimizer>]-<schedule>-
        <init>[-t<tile>][-<budget>]-s<seed>: the defaults (constant APP schedule, Adam, 480 px
        tiles, the paper budget) are left out."""
        parts = ["seg", cfg.architecture.name, cfg.encoder.name, f"app_{cfg.app.name}"]
        if cfg.app.name != "none" and cfg.app_lr_schedule.name != "constant":
            parts.append(f"applr_{cfg.app_lr_schedule.name}")
        parts += [*SegmentationTask.optimizer_in_name(cfg), cfg.lr_schedule.name, cfg.init.name]
        if cfg.tiling.size != 480:
            parts.append(f"t{cfg.tiling.size}")
        if cfg.budget.name != "paper":
            parts.append(cfg.budget.name)
        parts.append(f"s{cfg.seed}")
        return "-".join(parts)

    @staticmethod
    def factors(cfg: DictConfig) -> dict[str, str]:
        return {"architecture": cfg.architecture.name, "encoder": cfg.encoder.name,
                "app": cfg.app.name, "init": cfg.init.name, "schedule": cfg.lr_schedule.name,
                "app_schedule": cfg.app_lr_schedule.name if cfg.app.name != "none" else "-",
                "tile": str(cfg.tiling.size), "optimizer": cfg.optimizer.name}

    @staticmethod
    def pretrained_weights(cfg: DictConfig) -> PretrainedWeights:
        return PretrainedWeights("smp", cfg.encoder.segmentation,
                                 cfg.encoder.inits[cfg.init.name].segmentation)

    prepare = staticmethod(prepare_segmentation)

    prepared: PreparedSegmentation
    loss_arguments = {"ignore_index": IGNORE}  # pixels outside the image are not counted

    def setup(self) -> None:
        cfg = self.cfg
        # What zero padding and rotated-in corners count as in the loss and train/val metrics.
        self.padding_label = check_outside_label("tiling.padding_label", cfg.tiling.padding_label)
        self.rotation_fill = check_outside_label("augment.rotation_fill", cfg.augment.rotation_fill)
        stats = self.prepared.stats["train"]
        self.mean, self.std = stats["mean"], stats["std"]
        # Normalisation with the training tiles' statistics, on the device.
        self.shift = torch.tensor(self.mean, device=self.device).view(1, -1, 1, 1)
        self.scale = torch.tensor(self.std, device=self.device).view(1, -1, 1, 1)

    def build_network(self) -> None:
        """The smp network, then (training only) the APP: in this order, as they draw their
        initial weights."""
        cfg, prepared = self.cfg, self.prepared
        weights = None
        if cfg.init.name != "random":
            weights = cfg.encoder.inits[cfg.init.name].segmentation
        arch = cfg.architecture
        self.net = build_segmentation_model(
            arch.name, cfg.encoder.segmentation, weights, attention=arch.attention,
            encoder_depth=arch.encoder_depth, decoder_channels=tuple(arch.decoder_channels),
            in_channels=prepared.channels, classes=cfg.task.num_classes,
            smp_class=arch.smp_class, allow_download=True).to(self.device)  # unless HF_HUB_OFFLINE / DEDL_OFFLINE is set
        self.app = None
        if cfg.app.name != "none":
            self.app = AutoencoderPostProcessing(prepared.tile_size, cfg.app.activation).to(self.device)

    def data_class_weights(self) -> torch.Tensor:
        """Normalised inverse pixel frequencies of the training tiles."""
        return pixel_class_weights(np.asarray(self.prepared.stats["train"]["pixel_counts"]))

    def build_optimizers(self) -> None:
        """The network's optimiser (the config's `optimizer`) and the APP's own: Adam at
        `app.lr`, as released, whichever optimiser the network has."""
        super().build_optimizers()
        if self.app is not None:
            self.optimizers["app"] = torch.optim.Adam(self.app.parameters(), lr=self.cfg.app.lr)

    def build_schedulers(self) -> None:
        """The network's `lr_schedule` and the APP's own `app_lr_schedule`."""
        super().build_schedulers()
        self.schedule_intervals["app"] = schedule_interval(self.cfg.app_lr_schedule)
        if self.app is not None:
            self.schedulers["app"] = build_scheduler(self.optimizers["app"], self.cfg.app_lr_schedule)

    def describe(self) -> dict[str, float]:
        info = {"params_net": count_parameters(self.net),
                "params_app": count_parameters(self.app) if self.app is not None else 0}
        for split in ("train", "val", "test"):
            s = self.prepared.stats[split]
            info[f"{split}_tiles"] = s["tiles"]
            info[f"{split}_blank_share"] = s["blank_share"]
            info[f"{split}_skipped_samples"] = len(s["skipped"])
        if self.class_weights is not None:
            info.update({f"class_weight_{i}": float(w) for i, w in enumerate(self.class_weights)})
        return info

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} | ({"app": self.app} if self.app is not None else {})

    def network(self) -> nn.Module:
        """The segmentation network alone: what is tested and saved (the APP is training-only)."""
        return self.net

    def loader(self, split: str, train: bool, seed: int) -> DataLoader | DeviceTileLoader:
        """Batches of a split: from the tile cache through loader workers (albumentations on
        the CPU), or, with `loader.device_data` on, from a copy of the split on the device,
        augmented there (data/device_augment.py); both draw the same items and transforms."""
        data = self.prepared.split(split)
        indices = None
        if train and self.cfg.tiling.drop_blank_train:
            indices = np.flatnonzero(~np.asarray(data.blank))
        generator = torch.Generator().manual_seed(seed)
        if self._device_data():
            # Each split is copied to the device once per job, whatever asks for its loader.
            uploaded = self.__dict__.setdefault("_device_tiles", {})
            if split not in uploaded:
                uploaded[split] = DeviceTiles(data, self.device)
            dataset = DeviceTileDataset(uploaded[split], train, indices, seed=seed)
            return DeviceTileLoader(dataset, self.cfg.train.batch_size, shuffle=train,
                                    generator=generator)
        dataset = TileDataset(data, segmentation_transform(train), indices, seed=seed)
        return DataLoader(dataset, batch_size=self.cfg.train.batch_size, shuffle=train,
                          generator=generator, num_workers=self.placement.workers(self.cfg.loader.num_workers),
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    def _device_data(self) -> bool:
        """Decided once per job: the training and validation splits on the device or not."""
        if "_device_data_on" not in self.__dict__:
            loader = self.cfg.loader
            nbytes = sum(split_nbytes(self.prepared.split(s)) for s in ("train", "val"))
            self._device_data_on, why = use_device_data(
                loader.get("device_data", False), self.device, nbytes,
                loader.get("device_data_fraction", 0.25), self.placement.jobs_on_device)
            log.info("training data %s: %s", "on the device" if self._device_data_on
                     else "from loader workers", why)
        return self._device_data_on

    def new_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(device=self.device)

    def step(self, batch, metrics: SegmentationMetrics, train: bool) -> torch.Tensor:
        """Loss of one batch (and, when training, the APP's reconstruction term)."""
        image, target = batch
        target = target_classes(target.long(), self.padding_label, self.rotation_fill)
        logits = self.net((image - self.shift) / self.scale)
        loss = self.criterion(logits, target)
        if train and self.app is not None:
            # The APP runs in fp32 even under bf16 autocast: in bf16 its gradients lose their
            # direction at initialisation (cosine to fp32: 0.42 over the APP, 0.27-0.86 for the
            # weights of its last four layers), while the network's agree (0.99).
            with torch.autocast(self.device.type, enabled=False):
                loss = loss + self.criterion(self.app(logits.float()), target)
        metrics.update(logits.detach(), target, target != IGNORE)
        return loss

    @staticmethod
    def summary(result: dict) -> str:
        return f"test IoU {result['test_iou']:.4f}  pixel accuracy {result['test_pixel_accuracy']:.4f}"

    def inference_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict:
        """What `predict` needs to rebuild the network and preprocess raw images like training."""
        arch, ds = self.cfg.architecture, self.cfg.dataset
        return {
            "format": INFERENCE_FORMAT,
            "state_dict": state_dict,
            "model": {"architecture": arch.name, "smp_class": arch.smp_class,
                      "encoder": self.cfg.encoder.segmentation,
                      "attention": arch.attention, "encoder_depth": arch.encoder_depth,
                      "decoder_channels": list(arch.decoder_channels),
                      "in_channels": self.prepared.channels, "classes": self.cfg.task.num_classes},
            "preprocess": {"channel": self.cfg.task.channel, "colour": ds.get("colour", "grey"),
                           "non_finite": ds.get("non_finite") or "error", "normalisation": ds.normalisation, "percentiles": list(ds.percentiles),
                           "mean": self.mean, "std": self.std, "tile_size": self.prepared.tile_size,
                           "stride": self.cfg.tiling.stride},
        }

    def _stitch(self, data, values: np.ndarray, padded: bool = False) -> dict[str, np.ndarray]:
        """Per-tile values (N, S, S) -> per-image maps at the original size, or with
        `padded=True` over the whole tiled area (the image plus its right and bottom padding)."""
        tiles_of: dict[str, list[int]] = defaultdict(list)
        for k, t in enumerate(data.tiles):
            tiles_of[t["sample"]].append(k)
        out = {}
        size = values.shape[-1]
        for sample, ks in tiles_of.items():
            shape = self.prepared.images[sample]
            positions = [(data.tiles[k]["y"], data.tiles[k]["x"]) for k in ks]
            height, width = shape["height"], shape["width"]
            if padded:
                height = max(y for y, _ in positions) + size
                width = max(x for _, x in positions) + size
            out[sample] = tiling.stitch(values[ks], positions, height, width)
        return out

    def predict_images(self, split: str, batch_size: int) -> dict[str, np.ndarray]:
        """Stitched nucleus probabilities per image of a split, at the original size."""
        data = self.prepared.split(split)
        probs = predict_tiles(self.net, data.images, self.mean, self.std, batch_size, self.device)
        return self._stitch(data, probs)

    def test_metrics(self, batch_size: int) -> tuple[dict[str, float], dict[str, tuple]]:
        """Test metrics both ways from one prediction pass, and the (probability, mask) maps
        per test image:

        - `iou`, `pixel_accuracy`, `miou`, `dice`: every pixel of the original test images,
          padding excluded;
        - `iou_padded`, `pixel_accuracy_padded`: every pixel of the padded tiled area, padding
          counted as background (what a zero-padded mask says), as the paper counted them:
          its Section 5.1 left 256 px tiles because the padding inflated pixel accuracy.
          Overlapping tiles (tiling.stride) are stitched first, so each pixel counts once.
        """
        data = self.prepared.split("test")
        tile_probs = predict_tiles(self.net, data.images, self.mean, self.std, batch_size,
                                   self.device)
        # 0/1 nucleus targets; padding (IGNORE in the cache) becomes background here.
        nucleus = (np.asarray(data.targets) == 1).astype(np.float32)
        results = {}
        for padded in (False, True):
            probs = self._stitch(data, tile_probs, padded)
            masks = {s: m > 0.5 for s, m in self._stitch(data, nucleus, padded).items()}
            results[padded] = map_metrics(probs, masks, self.device)
            if not padded:
                maps = {s: (probs[s], masks[s]) for s in probs}
        metrics = results[False] | {f"{k}{PADDED_SUFFIX}": results[True][k] for k in PADDED_METRICS}
        return metrics, maps

    def write_artifacts(self, out: Path, metrics: dict[str, float], maps: dict) -> list[Path]:
        """A PNG of the first test images: image, ground truth, prediction overlay."""
        data = self.prepared.split("test")
        shown = sorted(maps)[:3]
        images = self._stitch(data, np.asarray(data.images, dtype=np.float32)[:, 0])
        return [segmentation_overlays([images[s] for s in shown], [maps[s][1] for s in shown],
                                      [maps[s][0] > 0.5 for s in shown], shown,
                                      out / "test_overlays.png")]
