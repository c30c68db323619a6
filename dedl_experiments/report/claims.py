"""The paper's testable claims, as data: each names the table it rests on and what in that
table would show it (comparisons of report/paper.py, cells, printed values of prior work).

Kinds of claim (verdicts.py evaluates them, on the paper's printed numbers and on our runs):

- EachClaim: in each listed pair of cells B > A (or B < A) as the item says; ``most`` reads
  "in most cases" (more than half) instead of "always".
- AverageClaim: B - A averaged over the listed pairs (per seed, the mean over the pairs) is in
  the claimed direction and, where the text gives a size, about that size: in points of the
  metric (the paper's "5 %" and "26 %" are points: 0.9834 - 0.933, 0.891 - 0.63), or relative
  to A for times. "About" is read as within half the size either way (``tolerance``).
- ContrastClaim: the averaged B - A of ``items`` exceeds that of ``others``.
- BestClaim: the best mean among ``among`` is one of ``winners``.
- ReferenceClaim: a cell beats a value printed for prior work, by about ``size``.
- SpreadClaim: every listed cell's std over seeds is below ``below``.
"""

from __future__ import annotations

from dataclasses import dataclass

from dedl_experiments.conf import label
from dedl_experiments.report.spec import EPOCHS


def _encoders(*names: str) -> tuple[str, ...]:
    """The row labels of these encoders (their YAML's `label:`)."""
    return tuple(label("encoder", name) for name in names)


RESNETS = _encoders("resnet18", "resnet34", "resnet50", "resnet101")
EFFNETS = _encoders(*(f"efficientnet_b{i}" for i in range(8)))
Position = tuple[str, str]  # (row label, view label)


@dataclass(frozen=True)
class Item:
    """One pair of cells of a comparison (its name and the pair's label, e.g. the encoder) and
    the direction the claim expects: ">" (B > A) or "<" (B < A)."""

    comparison: str
    row: str
    expect: str = ">"


@dataclass(frozen=True, kw_only=True)
class Claim:
    id: str
    source: str  # where the paper says it
    text: str  # what it says (quoted where short, else close to its words)
    table: str  # the table it rests on
    note: str = ""  # how the text is read onto the table, where that needs saying


@dataclass(frozen=True, kw_only=True)
class EachClaim(Claim):
    items: tuple[Item, ...]
    most: bool = False


@dataclass(frozen=True, kw_only=True)
class AverageClaim(Claim):
    items: tuple[Item, ...]
    size: float | None = None  # claimed |B - A|, in points, or relative to A if `relative`
    relative: bool = False
    tolerance: float | None = None  # default: half the size
    fallback: tuple[Item, ...] = ()  # the same pairs on another measure, used when items have no pairs


@dataclass(frozen=True, kw_only=True)
class ContrastClaim(Claim):
    items: tuple[Item, ...]
    others: tuple[Item, ...]
    fallback: tuple[tuple[Item, ...], tuple[Item, ...]] = ((), ())


@dataclass(frozen=True, kw_only=True)
class BestClaim(Claim):
    among: tuple[Position, ...]
    winners: tuple[Position, ...]


@dataclass(frozen=True, kw_only=True)
class ReferenceClaim(Claim):
    cell: Position
    reference: float
    size: float | None = None
    tolerance: float | None = None


@dataclass(frozen=True, kw_only=True)
class SpreadClaim(Claim):
    cells: tuple[Position, ...]
    below: float


def items(comparisons: tuple[str, ...], rows: tuple[str, ...], expect: str = ">",
          exceptions: dict[tuple[str, str], str] | None = None) -> tuple[Item, ...]:
    """Every comparison x row, expecting `expect` except where `exceptions` says otherwise."""
    exceptions = exceptions or {}
    return tuple(Item(c, r, exceptions.get((c, r), expect)) for c in comparisons for r in rows)


def _unless(rows: tuple[str, ...], comparisons: tuple[str, ...], expect: str) -> dict[tuple[str, str], str]:
    return {(c, r): expect for c in comparisons for r in rows}


_R18, _R34, _R50, _R101 = RESNETS
# Comparisons within one architecture are named "<architecture label>: A vs B" (spec.per_architecture_axes).
_UNET, _UNETPP = (label("architecture", name) for name in ("unet", "unetplusplus"))
_ONE_ARCH_APP = ("none vs ReLU", "none vs GELU")
_UNETPP_APP = tuple(f"{_UNETPP}: {c}" for c in _ONE_ARCH_APP)
_APP = (*(f"{_UNET}: {c}" for c in _ONE_ARCH_APP), *_UNETPP_APP)
_GELU = (f"{_UNET}: none vs GELU", f"{_UNETPP}: none vs GELU")
_RELU_GELU = (f"{_UNET}: ReLU vs GELU", f"{_UNETPP}: ReLU vs GELU")
_LR = (f"{_UNET}: constant LR vs cosine LR", f"{_UNETPP}: constant LR vs cosine LR")
_WALL, _EPOCHS = "none vs GELU APP (wall)", f"none vs GELU APP ({EPOCHS} × epoch)"
_INITS = ("ImageNet vs AdvProp", "ImageNet vs Noisy Student")
_F1 = "Test F1-Score"
_CNNS = (*RESNETS, *EFFNETS, *_encoders(*(f"nfnet_f{i}" for i in range(7))),
         *_encoders("convnext_tiny", "convnext_small", "convnext_base", "convnext_large"))
_TRANSFORMERS = _encoders("swin_large", "swin_base", "vit_base_16", "vit_base_32", "vit_large_16", "vit_large_32")
_SWIN_B, _NFNET_F3 = _encoders("swin_base", "nfnet_f3")
_TILES = f"{_UNETPP} {_R34}"  # the tiling table's row
_TIMING_NOTE = (f"Read on time per training epoch x {EPOCHS} (the paper times {EPOCHS} epochs); on the wall "
                "training time where runs did not log it.")


def _time_claim(id_: str, source: str, text: str, table: str, rows: tuple[str, ...], size: float) -> AverageClaim:
    return AverageClaim(id=id_, source=source, text=text, table=table, items=items((_EPOCHS,), rows), size=size,
                        relative=True, fallback=items((_WALL,), rows), note=_TIMING_NOTE)


CLAIMS: tuple[Claim, ...] = (
    # --- Section 5.1 / Tables 1-3 (and their expansion, Tables 6 and 7): the APP, ResNet encoders
    AverageClaim(
        id="app-gain-3", source="Abstract; Section 1 (ii); Section 6", table="table2",
        text="The APP (GELU autoencoder) improves segmentation IoU by a further 3 %; it 'gains 3% "
             "consistently over architectures without any post-processing'.",
        items=items(_GELU, RESNETS), size=0.03,
        note="Averaged over UNet and UNet++ with the four ResNets; 3 % read as 3 points of IoU."),
    EachClaim(
        id="app-improves-except-unetpp-18-101", source="Table 2 caption", table="table2",
        text="Except for ResNet-18 and 101 with UNet++, the autoencoder always provides an improvement.",
        items=items(_APP, RESNETS, exceptions=_unless((_R18, _R101), _UNETPP_APP, "<")),
        note="Both APP activations; at the two exceptions the APP is read as lowering IoU."),
    EachClaim(
        id="app-improves-except-unetpp-18", source="Table 3 caption (it describes Table 2's content)",
        table="table2", text="Except for ResNet-18 with UNet++, the autoencoder always provides an improvement.",
        items=items(_APP, RESNETS, exceptions=_unless((_R18,), _UNETPP_APP, "<"))),
    AverageClaim(
        id="gelu-beats-relu-3", source="Section 5.1, ablation 2", table="table2",
        text="GELU performed better than the ReLU-activated autoencoder by around 3 % for UNet and UNet++.",
        items=items(_RELU_GELU, RESNETS), size=0.03, note="3 % read as 3 points of IoU."),
    EachClaim(
        id="app-beneficial-most", source="Section 5.1, ablation 2", table="table2",
        text="In most cases for UNet and UNet++, the addition of the autoencoder post-processing is "
             "highly beneficial.",
        items=items(_APP, RESNETS), most=True),
    EachClaim(
        id="unet-app-always", source="Table 6 caption", table="table6",
        text="In all cases addition of APP improved performance (UNet).",
        items=items(_ONE_ARCH_APP, RESNETS)),
    EachClaim(
        id="unet-gelu-beats-relu-except-50", source="Table 6 caption", table="table6",
        text="GELU activated APP seems to outperform the ReLU activated APP in all cases except for ResNet-50.",
        items=items(("ReLU vs GELU",), RESNETS, exceptions={("ReLU vs GELU", _R50): "<"})),
    EachClaim(
        id="unetpp-app-most-except-18", source="Table 7 caption", table="table7",
        text="In most cases, APP improves performance except for UNet++ with ResNet-18.",
        items=items(_ONE_ARCH_APP, RESNETS, exceptions=_unless((_R18,), _ONE_ARCH_APP, "<")), most=True),
    AverageClaim(
        id="unetpp-18-lags-5", source="Table 7 caption", table="table7",
        text="For UNet++ with ResNet-18, APP segmentation techniques lag by around 5 %.",
        items=items(_ONE_ARCH_APP, (_R18,), "<"), size=0.05, note="Both APP activations, in IoU points."),
    AverageClaim(
        id="unetpp-34-gains-10", source="Table 7 caption", table="table7",
        text="For ResNet-34, APP-based segmentation techniques are almost 10 % better than UNet++ without APP.",
        items=items(_ONE_ARCH_APP, (_R34,)), size=0.10, note="Both APP activations, in IoU points."),
    EachClaim(
        id="constant-lr-beats-cosine", source="Section 5.1, ablation 3", table="table3",
        text="Except for two cases in UNet++, the autoencoder with a constant learning rate performs much "
             "better than the one with a cosine learning rate.",
        items=items(_LR, RESNETS, "<", exceptions=_unless((_R18, _R101), _LR[1:], ">")),
        note="The text does not name the two UNet++ cases; the printed table's are ResNet-18 and ResNet-101."),
    _time_claim("app-time-1.875", "Section 5.1, ablation 1 (Table 1)",
                "The APP increases training time by 1.875 % on average over the ResNet family (UNet, "
                "50 epochs).", "table1", RESNETS, 0.01875),
    ContrastClaim(
        id="app-time-smaller-encoders", source="Table 1 caption", table="table1",
        text="For smaller encoders like ResNet-18 and 34 the training time increase is greater as opposed "
             "to larger encoders.",
        items=items((_EPOCHS,), RESNETS[:2]), others=items((_EPOCHS,), RESNETS[2:]),
        fallback=(items((_WALL,), RESNETS[:2]), items((_WALL,), RESNETS[2:])),
        note="The increase in seconds, ResNet-18/34 against ResNet-50/101. " + _TIMING_NOTE),
    # --- Section 7.2 / Tables 8-11: the APP with EfficientNet encoders
    _time_claim("effnet-unet-time-2.93", "Section 7.2 (Table 8)",
                "With UNet, the APP increases training time by an average of 3m 7.3s over 50 epochs, "
                "2.93 %, over the EfficientNet family.", "table8", EFFNETS, 0.0293),
    SpreadClaim(
        id="effnet-unet-time-spread", source="Table 8 caption", table="table8",
        text="The variation [of the running time over 5 seeds] is almost negligible (< 6s).",
        cells=tuple((row, view) for row in EFFNETS for view in ("Without APP", "With APP")), below=6.0,
        note="The wall training time of each cell."),
    EachClaim(
        id="effnet-unet-app-consistent", source="Section 7.2 (Table 9)", table="table9",
        text="Performance wise, architecture with autoencoder post-processing consistently outperformed "
             "segmentation architectures without them (UNet).",
        items=items(("none vs GELU APP",), EFFNETS)),
    AverageClaim(
        id="effnet-unet-app-2.75", source="Section 7.2 (Table 9)", table="table9",
        text="... [the APP outperformed no APP] by 2.75 % (UNet, EfficientNet family).",
        items=items(("none vs GELU APP",), EFFNETS), size=0.0275, note="In IoU points."),
    _time_claim("effnet-unetpp-time-2.6", "Section 7.2 (Table 10)",
                "With UNet++, the APP corresponds to a 3m 7s increase in training time, an increase of 2.6 %.",
                "table10", EFFNETS, 0.026),
    AverageClaim(
        id="effnet-unetpp-app-5", source="Section 7.2 (Table 11)", table="table11",
        text="With UNet++, the gain in performance with autoencoder post-processing is 5 % averaged over "
             "the efficientnet family of encoders.",
        items=items(("none vs GELU APP",), EFFNETS), size=0.05, note="In IoU points."),
    # --- Section 7.4 / Tables 12-13: initialisations
    EachClaim(
        id="seg-imagenet-most", source="Section 7.4", table="table12",
        text="For segmentation, ImageNet initialization performed better in most cases.",
        items=items(_INITS, EFFNETS, "<"), most=True,
        note="Each of AdvProp and Noisy Student against ImageNet, per encoder (16 comparisons)."),
    EachClaim(
        id="seg-small-models-gain", source="Table 12 caption", table="table12",
        text="While performance gains [from AdvProp and Noisy Student] for smaller models, ...",
        items=items(_INITS, EFFNETS[:3]),
        note="The caption does not say which models are smaller: B0-B2 are read as the smaller, B5-B7 as "
             "the larger ones."),
    EachClaim(
        id="seg-large-models-imagenet", source="Table 12 caption", table="table12",
        text="... ImageNet initialisation works better for larger models.",
        items=items(_INITS, EFFNETS[5:], "<"), note="B5-B7 read as the larger models."),
    EachClaim(
        id="cls-imagenet-most", source="Section 7.4", table="table13",
        text="In classification, [ImageNet initialisation] performed better in most cases.",
        items=items(_INITS, EFFNETS, "<"), most=True,
        note="Each of AdvProp and Noisy Student against ImageNet, per encoder (16 comparisons)."),
    BestClaim(
        id="cls-imagenet-best-overall", source="Section 7.4; Table 13 caption", table="table13",
        text="[ImageNet] also provided the best overall result: 0.8463 is the peak with ImageNet, 0.843 with "
             "advprop and 0.8457 with noisy student.",
        among=tuple((row, column) for row in EFFNETS for column in ("ImageNet", "Advprop", "Noisy Student")),
        winners=tuple((row, "ImageNet") for row in EFFNETS)),
    # --- Section 5.2 / Tables 4-5: classification architectures
    BestClaim(
        id="swin-b-best", source="Section 5.2; Table 4 caption", table="table4",
        text="Out of all the tested architectures Swin Transformer Base with Patch 4 and Window 12 performed "
             "the best (F1 0.891).",
        among=tuple((row, _F1) for row in (*_CNNS, *_TRANSFORMERS)), winners=((_SWIN_B, _F1),),
        note="Among the paper's 29 models (CoAtNet, not in the paper, left out)."),
    BestClaim(
        id="nfnet-f3-best-cnn", source="Section 5.2; Table 4 caption", table="table4",
        text="The best performance is achieved by nfnet-f3 for CNNs (F1 0.8898).",
        among=tuple((row, _F1) for row in _CNNS), winners=((_NFNET_F3, _F1),),
        note="CNNs: the ResNet, EfficientNet, NFNet and ConvNeXt rows."),
    BestClaim(
        id="transformers-slightly-better", source="Section 6", table="table4",
        text="In comparing architectures, the performance is relatively similar for CNNs and transformers, "
             "but transformers perform slightly better than CNNs.",
        among=tuple((row, _F1) for row in (*_CNNS, *_TRANSFORMERS)), winners=tuple((row, _F1) for row in _TRANSFORMERS),
        note="Read as: the best Transformer (Swin, ViT) beats the best CNN."),
    ReferenceClaim(
        id="cls-beats-van-buren", source="Abstract; Section 5.2", table="table4",
        text="An F1 score of 0.891, an improvement of 26.1 % over previous work by [23] (0.63).",
        cell=(_SWIN_B, _F1), reference=0.63, size=0.261,
        note="Swin-B, the model the text names; 26.1 % read as points. The paper's 'F1' is the released "
             "code's recall (see table4's note)."),
    # --- Section 5.1: tiling
    ReferenceClaim(
        id="seg-beats-van-buren", source="Section 5.1", table="tiling",
        text="Overall accuracy improved from 0.933 for [23] to 0.9834 for Unetplusplus with ResNet34 backbone "
             "- an improvement of 5 %.",
        cell=(_TILES, "256 px accuracy, padding counted"), reference=0.933, size=0.05,
        note="256 px tiles, padding counted as the paper counted it."),
    EachClaim(
        id="small-tiles-inflate-accuracy", source="Section 5.1", table="tiling",
        text="With 256 px tiles margin padding is primarily empty ... This might give false perception of "
             "performance [higher accuracy than with 480 px tiles].",
        items=(Item("accuracy, padding counted: 256 px vs 480 px", _TILES, "<"),)),
    EachClaim(
        id="padding-inflates-accuracy", source="Section 5.1", table="tiling",
        text="The model achieves higher metric performance from [empty margin padding] (256 px tiles).",
        items=(Item("256 px accuracy, padding: counted vs excluded", _TILES, "<"),),
        note="Our reading of the cause the paper gives: the same runs' accuracy with the padding excluded."),
)
