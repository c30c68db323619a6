"""Segmentation of DAPI nuclei: smp UNet / UNet++ plus, in training only, the APP autoencoder."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader

from dedl_experiments.data import tiling
from dedl_experiments.data.datasets import TileDataset
from dedl_experiments.data.prepare import PreparedSegmentation
from dedl_experiments.data.transforms import segmentation_transform
from dedl_experiments.losses import pixel_class_weights
from dedl_experiments.metrics import SegmentationMetrics
from dedl_experiments.models.app import AutoencoderPostProcessing
from dedl_experiments.models.segmentation import build_segmentation_model, count_parameters

log = logging.getLogger(__name__)


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: DictConfig):
    if schedule.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=schedule.t_max,
                                                          eta_min=schedule.eta_min)
    if schedule.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=schedule.step_size,
                                               gamma=schedule.gamma)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


class SegmentationTask:
    """Builds the network, APP, loss, optimisers and loaders for one segmentation job."""

    monitor_metrics = ("loss", "iou")

    def __init__(self, cfg: DictConfig, prepared: PreparedSegmentation, device: torch.device):
        self.cfg = cfg
        self.prepared = prepared
        self.device = device
        weights = None
        if cfg.init.name != "random":
            weights = cfg.encoder.inits[cfg.init.name].segmentation
        arch = cfg.architecture
        self.net = build_segmentation_model(
            arch.name, cfg.encoder.segmentation, weights, attention=arch.attention,
            encoder_depth=arch.encoder_depth, decoder_channels=tuple(arch.decoder_channels),
            in_channels=1, classes=cfg.task.num_classes).to(device)
        self.app = None
        if cfg.app.name != "none":
            self.app = AutoencoderPostProcessing(prepared.tile_size, cfg.app.activation).to(device)
        self.class_weights = self._class_weights()
        self.criterion = nn.CrossEntropyLoss(weight=self.class_weights.to(device)
                                             if self.class_weights is not None else None)
        self.optimizers = {"net": torch.optim.Adam(self.net.parameters(), lr=cfg.optimizer.lr,
                                                   weight_decay=cfg.optimizer.weight_decay)}
        self.schedulers = {"net": make_scheduler(self.optimizers["net"], cfg.lr_schedule)}
        if self.app is not None:
            self.optimizers["app"] = torch.optim.Adam(self.app.parameters(), lr=cfg.app.lr)
            self.schedulers["app"] = make_scheduler(self.optimizers["app"], cfg.app_lr_schedule)
        stats = prepared.stats["train"]
        self.mean, self.std = stats["mean"], stats["std"]

    def _class_weights(self) -> torch.Tensor | None:
        loss = self.cfg.loss
        if loss.weighting == "none":
            return None
        if loss.weighting == "fixed":
            return torch.tensor(list(loss.weights), dtype=torch.float32)
        return pixel_class_weights(np.asarray(self.prepared.stats["train"]["pixel_counts"]))

    def describe(self) -> dict[str, float]:
        info = {"params_net": count_parameters(self.net),
                "params_app": count_parameters(self.app) if self.app is not None else 0}
        for split in ("train", "val", "test"):
            s = self.prepared.stats[split]
            info[f"{split}_tiles"] = s["tiles"]
            info[f"{split}_blank_share"] = s["blank_share"]
        if self.class_weights is not None:
            info.update({f"class_weight_{i}": float(w) for i, w in enumerate(self.class_weights)})
        return info

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net} | ({"app": self.app} if self.app is not None else {})

    def loader(self, split: str, train: bool, seed: int) -> DataLoader:
        data = self.prepared.split(split)
        indices = None
        if train and self.cfg.tiling.drop_blank_train:
            indices = np.flatnonzero(~np.asarray(data.blank))
        dataset = TileDataset(data, segmentation_transform(train, self.mean, self.std),
                              indices, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        return DataLoader(dataset, batch_size=self.cfg.train.batch_size, shuffle=train,
                          generator=generator, num_workers=self.cfg.loader.num_workers,
                          pin_memory=self.device.type == "cuda",
                          persistent_workers=False)

    def new_metrics(self) -> SegmentationMetrics:
        return SegmentationMetrics(device=self.device)

    def step(self, batch, metrics: SegmentationMetrics, train: bool) -> torch.Tensor:
        """Loss of one batch (and, when training, the APP's reconstruction term)."""
        image, mask, valid = batch
        logits = self.net(image)
        target = mask.masked_fill(~valid, self.criterion.ignore_index)
        loss = self.criterion(logits, target)
        if train and self.app is not None:
            loss = loss + self.criterion(self.app(logits), target)
        metrics.update(logits.detach(), mask, valid)
        return loss

    def inference_state(self) -> dict[str, torch.Tensor]:
        """The saved model: the segmentation network alone (the APP is training-only)."""
        return self.net.state_dict()

    @torch.no_grad()
    def predict_images(self, split: str, batch_size: int) -> dict[str, np.ndarray]:
        """Stitched nucleus probabilities per image of a split, at the original size."""
        data = self.prepared.split(split)
        transform = segmentation_transform(False, self.mean, self.std)
        self.net.eval()
        by_sample: dict[str, list] = defaultdict(list)
        for start in range(0, len(data.tiles), batch_size):
            stop = min(start + batch_size, len(data.tiles))
            batch = np.stack([transform(image=np.asarray(data.images[k]))["image"]
                              for k in range(start, stop)])
            probs = torch.softmax(self.net(torch.from_numpy(batch)[:, None].to(self.device)), 1)
            for k, p in zip(range(start, stop), probs[:, 1].float().cpu().numpy()):
                by_sample[data.tiles[k]["sample"]].append((k, p))
        out = {}
        for sample, items in by_sample.items():
            shape = self.prepared.images[sample]
            positions = [(data.tiles[k]["y"], data.tiles[k]["x"]) for k, _ in items]
            out[sample] = tiling.stitch(np.stack([p for _, p in items]), positions,
                                        shape["height"], shape["width"])
        return out

    def test_metrics(self, batch_size: int) -> dict[str, float]:
        """Metrics over every pixel of the original test images (padding excluded)."""
        data = self.prepared.split("test")
        metrics = self.new_metrics()
        for sample, prob in self.predict_images("test", batch_size).items():
            ks = [k for k, t in enumerate(data.tiles) if t["sample"] == sample]
            shape = self.prepared.images[sample]
            positions = [(data.tiles[k]["y"], data.tiles[k]["x"]) for k in ks]
            mask = tiling.stitch(np.asarray(data.masks[ks], dtype=np.float32), positions,
                                 shape["height"], shape["width"]) > 0.5
            logits = torch.from_numpy(np.stack([1 - prob, prob]))[None].to(self.device)
            metrics.update(logits, torch.from_numpy(mask.astype(np.int64))[None].to(self.device),
                           None)
        return metrics.compute()
