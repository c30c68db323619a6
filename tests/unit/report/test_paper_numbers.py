"""The paper's tables, transcribed into their experiment files' report blocks, against numbers
copied by hand from the paper text; and the files write each number as the paper prints it."""

import re

import pytest
from report_records import SEEDS, TABLES as ALL_TABLES

from dedl_experiments.config import config_files
from dedl_experiments.report.definition.spec import Published

# The paper's tables: those with printed numbers (data_efficiency, not in the paper, has none).
TABLES = {name: spec for name, spec in ALL_TABLES.items() if spec.published}

# (table, row label, column label, the value exactly as the paper prints it)
PRINTED = [
    ("table1", "ResNet-18", "Without APP", "1h 24m 44s"),
    ("table1", "ResNet-101", "With APP", "1h 46m 25s"),
    ("table2", "ResNet-18", "UNet++ / Without AE", "0.5274"),
    ("table2", "ResNet-50", "UNet / With GELU AE", "0.3827"),
    ("table2", "ResNet-101", "UNet++ / With ReLU AE", "0.4265"),
    ("table3", "ResNet-18", "UNet / With Cosine LR", "0.4106"),
    ("table3", "ResNet-34", "UNet++ / Without Cosine LR", "0.4535"),
    ("table3", "ResNet-101", "UNet++ / With Cosine LR", "0.4518"),
    ("table4", "ResNet-34", "Test F1-Score", "0.82765±0.0073"),
    ("table4", "EfficientNet-B5", "Test F1-Score", "0.8463±0.00036"),
    ("table4", "NFNet-F3", "Test F1-Score", "0.8898±0.0011"),
    ("table4", "ConvNeXt-Large", "Test F1-Score", "0.8452±0.000545"),
    ("table4", "Swin-L (patch 4, window 12)", "Test F1-Score", "0.8839±0.001"),
    ("table4", "Swin-B (patch 4, window 12)", "Test F1-Score", "0.891±0.0007"),
    ("table4", "ViT-L/16", "Test F1-Score", "0.80495±0.0077"),
    ("table5", "Swin-L (patch 4, window 12)", "Test F1-Score", "0.891±0.0007"),
    ("table5", "NFNet-F3", "Test F1-Score", "0.8898±0.0109"),
    ("table5", "Van Buren et al. [23]", "Test F1-Score", "0.63"),
    ("table6", "ResNet-50", "Without AE", "0.3798±0.00072"),
    ("table6", "ResNet-101", "With GELU AE", "0.4402±0.00018"),
    ("table7", "ResNet-18", "With GELU AE", "0.4707±0.00067"),
    ("table7", "ResNet-34", "With ReLU AE", "0.4535±0.0008"),
    ("table8", "EfficientNet-B0", "With APP", "1h 29m 04s"),
    ("table8", "EfficientNet-B3", "Without APP", "1h 38m"),
    ("table8", "EfficientNet-B7", "With APP", "2h 19m 59s"),
    ("table9", "EfficientNet-B3", "With APP", "0.2411±0.0004"),
    ("table9", "EfficientNet-B4", "Without APP", "0.3826±0.0004"),
    ("table10", "EfficientNet-B5", "With APP", "2h 11m 39s"),
    ("table10", "EfficientNet-B4", "Without APP", "1h 54m 01s"),
    ("table11", "EfficientNet-B1", "Without APP", "0.4260±0.0005"),
    ("table11", "EfficientNet-B5", "With APP", "0.3875±0.0005"),
    ("table12", "EfficientNet-B4", "ImageNet", "0.3819±0.0004"),
    ("table12", "EfficientNet-B1", "Advprop", "0.2330±0.0006"),
    ("table12", "EfficientNet-B2", "Noisy", "0.4154±0.0001"),
    ("table13", "EfficientNet-B0", "ImageNet", "0.8372± 0.0007"),
    ("table13", "EfficientNet-B3", "Advprop", "0.84138±0.00135"),
    ("table13", "EfficientNet-B7", "Noisy Student", "0.8257±0.0008"),
    ("tiling", "UNet++ ResNet-34", "256 px accuracy, padding counted", "0.9834"),
    ("tiling", "Van Buren et al. [23]", "256 px accuracy, padding counted", "0.933"),
]

# (rows, columns) of each table as printed; table4 adds a CoAtNet row.
SHAPES = {
    "table1": (4, 2),
    "table2": (4, 6),
    "table3": (4, 4),
    "table4": (30, 1),
    "table5": (3, 1),
    "table6": (4, 3),
    "table7": (4, 3),
    "table8": (8, 2),
    "table9": (8, 2),
    "table10": (8, 2),
    "table11": (8, 2),
    "table12": (8, 3),
    "table13": (8, 3),
    "tiling": (2, 4),
}

MATCH_VALUES = {
    "task.name": {"segmentation", "classification"},
    "architecture.name": {"unet", "unetplusplus"},
    "encoder.name": {
        "resnet18", "resnet34", "resnet50", "resnet101",
        *(f"efficientnet_b{i}" for i in range(8)),
        *(f"nfnet_f{i}" for i in range(7)),
        "convnext_tiny", "convnext_small", "convnext_base", "convnext_large",
        "swin_base", "swin_large", "vit_base_16", "vit_base_32", "vit_large_16", "vit_large_32",
        "coatnet",
    },
    "app.name": {"none", "relu", "gelu"},
    "app_lr_schedule.name": {"constant", "cosine"},
    "train.patience": {"5", "None"},
    "init.name": {"imagenet", "advprop", "noisy_student"},
    "tiling.size": {"256", "480"},
}

METRICS = {"test_iou", "train_time_s", "test_f1_micro", "test_recall_as_released", "test_pixel_accuracy",
           "test_iou_padded", "test_pixel_accuracy_padded", "train_epoch_time_mean_s",
           "train_epoch_time_warm_mean_s"}  # training/warmup.py


def parse_printed(text: str) -> Published:
    """Independent of the report's reading: "1h 38m", "1h 29m 04s", "0.8372± 0.0007", "0.63"."""
    duration = re.fullmatch(r"(\d+)h(?: (\d+)m)?(?: (\d+)s)?", text)
    if duration:
        hours, minutes, seconds = (int(part or 0) for part in duration.groups())
        return Published(hours * 3600 + minutes * 60 + seconds)
    mean, _, std = text.partition("±")
    return Published(float(mean), float(std) if std else None)


@pytest.mark.parametrize(("table", "row", "column", "printed"), PRINTED)
def test_stored_number_equals_printed(table: str, row: str, column: str, printed: str) -> None:
    assert TABLES[table].published[(row, column)] == parse_printed(printed)


def test_sample_covers_every_table() -> None:
    assert {table for table, *_ in PRINTED} == set(TABLES)


def test_table_shapes() -> None:
    assert {name: (len(spec.rows), len(spec.columns)) for name, spec in TABLES.items()} == SHAPES


def test_duration_conversion_example() -> None:
    assert TABLES["table1"].published[("ResNet-18", "Without APP")].mean == 5084


@pytest.mark.parametrize("spec", TABLES.values(), ids=list(TABLES))
def test_labels_unique_and_published_keys_exist(spec) -> None:
    rows = [row.label for row in spec.rows]
    columns = [column.label for column in spec.columns]
    assert len(set(rows)) == len(rows) and len(set(columns)) == len(columns)
    assert all(row in rows and column in columns for row, column in spec.published)


@pytest.mark.parametrize("spec", TABLES.values(), ids=list(TABLES))
def test_selectors_use_known_params_and_values(spec) -> None:
    assert spec.fixed["task.name"] in ("segmentation", "classification")
    selectors = [row.match for row in spec.rows if row.match is not None]
    selectors += [column.match for column in spec.columns]
    for selector in [spec.fixed, *selectors]:
        for key, value in selector.items():
            assert value in MATCH_VALUES[key], (key, value)
    for selector in selectors:  # a varied setting must not also be fixed
        assert not set(selector) & set(spec.fixed)
    assert {spec.metric_for(column) for column in spec.columns} <= METRICS
    assert {view.metric for view in spec.views()} <= METRICS


@pytest.mark.parametrize("spec", TABLES.values(), ids=list(TABLES))
def test_comparisons_pair_cells_of_the_table(spec) -> None:
    """Every table but Table 5's single comparison declares its ablation axes; each pair names
    two different cells of the table, and comparison names are unique."""
    views = [view.label for view in spec.views()]
    rows = [row.label for row in spec.rows if row.match is not None]
    assert spec.comparisons
    names = [comparison.name for comparison in spec.comparisons]
    assert len(set(names)) == len(names)
    for comparison in spec.comparisons:
        for pair in comparison.pairs:
            assert pair.a != pair.b
            for row, view in (pair.a, pair.b):
                assert row in rows and view in views, (comparison.name, row, view)


def test_ablation_axes() -> None:
    """The axes the paper's tables vary: Table 2 three activation pairs per architecture,
    timing tables on both time measures, tiling 256 vs 480 on each measure."""
    def names(table):
        return [c.name for c in TABLES[table].comparisons]

    assert names("table2") == [f"{arch}: {pair}" for arch in ("UNet", "UNet++")
                               for pair in ("none vs ReLU", "none vs GELU", "ReLU vs GELU")]
    assert names("table6") == names("table7") == ["none vs ReLU", "none vs GELU", "ReLU vs GELU"]
    assert names("table3") == ["UNet: constant LR vs cosine LR", "UNet++: constant LR vs cosine LR"]
    assert names("table1") == names("table8") == names("table10") == [
        "none vs GELU APP (wall)", "none vs GELU APP (50 × epoch)",
        "none vs GELU APP (50 × warm epoch)"]
    assert names("table9") == names("table11") == ["none vs GELU APP"]
    assert names("table12") == names("table13") == ["ImageNet vs AdvProp", "ImageNet vs Noisy Student"]
    assert names("table4") == ["NFNet-F3 vs Swin-B", "Swin-L vs Swin-B"]
    assert names("table5") == ["NFNet-F3 vs Swin-L"]
    assert [c.name for c in TABLES["tiling"].comparisons][:4] == [
        f"{m}, padding {p}: 256 px vs 480 px" for m in ("accuracy", "IoU") for p in ("counted", "excluded")]
    assert {len(c.pairs) for c in TABLES["table2"].comparisons} == {4}
    assert {len(c.pairs) for c in TABLES["table13"].comparisons} == {8}


def test_timing_tables_say_what_is_timed() -> None:
    for name, spec in TABLES.items():
        views = [(view.label, view.metric, view.scale, view.paper_label) for view in spec.views()]
        if name in ("table1", "table8", "table10"):
            assert spec.timed.startswith("Timed: ")
            assert ("With APP, 50 × epoch", "train_epoch_time_mean_s", 50, "With APP") in views
        else:
            assert not spec.timed


def test_published_counts_and_gaps() -> None:
    expected = {name: rows * columns for name, (rows, columns) in SHAPES.items()}
    expected.update(table4=29, tiling=2)  # CoAtNet is not in the paper; Section 5.1 prints two numbers
    assert {name: len(spec.published) for name, spec in TABLES.items()} == expected
    assert ("CoAtNet", "Test F1-Score") not in TABLES["table4"].published


def test_std_present_exactly_where_printed() -> None:
    means_only = {"table1", "table2", "table3", "table8", "table10", "tiling"}
    for name, spec in TABLES.items():
        stds = [value.std for key, value in spec.published.items() if key[0] != "Van Buren et al. [23]"]
        if name in means_only:
            assert all(std is None for std in stds), name
        else:
            assert all(std is not None for std in stds), name


def test_published_only_rows() -> None:
    published_only = {
        (name, row.label) for name, spec in TABLES.items() for row in spec.rows if row.published_only
    }
    assert published_only == {("table5", "Van Buren et al. [23]"), ("tiling", "Van Buren et al. [23]")}


def test_fixed_settings_of_ablation_tables() -> None:
    assert TABLES["table2"].fixed["app_lr_schedule.name"] == "constant"
    assert TABLES["table3"].fixed["app.name"] == "relu"
    assert TABLES["table12"].fixed["app.name"] == "none"
    assert TABLES["table6"].fixed["architecture.name"] == "unet"
    assert TABLES["table7"].fixed["architecture.name"] == "unetplusplus"


def test_seeds() -> None:
    assert {name: spec.seeds for name, spec in TABLES.items()} == {name: SEEDS for name in TABLES}


PRINTED_FORM = re.compile(r"\d+h \d+m(?: \d\ds)?|0\.\d+(?:±0\.\d+)?")


@pytest.mark.parametrize("table", TABLES)
def test_files_write_numbers_as_printed(table: str) -> None:
    """Each printed number sits in its row's list as the paper prints it ("0.4347±0.0006",
    "1h 24m 44s", 0.4347), one per column, null where the paper prints none."""
    published = config_files.read(config_files.option_file("experiment", table))["report"]["published"]
    columns = len(TABLES[table].columns)
    for row, values in published.items():
        assert len(values) == columns, (table, row)
        for value in values:
            assert value is None or PRINTED_FORM.fullmatch(str(value)), (table, row, value)


def test_sample_is_written_as_printed() -> None:
    """The sample above, found as printed in its file (spaces around ± aside). A row's key is
    its choice (`resnet34`), its label, or its match's values joined by spaces."""
    for table, row_label, column, text in PRINTED:
        spec = TABLES[table]
        row = next(r for r in spec.rows if r.label == row_label)
        published = config_files.read(config_files.option_file("experiment", table))["report"]["published"]
        [values] = [v for k, v in published.items() if k == row_label or (row.match and k == " ".join(row.match.values()))]
        value = values[[c.label for c in spec.columns].index(column)]
        assert str(value) == text.replace("± ", "±"), (table, row_label, column)
