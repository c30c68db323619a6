"""Multi-label classification of cell types: timm models, focal loss, SWA, one CV fold."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import timm
import torch
from omegaconf import DictConfig
from torch import nn
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn
from torch.utils.data import DataLoader

from dedl_experiments.config.config_rules import Rule, check_rules, optional, positive
from dedl_experiments.data.datasets import ImageDataset
from dedl_experiments.data.preparation_classification import PreparedClassification, prepare_classification
from dedl_experiments.data.transforms import IMAGENET_MEAN, IMAGENET_STD, classification_transform
from dedl_experiments.training.losses import label_class_weights
from dedl_experiments.training.metrics import MultilabelMetrics
from dedl_experiments.models import count_parameters
from dedl_experiments.models.classification import build_classification_model
from dedl_experiments.models.pretrained import PretrainedWeights
from dedl_experiments.tasks.base import Task
from dedl_experiments.tasks.visualise import classification_grid

log = logging.getLogger(__name__)


FOLDS_METHODS = ("multilabel_stratified", "kfold")
# Values only classification reads (config.validate checks them through check_config).
CONFIG_RULES: list[Rule] = [
    ("task.folds_method", lambda x: x in FOLDS_METHODS,
     f"one of: {', '.join(FOLDS_METHODS)}"),
    ("task.drop_last", lambda x: isinstance(x, bool), "true or false"),
    ("loss.epsilon", optional(positive), "null or a number > 0"),
]


def kfold_validation_indices(n_items: int, k: int, seed: int) -> list[np.ndarray]:
    """Validation indices of plain shuffled k-fold cross-validation, as the released notebook
    splits its training list: sklearn's KFold(n_splits=k, shuffle=True, random_state=seed)
    (the same permutation and fold sizes, without needing scikit-learn)."""
    if not 2 <= k <= n_items:
        raise ValueError(f"k={k} folds need 2 <= k <= {n_items} (the number of images)")
    order = np.arange(n_items)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(k, n_items // k)
    sizes[: n_items % k] += 1
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return [np.sort(order[bounds[i]:bounds[i + 1]]) for i in range(k)]


def has_batch_norm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class ClassificationTask(Task):
    """Trains fold `fold` (validation = that fold, training = the other folds of the training
    part) and scores it on the common test set."""

    summary_metric = "test_f1_micro"
    recipe_settings = ("lr_schedule.name", "lr_schedule.interval", "loss.name", "loss.epsilon", "task.swa.enabled",
                       "task.folds_method", "task.drop_last", "augment.perspective_p")
    prepare = staticmethod(prepare_classification)

    @staticmethod
    def check_config(cfg: DictConfig) -> None:
        check_rules(cfg, CONFIG_RULES)

    @staticmethod
    def run_name(cfg: DictConfig) -> str:
        """cls-<encoder>[-<optimizer>]-<init>[-<budget>]-s<seed>[-f<fold>] (no fold: the cell's
        parent run; Adam, the paper's optimiser, left out)."""
        parts = ["cls", cfg.encoder.name, *ClassificationTask.optimizer_in_name(cfg), cfg.init.name]
        if cfg.budget.name != "paper":
            parts.append(cfg.budget.name)
        parts.append(f"s{cfg.seed}")
        if cfg.fold is not None:
            parts.append(f"f{cfg.fold}")
        return "-".join(parts)

    @staticmethod
    def factors(cfg: DictConfig) -> dict[str, str]:
        return {"encoder": cfg.encoder.name, "init": cfg.init.name, "optimizer": cfg.optimizer.name}

    @staticmethod
    def pretrained_weights(cfg: DictConfig) -> PretrainedWeights:
        # `<timm model>.<pretrained tag>`: the model is the encoder's own.
        tag = cfg.encoder.inits[cfg.init.name].classification.split(".", 1)[1]
        return PretrainedWeights("timm", cfg.encoder.classification, tag)

    @classmethod
    def folds(cls, cfg: DictConfig) -> list[int]:
        """Every cross-validation fold, or the one `fold=K` asks for."""
        return [cfg.fold] if cfg.fold is not None else list(range(cfg.task.folds))

    prepared: PreparedClassification

    def setup(self) -> None:
        """This fold's training and validation images, and the input normalisation."""
        cfg, prepared, task, fold = self.cfg, self.prepared, self.cfg.task, self.fold
        self.train_data, self.test_data = prepared.split("train"), prepared.split("test")
        if task.folds_method not in FOLDS_METHODS:
            raise ValueError(f"task.folds_method={task.folds_method!r} is invalid: it must be one "
                             f"of: {', '.join(FOLDS_METHODS)}")
        if task.folds_method == "kfold":
            # As released: shuffled KFold seeded with the run's seed (other folds per seed).
            self.val_idx = kfold_validation_indices(len(self.train_data.names), task.folds,
                                                    cfg.seed)[fold]
        else:
            # Multi-label stratified folds, the same for every seed (dataset.split_seed).
            self.val_idx = np.asarray(prepared.folds[fold])
        self.train_idx = np.setdiff1d(np.arange(len(self.train_data.names)), self.val_idx)
        mean, std = IMAGENET_MEAN, IMAGENET_STD
        if task.normalise == "model":
            pretrained = timm.get_pretrained_cfg(cfg.encoder.classification)
            mean, std = pretrained.mean, pretrained.std
        self.shift = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(std, device=self.device).view(1, 3, 1, 1)

    def build_network(self) -> None:
        # Downloads missing weights unless HF_HUB_OFFLINE / DEDL_OFFLINE is set.
        self.net = build_classification_model(self.cfg.encoder, self.cfg.init.name,
                                              self.cfg.task.num_classes, self.prepared.image_size,
                                              allow_download=True).to(self.device)

    def data_class_weights(self) -> torch.Tensor:
        """The released label-frequency weights of this fold's training images."""
        return label_class_weights(self.train_data.labels[self.train_idx])

    def build_schedulers(self) -> None:
        """The `lr_schedule`, then, from `swa_start` on, stochastic weight averaging under SWALR."""
        super().build_schedulers()
        swa = self.cfg.task.swa
        self.swa_start = None
        if swa.enabled:
            self.swa_start = (swa.start_epoch if swa.start_epoch is not None
                              else int(0.75 * self.cfg.train.epochs))
            self.swa_model = AveragedModel(self.net)
            self.swa_scheduler = SWALR(self.optimizers["net"], swa_lr=swa.lr,
                                       anneal_epochs=swa.anneal_epochs)

    def describe(self) -> dict[str, float]:
        info = {"params_net": count_parameters(self.net), "train_images": len(self.train_idx),
                "val_images": len(self.val_idx), "test_images": len(self.test_data.names),
                "image_size": self.prepared.image_size}
        if self.class_weights is not None:
            info |= {f"class_weight_{c}": float(w)
                     for c, w in zip(self.cfg.task.classes, self.class_weights)}
        return info

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def loader(self, split: str, train: bool, seed: int) -> DataLoader:
        data = self.test_data if split == "test" else self.train_data
        indices = {"train": self.train_idx, "val": self.val_idx}.get(split, np.arange(len(data.names)))
        transform = classification_transform(train, self.prepared.image_size, normalise=False,
                                             perspective_p=self.cfg.augment.perspective_p)
        dataset = ImageDataset(data.images, data.labels, indices, transform, seed=seed)
        # task.drop_last: training drops its last incomplete batch, as released.
        return DataLoader(dataset, batch_size=self.cfg.train.batch_size, shuffle=train,
                          generator=torch.Generator().manual_seed(seed),
                          num_workers=self.cfg.loader.num_workers,
                          pin_memory=self.device.type == "cuda",
                          drop_last=train and bool(self.cfg.task.drop_last))

    def new_metrics(self) -> MultilabelMetrics:
        task = self.cfg.task
        return MultilabelMetrics(task.num_classes, task.threshold, tuple(task.classes), self.device)

    def _normalised(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.shift) / self.scale

    def step(self, batch, metrics: MultilabelMetrics, train: bool) -> torch.Tensor:
        image, labels = batch
        logits = self.net(self._normalised(image))
        metrics.update(logits.detach().float(), labels)
        return self.criterion(logits.float(), labels)

    @staticmethod
    def summary(result: dict) -> str:
        return (f"test F1 (micro) {result['test_f1_micro']:.4f}  "
                f"recall as released {result['test_recall_as_released']:.4f}")

    @classmethod
    def folds_summary(cls, summary: dict[str, float], folds: int) -> str:
        return (f"test F1 (micro) {summary['test_f1_micro']:.4f} ± "
                f"{summary['test_f1_micro_std']:.4f}, recall as released "
                f"{summary['test_recall_as_released']:.4f}, mean ± std over {folds} folds")

    def end_epoch(self, epoch: int) -> None:
        """Cosine schedule until SWA starts; then average once per epoch under SWALR."""
        if self.swa_start is not None and epoch >= self.swa_start:
            self.swa_model.update_parameters(self.net)
            self.swa_scheduler.step()
        else:
            self.step_schedulers("epoch")

    def end_step(self) -> None:
        """Per-batch schedules stop once weights are averaged: SWALR drives the rate then
        (n_averaged is checkpointed, so a resumed run agrees)."""
        if self.swa_start is None or int(self.swa_model.n_averaged) == 0:
            super().end_step()

    def extra_state(self) -> dict:
        if self.swa_start is None:
            return {}
        return {"swa_model": self.swa_model.state_dict(),
                "swa_scheduler": {k: v for k, v in self.swa_scheduler.state_dict().items()
                                  if not callable(v)}}

    def load_extra_state(self, state: dict) -> None:
        if self.swa_start is not None:
            self.swa_model.load_state_dict(state["swa_model"])
            self.swa_scheduler.load_state_dict(state["swa_scheduler"])

    @property
    def swa_snapshots(self) -> int:
        return int(self.swa_model.n_averaged) if self.swa_start is not None else 0

    def result_extras(self) -> dict[str, float]:
        """How many epochs the evaluated SWA model averages (0: the best epoch's weights)."""
        return {"swa_snapshots": self.swa_snapshots}

    def final_state(self, best_state: dict, seed: int) -> dict[str, torch.Tensor]:
        """The evaluated weights: the SWA average when it holds snapshots (after refreshing
        BatchNorm statistics with a pass over the training data), else the best epoch's."""
        if not self.swa_snapshots:
            if self.swa_start is not None:
                log.info("SWA never started (stopped before epoch %d): evaluating the best epoch",
                         self.swa_start + 1)
            return best_state
        averaged = self.swa_model.module
        if has_batch_norm(averaged):
            loader = self.loader("train", train=False, seed=seed)
            update_bn((self._normalised(x.to(self.device)) for x, _ in loader), averaged)
        return {k: v.detach().clone() for k, v in averaged.state_dict().items()}

    def inference_checkpoint(self, state_dict: dict[str, torch.Tensor]) -> dict:
        return {"format": "dedl-classification-v1", "state_dict": state_dict,
                "model": {"timm_name": self.cfg.encoder.classification,
                          "num_classes": self.cfg.task.num_classes,
                          "image_size": self.prepared.image_size},
                "classes": list(self.cfg.task.classes),
                "normalise": {"mean": self.shift.flatten().tolist(),
                              "std": self.scale.flatten().tolist()}}

    @torch.no_grad()
    def test_metrics(self, batch_size: int) -> tuple[dict[str, float], dict]:
        self.net.eval()
        metrics = self.new_metrics()
        probs = []
        for image, labels in self.loader("test", train=False, seed=0):
            logits = self.net(self._normalised(image.to(self.device))).float()
            metrics.update(logits, labels.to(self.device))
            probs.append(torch.sigmoid(logits).cpu().numpy())
        return metrics.compute(), {"probs": np.concatenate(probs)}

    def write_artifacts(self, out: Path, metrics: dict[str, float], extras: dict) -> list[Path]:
        """Per-class metrics with a confusion summary (tp/fp/fn/tn) and a test image grid."""
        classes = self.cfg.task.classes
        table = {c: {k: metrics[f"{k}_{c}"] for k in
                     ("f1", "precision", "recall", "support", "tp", "fp", "fn", "tn")}
                 for c in classes}
        per_class = out / "per_class_metrics.json"
        per_class.write_text(json.dumps(table, indent=1))
        csv = out / "per_class_metrics.csv"
        csv.write_text("class,f1,precision,recall,support,tp,fp,fn,tn\n" + "".join(
            f"{c}," + ",".join(f"{table[c][k]:g}" for k in table[c]) + "\n" for c in classes))
        shown = np.arange(min(8, len(self.test_data.names)))
        predicted = extras["probs"][shown] > self.cfg.task.threshold
        grid = classification_grid(self.test_data.images[shown], self.test_data.labels[shown],
                                   predicted, [self.test_data.names[i] for i in shown], classes,
                                   out / "test_predictions.png")
        return [per_class, csv, grid]
