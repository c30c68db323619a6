"""The paper's published numbers and table layouts, transcribed by hand as data.

Source: Singh & Cirrone, "A data-efficient deep learning framework for segmentation
and classification of histopathology images" (Tables 1-13 and Section 5.1).

A table is a grid of rows x columns. Each row and column selects runs by their
flattened config params (``encoder.name``, ``app.name``, ...); a run belongs to a
cell when it matches the table's ``fixed`` settings, the row and the column.
Numbers are stored exactly as printed (times in seconds), including the paper's
inconsistencies, which each table's ``note`` lists.
"""

from dataclasses import dataclass, field

SEEDS = (26, 77, 334, 517, 994)


@dataclass(frozen=True)
class Published:
    """One printed number: "mean±std", or a bare mean (std None)."""

    mean: float
    std: float | None = None


@dataclass(frozen=True)
class RowSpec:
    """A table row. ``match=None`` marks a published-only row (prior work such as
    Van Buren et al.): no run of ours can belong to it. An empty dict would instead
    match every run, so it is never used for that purpose."""

    label: str
    match: dict[str, str] | None

    @property
    def published_only(self) -> bool:
        return self.match is None


@dataclass(frozen=True)
class ColumnSpec:
    """A table column; ``metric`` overrides the table's metric for this column
    (Section 5.1 sets accuracy and IoU side by side)."""

    label: str
    match: dict[str, str]
    metric: str | None = None


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    task: str  # "segmentation" | "classification"
    metric: str  # MLflow metric key shown in the table
    rows: tuple[RowSpec, ...]
    columns: tuple[ColumnSpec, ...]
    published: dict[tuple[str, str], Published]  # (row label, column label) -> printed value
    fixed: dict[str, str] = field(default_factory=dict)  # settings every run of the table must match
    note: str = ""

    def metric_for(self, column: ColumnSpec) -> str:
        return column.metric or self.metric


ENCODER_LABELS: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "resnet101": "ResNet-101",
    **{f"efficientnet_b{i}": f"EfficientNet-B{i}" for i in range(8)},
    **{f"nfnet_f{i}": f"NFNet-F{i}" for i in range(7)},
    "convnext_tiny": "ConvNeXt-Tiny",
    "convnext_small": "ConvNeXt-Small",
    "convnext_base": "ConvNeXt-Base",
    "convnext_large": "ConvNeXt-Large",
    "swin_large": "Swin-L (patch 4, window 12)",
    "swin_base": "Swin-B (patch 4, window 12)",
    "vit_base_16": "ViT-B/16",
    "vit_base_32": "ViT-B/32",
    "vit_large_16": "ViT-L/16",
    "vit_large_32": "ViT-L/32",
    "coatnet": "CoAtNet",
}

_P = Published


def _duration(hours: int, minutes: int, seconds: int = 0) -> Published:
    """A training time printed as "1h 24m 44s", stored in seconds; no spread is printed."""
    return Published(float(hours * 3600 + minutes * 60 + seconds))


def _encoder_rows(
    columns: tuple[ColumnSpec, ...], printed: dict[str, tuple[Published | None, ...]]
) -> tuple[tuple[RowSpec, ...], dict[tuple[str, str], Published]]:
    """Rows keyed by encoder, in printed order, and their printed values (None: not printed)."""
    rows: list[RowSpec] = []
    published: dict[tuple[str, str], Published] = {}
    for encoder, values in printed.items():
        if len(values) != len(columns):
            raise ValueError(f"{encoder}: {len(values)} values for {len(columns)} columns")
        row = RowSpec(ENCODER_LABELS[encoder], {"encoder.name": encoder})
        rows.append(row)
        for column, value in zip(columns, values):
            if value is not None:
                published[(row.label, column.label)] = value
    return tuple(rows), published


def _encoder_table(
    printed: dict[str, tuple[Published | None, ...]],
    columns: tuple[ColumnSpec, ...],
    *,
    name: str,
    title: str,
    task: str,
    metric: str,
    fixed: dict[str, str],
    note: str,
) -> TableSpec:
    rows, published = _encoder_rows(columns, printed)
    return TableSpec(
        name=name, title=title, task=task, metric=metric, rows=rows, columns=columns,
        published=published, fixed=fixed, note=note,
    )


# Settings shared by tables. The paper's final segmentation setup: ImageNet weights,
# 480 px tiles, constant learning rate for the APP (Section 5.1 "Ablation Study").
_SEGMENTATION = {
    "task.name": "segmentation",
    "init.name": "imagenet",
    "tiling.size": "480",
    "app_lr_schedule.name": "constant",
}
_CLASSIFICATION = {"task.name": "classification", "init.name": "imagenet"}

_APP_NONE_GELU = (
    ColumnSpec("Without APP", {"app.name": "none"}),
    ColumnSpec("With APP", {"app.name": "gelu"}),  # the paper's default APP activation
)
_APP_ACTIVATIONS = (
    ColumnSpec("Without AE", {"app.name": "none"}),
    ColumnSpec("With ReLU AE", {"app.name": "relu"}),
    ColumnSpec("With GELU AE", {"app.name": "gelu"}),
)
_ARCHITECTURES = (("UNet", "unet"), ("UNet++", "unetplusplus"))
_F1_COLUMN = (ColumnSpec("Test F1-Score", {}),)


def _per_architecture(columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
    """UNet and UNet++ side by side, each with the given columns (Tables 2 and 3)."""
    return tuple(
        ColumnSpec(f"{arch_label} / {column.label}", {"architecture.name": arch, **column.match})
        for arch_label, arch in _ARCHITECTURES
        for column in columns
    )


def _init_columns(noisy_label: str) -> tuple[ColumnSpec, ...]:
    return (
        ColumnSpec("ImageNet", {"init.name": "imagenet"}),
        ColumnSpec("Advprop", {"init.name": "advprop"}),
        ColumnSpec(noisy_label, {"init.name": "noisy_student"}),
    )


TABLE1 = _encoder_table(
    {
        "resnet18": (_duration(1, 24, 44), _duration(1, 27, 40)),
        "resnet34": (_duration(1, 27, 41), _duration(1, 30, 39)),
        "resnet50": (_duration(1, 45, 45), _duration(1, 46, 24)),
        "resnet101": (_duration(1, 45, 24), _duration(1, 46, 25)),
    },
    _APP_NONE_GELU,
    name="table1",
    title="Training time, UNet with/without GELU APP, ResNet encoders (50 epochs)",
    task="segmentation",
    metric="train_time_s",
    fixed={**_SEGMENTATION, "architecture.name": "unet"},
    note=(
        "No spread printed. The text calls these 'testing time' and claims an average "
        "increase of 1.875%; the printed times give 3.46, 3.38, 0.61 and 0.96% (mean 2.11%)."
    ),
)

TABLE2 = _encoder_table(
    {
        "resnet18": (_P(0.4347), _P(0.4608), _P(0.4788), _P(0.5274), _P(0.4177), _P(0.4707)),
        "resnet34": (_P(0.4774), _P(0.4467), _P(0.4983), _P(0.3745), _P(0.4535), _P(0.4678)),
        "resnet50": (_P(0.3798), _P(0.4187), _P(0.3827), _P(0.4236), _P(0.4685), _P(0.4422)),
        "resnet101": (_P(0.3718), _P(0.4074), _P(0.4402), _P(0.4311), _P(0.4265), _P(0.4467)),
    },
    _per_architecture(_APP_ACTIVATIONS),
    name="table2",
    title="Test IoU, UNet and UNet++ without APP and with ReLU / GELU APP",
    task="segmentation",
    metric="test_iou",
    fixed=_SEGMENTATION,
    note=(
        "The caption describes a cosine learning rate for the autoencoder while the content "
        "compares no/ReLU/GELU APP (Table 3's caption fits this table: the two captions look "
        "swapped). The caption's 'except ResNet-18 and 101 with UNet++, APP always improves' "
        "also misses UNet ResNet-34 with ReLU AE (0.4467 < 0.4774). The text says GELU beats "
        "ReLU by ~3%, yet ReLU is better for ResNet-50 on both architectures. Means of "
        "Tables 6 and 7."
    ),
)

TABLE3 = _encoder_table(
    {
        "resnet18": (_P(0.4608), _P(0.4106), _P(0.4177), _P(0.4717)),
        "resnet34": (_P(0.4467), _P(0.3665), _P(0.4535), _P(0.4345)),
        "resnet50": (_P(0.4187), _P(0.3965), _P(0.4685), _P(0.4268)),
        "resnet101": (_P(0.4074), _P(0.3846), _P(0.4265), _P(0.4518)),
    },
    _per_architecture(
        (
            ColumnSpec("Without Cosine LR", {"app_lr_schedule.name": "constant"}),
            ColumnSpec("With Cosine LR", {"app_lr_schedule.name": "cosine"}),
        )
    ),
    name="table3",
    title="Test IoU, ReLU APP with constant vs cosine APP learning rate",
    task="segmentation",
    metric="test_iou",
    fixed={"task.name": "segmentation", "init.name": "imagenet", "tiling.size": "480", "app.name": "relu"},
    note=(
        "The caption describes the no/ReLU/GELU comparison (it belongs to Table 2); the "
        "content compares the ReLU APP with a constant vs cosine learning rate. The "
        "'Without Cosine LR' columns equal Table 2's ReLU AE columns."
    ),
)

TABLE4 = _encoder_table(
    {
        "resnet18": (_P(0.8635, 0.0087),),
        "resnet34": (_P(0.82765, 0.0073),),
        "resnet50": (_P(0.8499, 0.007),),
        "resnet101": (_P(0.871, 0.009),),
        "efficientnet_b0": (_P(0.8372, 0.0007),),
        "efficientnet_b1": (_P(0.8346, 0.0026),),
        "efficientnet_b2": (_P(0.828, 0.00074),),
        "efficientnet_b3": (_P(0.8369, 0.0094),),
        "efficientnet_b4": (_P(0.8418, 0.0009),),
        "efficientnet_b5": (_P(0.8463, 0.00036),),
        "efficientnet_b6": (_P(0.8263, 0.00147),),
        "efficientnet_b7": (_P(0.8129, 0.001),),
        "nfnet_f0": (_P(0.82035, 0.007),),
        "nfnet_f1": (_P(0.834, 0.007),),
        "nfnet_f2": (_P(0.8652, 0.0089),),
        "nfnet_f3": (_P(0.8898, 0.0011),),
        "nfnet_f4": (_P(0.8848, 0.0109),),
        "nfnet_f5": (_P(0.8161, 0.0074),),
        "nfnet_f6": (_P(0.8378, 0.007),),
        "convnext_tiny": (_P(0.81355, 0.0032),),
        "convnext_small": (_P(0.84795, 0.00246),),
        "convnext_base": (_P(0.80675, 0.002),),
        "convnext_large": (_P(0.8452, 0.000545),),
        "swin_large": (_P(0.8839, 0.001),),
        "swin_base": (_P(0.891, 0.0007),),
        "vit_base_16": (_P(0.8426, 0.007),),
        "vit_base_32": (_P(0.8507, 0.0079),),
        "vit_large_16": (_P(0.80495, 0.0077),),
        "vit_large_32": (_P(0.845, 0.0077),),
        "coatnet": (None,),  # not in the paper: an extra model of this project
    },
    _F1_COLUMN,
    name="table4",
    title="Classification test F1, ImageNet initialisation",
    task="classification",
    metric="test_f1_micro",
    fixed=_CLASSIFICATION,
    note=(
        "The released code's 'F1' returns recall tp/(tp+fn); this table shows true micro F1 "
        "(test_f1_micro). To set the released metric beside the paper, render "
        "dataclasses.replace(spec, metric='test_recall_as_released'). CoAtNet is not in the "
        "paper. Mean and std over 6 folds x 5 seeds."
    ),
)

_VAN_BUREN = "Van Buren et al. [23]"

# Printed as "Swin Transformer Large" with 0.891±0.0007; see the note.
_TABLE5_ROWS, _TABLE5_PUBLISHED = _encoder_rows(
    _F1_COLUMN, {"swin_large": (_P(0.891, 0.0007),), "nfnet_f3": (_P(0.8898, 0.0109),)}
)

TABLE5 = TableSpec(
    name="table5",
    title="Best classification results vs previous benchmark",
    task="classification",
    metric="test_f1_micro",
    rows=(*_TABLE5_ROWS, RowSpec(_VAN_BUREN, None)),
    columns=_F1_COLUMN,
    published={**_TABLE5_PUBLISHED, (_VAN_BUREN, "Test F1-Score"): _P(0.63)},
    fixed=_CLASSIFICATION,
    note=(
        "Values as printed. The first row is printed as Swin Transformer Large, but "
        "0.891±0.0007 is Swin Base's value in Table 4 and the text names Swin Base the best "
        "(Swin Large is 0.8839±0.001 in Table 4); the row matches swin_large runs as printed. "
        "nfnet-f3's std is printed as 0.0109 here but 0.0011 in Table 4 (0.0109 is nfnet-f4's "
        "std there). Van Buren et al. is a published-only row (no runs of ours)."
    ),
)

TABLE6 = _encoder_table(
    {
        "resnet18": (_P(0.4347, 0.0006), _P(0.4608, 0.0001), _P(0.4788, 0.0004)),
        "resnet34": (_P(0.4774, 0.0004), _P(0.4467, 0.0012), _P(0.4983, 0.0008)),
        "resnet50": (_P(0.3798, 0.00072), _P(0.4187, 0.0006), _P(0.3827, 0.0003)),
        "resnet101": (_P(0.3718, 0.0001), _P(0.4074, 0.0012), _P(0.4402, 0.00018)),
    },
    _APP_ACTIVATIONS,
    name="table6",
    title="Test IoU, UNet without APP and with ReLU / GELU APP (5 seeds)",
    task="segmentation",
    metric="test_iou",
    fixed={**_SEGMENTATION, "architecture.name": "unet"},
    note=(
        "The caption says APP improved performance in all cases, but ResNet-34 with ReLU AE "
        "(0.4467) is below without AE (0.4774)."
    ),
)

TABLE7 = _encoder_table(
    {
        "resnet18": (_P(0.5274, 0.0004), _P(0.4177, 0.0005), _P(0.4707, 0.00067)),
        "resnet34": (_P(0.3745, 0.0006), _P(0.4535, 0.0008), _P(0.4678, 0.0004)),
        "resnet50": (_P(0.4236, 0.0004), _P(0.4685, 0.0002), _P(0.4422, 0.0007)),
        "resnet101": (_P(0.4311, 0.0003), _P(0.4265, 0.0002), _P(0.4467, 0.0003)),
    },
    _APP_ACTIVATIONS,
    name="table7",
    title="Test IoU, UNet++ without APP and with ReLU / GELU APP (5 seeds)",
    task="segmentation",
    metric="test_iou",
    fixed={**_SEGMENTATION, "architecture.name": "unetplusplus"},
    note=(
        "The caption says APP lags 'by around 5%' for ResNet-18: GELU is 5.7 and ReLU 11.0 "
        "points below without AE. ResNet-101 with ReLU AE is also below without AE."
    ),
)

TABLE8 = _encoder_table(
    {
        "efficientnet_b0": (_duration(1, 26, 27), _duration(1, 29, 4)),
        "efficientnet_b1": (_duration(1, 31, 16), _duration(1, 33, 42)),
        "efficientnet_b2": (_duration(1, 32, 12), _duration(1, 34, 27)),
        "efficientnet_b3": (_duration(1, 38), _duration(1, 40, 33)),  # printed "1h 38m"
        "efficientnet_b4": (_duration(1, 44, 20), _duration(1, 50, 2)),
        "efficientnet_b5": (_duration(1, 55, 46), _duration(1, 58, 40)),
        "efficientnet_b6": (_duration(2, 6, 55), _duration(2, 10, 8)),
        "efficientnet_b7": (_duration(2, 16, 40), _duration(2, 19, 59)),
    },
    _APP_NONE_GELU,
    name="table8",
    title="Training time, UNet with/without APP, EfficientNet encoders (50 epochs)",
    task="segmentation",
    metric="train_time_s",
    fixed={**_SEGMENTATION, "architecture.name": "unet"},
    note=(
        "Averaged over 5 seeds; the caption says the spread is below 6 s but prints none. "
        "B3 without APP is printed as '1h 38m'. The text's mean increase of 3m 7.3s (2.93%) "
        "agrees with the printed times (3m 7.4s)."
    ),
)

TABLE9 = _encoder_table(
    {
        "efficientnet_b0": (_P(0.3785, 0.00061), _P(0.4282, 0.0008)),
        "efficientnet_b1": (_P(0.3301, 0.0002), _P(0.4237, 0.0006)),
        "efficientnet_b2": (_P(0.2235, 0.0007), _P(0.3735, 0.0009)),
        "efficientnet_b3": (_P(0.3982, 0.0007), _P(0.2411, 0.0004)),
        "efficientnet_b4": (_P(0.3826, 0.0004), _P(0.3829, 0.0006)),
        "efficientnet_b5": (_P(0.4056, 0.0008), _P(0.4336, 0.0008)),
        "efficientnet_b6": (_P(0.4001, 0.0001), _P(0.4311, 0.0006)),
        "efficientnet_b7": (_P(0.3631, 0.0002), _P(0.3937, 0.0004)),
    },
    _APP_NONE_GELU,
    name="table9",
    title="Test IoU, UNet with/without APP, EfficientNet encoders (5 seeds)",
    task="segmentation",
    metric="test_iou",
    fixed={**_SEGMENTATION, "architecture.name": "unet"},
    note=(
        "The text says APP 'consistently outperformed' by 2.75% (mean gain 2.83 points), but "
        "B3 with APP (0.2411) is far below without (0.3982). The without-APP column equals "
        "Table 12's ImageNet column except B4 (0.3826 here, 0.3819 there)."
    ),
)

TABLE10 = _encoder_table(
    {
        "efficientnet_b0": (_duration(1, 32, 50), _duration(1, 35, 31)),
        "efficientnet_b1": (_duration(1, 37, 40), _duration(1, 40, 51)),
        "efficientnet_b2": (_duration(1, 38, 30), _duration(1, 40, 41)),
        "efficientnet_b3": (_duration(1, 46, 30), _duration(1, 49, 34)),
        "efficientnet_b4": (_duration(1, 54, 1), _duration(1, 57, 41)),
        "efficientnet_b5": (_duration(2, 7, 54), _duration(2, 11, 39)),
        "efficientnet_b6": (_duration(2, 20, 23), _duration(2, 23, 41)),
        "efficientnet_b7": (_duration(2, 29, 1), _duration(2, 32, 4)),
    },
    _APP_NONE_GELU,
    name="table10",
    title="Training time, UNet++ with/without APP, EfficientNet encoders (50 epochs)",
    task="segmentation",
    metric="train_time_s",
    fixed={**_SEGMENTATION, "architecture.name": "unetplusplus"},
    note=(
        "Averaged over 5 seeds, no spread printed. The text's 3m 7s (2.6%) mean increase "
        "agrees with the printed times (3m 6.6s, 2.68%)."
    ),
)

TABLE11 = _encoder_table(
    {
        "efficientnet_b0": (_P(0.3584, 0.0002), _P(0.3751, 0.0007)),
        "efficientnet_b1": (_P(0.4260, 0.0005), _P(0.4269, 0.0003)),
        "efficientnet_b2": (_P(0.3778, 0.0007), _P(0.3942, 0.0009)),
        "efficientnet_b3": (_P(0.3928, 0.0006), _P(0.4174, 0.0003)),
        "efficientnet_b4": (_P(0.4138, 0.0003), _P(0.4273, 0.0002)),
        "efficientnet_b5": (_P(0.3884, 0.0001), _P(0.3875, 0.0005)),
        "efficientnet_b6": (_P(0.4090, 0.0008), _P(0.4214, 0.0007)),
        "efficientnet_b7": (_P(0.3784, 0.0009), _P(0.4002, 0.0005)),
    },
    _APP_NONE_GELU,
    name="table11",
    title="Test IoU, UNet++ with/without APP, EfficientNet encoders (5 seeds)",
    task="segmentation",
    metric="test_iou",
    fixed={**_SEGMENTATION, "architecture.name": "unetplusplus"},
    note=(
        "The text claims a 5% gain from APP averaged over the family; the printed values give "
        "1.32 points (3.4% relative), and B5 with APP (0.3875) is below without (0.3884)."
    ),
)

TABLE12 = _encoder_table(
    {
        "efficientnet_b0": (_P(0.3785, 0.00061), _P(0.3895, 0.001), _P(0.4081, 0.0006)),
        "efficientnet_b1": (_P(0.3301, 0.0002), _P(0.2330, 0.0006), _P(0.3817, 0.0008)),
        "efficientnet_b2": (_P(0.2235, 0.0007), _P(0.3823, 0.0004), _P(0.4154, 0.0001)),
        "efficientnet_b3": (_P(0.3982, 0.0007), _P(0.3722, 0.0004), _P(0.3509, 0.0007)),
        "efficientnet_b4": (_P(0.3819, 0.0004), _P(0.4366, 0.0006), _P(0.4333, 0.0003)),
        "efficientnet_b5": (_P(0.4056, 0.0008), _P(0.3910, 0.0001), _P(0.3806, 0.0004)),
        "efficientnet_b6": (_P(0.4001, 0.0001), _P(0.3807, 0.0005), _P(0.3941, 0.0006)),
        "efficientnet_b7": (_P(0.3631, 0.0002), _P(0.3543, 0.0009), _P(0.3308, 0.0006)),
    },
    _init_columns("Noisy"),  # printed "Nosiy"
    name="table12",
    title="Test IoU by initialisation, UNet without APP, EfficientNet encoders",
    task="segmentation",
    metric="test_iou",
    fixed={
        "task.name": "segmentation",
        "tiling.size": "480",
        "app_lr_schedule.name": "constant",
        "architecture.name": "unet",
        "app.name": "none",
    },
    note=(
        "B4 ImageNet is 0.3819 here but 0.3826 in Table 9 (the other ImageNet values equal "
        "Table 9 without APP). The text says ImageNet performed better 'in most cases'; it is "
        "the best in 4 of 8 rows (B3, B5, B6, B7)."
    ),
)

TABLE13 = _encoder_table(
    {
        "efficientnet_b0": (_P(0.8372, 0.0007), _P(0.8416, 0.0008), _P(0.839, 0.0008)),
        "efficientnet_b1": (_P(0.8346, 0.0026), _P(0.8367, 0.0007), _P(0.8448, 0.0014)),
        "efficientnet_b2": (_P(0.828, 0.00074), _P(0.843, 0.00138), _P(0.8430, 0.0012)),
        "efficientnet_b3": (_P(0.8369, 0.0094), _P(0.84138, 0.00135), _P(0.8457, 0.007)),
        "efficientnet_b4": (_P(0.8418, 0.0009), _P(0.82135, 0.00058), _P(0.8377, 0.00032)),
        "efficientnet_b5": (_P(0.8463, 0.00036), _P(0.8133, 0.002), _P(0.8326, 0.00066)),
        "efficientnet_b6": (_P(0.8263, 0.00147), _P(0.8237, 0.004), _P(0.8233, 0.0065)),
        "efficientnet_b7": (_P(0.8129, 0.001), _P(0.8132, 0.004), _P(0.8257, 0.0008)),
    },
    _init_columns("Noisy Student"),
    name="table13",
    title="Classification test F1 by initialisation, EfficientNet encoders",
    task="classification",
    metric="test_f1_micro",
    fixed={"task.name": "classification"},
    note=(
        "Mean over 6 folds x 5 seeds. The ImageNet column equals Table 4's EfficientNet rows. "
        "As in Table 4, the paper's 'F1' is the released code's recall (see table4's note)."
    ),
)

_UNETPP_RESNET34 = "UNet++ ResNet-34"

TILING = TableSpec(
    name="tiling",
    title="Section 5.1: 256 px vs 480 px tiles, pixel accuracy and IoU",
    task="segmentation",
    metric="test_pixel_accuracy",
    rows=(
        RowSpec(_UNETPP_RESNET34, {"architecture.name": "unetplusplus", "encoder.name": "resnet34"}),
        RowSpec(_VAN_BUREN, None),
    ),
    columns=(
        ColumnSpec("256 px accuracy", {"tiling.size": "256"}),
        ColumnSpec("256 px IoU", {"tiling.size": "256"}, metric="test_iou"),
        ColumnSpec("480 px accuracy", {"tiling.size": "480"}),
        ColumnSpec("480 px IoU", {"tiling.size": "480"}, metric="test_iou"),
    ),
    published={
        (_UNETPP_RESNET34, "256 px accuracy"): _P(0.9834),
        (_VAN_BUREN, "256 px accuracy"): _P(0.933),
    },
    fixed={
        "task.name": "segmentation",
        "init.name": "imagenet",
        "app.name": "none",
        "app_lr_schedule.name": "constant",
    },
    note=(
        "The text gives only overall accuracy: 0.9834 for UNet++ ResNet-34 with 256 px tiles "
        "(before the switch to 480 px) vs 0.933 for Van Buren et al. at their tiling "
        "('an improvement of 5%': 5.04 points). No IoU, no 480 px accuracy and no spread are "
        "printed. Van Buren et al. is a published-only row."
    ),
)

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TABLE1, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7,
        TABLE8, TABLE9, TABLE10, TABLE11, TABLE12, TABLE13, TILING,
    )
}
