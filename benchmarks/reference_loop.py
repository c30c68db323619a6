"""REFERENCE training loop: written the way the paper's released notebooks train.

This is NOT the framework's loop (that is `dedl_experiments.training.loop`). It is the baseline that
`python -m benchmarks.bench` times the framework against, on the same tiles, model,
tile size and batch size. It follows the notebooks' habits on purpose:

- data: one .npy file per tile and per mask, `np.load` + PIL + torchvision transforms in
  `__getitem__` (`data_bench.ReferenceTileDataset`, reused here), a plain
  `DataLoader(shuffle=True)` without pinned memory, workers restarted every epoch;
- model: `smp.Unet` ResNet-18, scSE attention, encoder depth 3, decoder (256, 128, 64),
  1 -> 2 classes (the framework's model is the same network);
- loss / optimiser: `CrossEntropyLoss(weight=...)` with the same class weights, Adam lr 3.6e-4,
  weight decay 1e-5;
- fp32 throughout (no autocast, no channels_last, no torch.compile), blocking host->device
  copies;
- `loss.item()` every step (a host sync on CUDA) and a running IoU kept in Python floats
  (more syncs per step).
"""

from __future__ import annotations

from pathlib import Path

import segmentation_models_pytorch as smp
import torch
from torch import nn
from torch.utils.data import DataLoader

from benchmarks.data_bench import ReferenceTileDataset

LR = 3.6e-4
WEIGHT_DECAY = 1e-5


def reference_model() -> nn.Module:
    """The released UNet, built the way the notebooks do (random init for the benchmark)."""
    return smp.Unet(encoder_name="resnet18", encoder_depth=3, encoder_weights=None,
                    decoder_channels=(256, 128, 64), decoder_attention_type="scse",
                    in_channels=1, classes=2)


def reference_loader(pairs: list[tuple[Path, Path]], mean: float, std: float, batch_size: int,
                     workers: int) -> DataLoader:
    """As in the notebooks: shuffle, no pinned memory, workers started anew every epoch."""
    return DataLoader(ReferenceTileDataset(pairs, mean, std), batch_size=batch_size, shuffle=True,
                      num_workers=workers)


class ReferenceTrainer:
    """Model, loss and optimiser of the released notebooks, and their epoch loop."""

    def __init__(self, device: torch.device, class_weights: torch.Tensor | list[float]):
        self.device = device
        self.model = reference_model().to(device)
        weights = torch.as_tensor(class_weights, dtype=torch.float32).to(device)
        self.criterion = nn.CrossEntropyLoss(weight=weights)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)

    def train_epoch(self, loader: DataLoader) -> dict[str, float]:
        self.model.train()
        running_loss, running_iou, seen, batches = 0.0, 0.0, 0, 0
        for images, masks in loader:
            images, masks = images.to(self.device), masks.to(self.device)
            self.optimizer.zero_grad()
            outputs = self.model(images)
            loss = self.criterion(outputs, masks)
            loss.backward()
            self.optimizer.step()
            running_loss += loss.item() * images.size(0)  # host sync every step
            preds = outputs.argmax(dim=1)
            intersection = ((preds == 1) & (masks == 1)).sum().item()  # and two more
            union = ((preds == 1) | (masks == 1)).sum().item()
            running_iou += intersection / union if union else 1.0
            seen += images.size(0)
            batches += 1
        return {"loss": running_loss / max(seen, 1), "iou": running_iou / max(batches, 1)}
