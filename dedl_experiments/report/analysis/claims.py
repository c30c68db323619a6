"""The kinds of the paper's testable claims, and how a table's experiment file states them: each
claim sits in the `report: claims:` list of the table it rests on, naming what in that table would
show it (its comparisons, cells, printed values of prior work).

Kinds of claim (verdicts.py evaluates them, on the paper's printed numbers and on our runs):

- EachClaim: in each listed pair of cells B > A (or B < A) as the item says; ``most`` reads
  "in most cases" (more than half) instead of "always".
- AverageClaim: B - A averaged over the listed pairs (per seed, the mean over the pairs) is in
  the claimed direction and, where the text gives a size, about that size: in points of the
  metric (the paper's "5 %" and "26 %" are points: 0.9834 - 0.933, 0.891 - 0.63), or relative
  to A for times. The paper's printed numbers read "about" as within half the size either way
  (``tolerance``); our runs' CI is set against the claimed size itself (effects.py).
  ``consistently``: each listed pair goes the claimed way too, not only their average.
- ContrastClaim: the averaged B - A of ``items`` exceeds that of ``others``.
- BestClaim: the best mean among ``among`` is one of ``winners``.
- ReferenceClaim: a cell beats a value printed for prior work, by about ``size``.
- SpreadClaim: every listed cell's std over seeds is below ``below``.
- SavingClaim: each listed variant of the table's learning curves (spec.CurveSpec) reaches the
  baseline's full-data score with fewer training images (curves.py: the 95 % CI of the fraction
  of the images it needs lies below 1).

In the file, a claim is its `kind` (each, average, contrast, best, reference, spread, saving),
`id`, `source`, `text`, optional `note`, optional `readings` (other reasonable readings of its
text: each a `label` and the fields it reads otherwise, e.g. {label: GELU only, items: [...]} or
{label: relative %, relative: true}; the report shows a reading wherever it changes a verdict),
and its kind's fields: pairs of cells as lists of ItemsBlock (schema.py: comparison names x row
keys, with the expected direction), cells as a CellsBlock (row keys x column labels), one cell as
[row key, column label], variants as their labels. An item block's `expect` is ">" (B > A), "<"
(B < A) or "exempt" (the text makes an exception of those pairs: left out of the claim):

    claims:
      - id: unet-gelu-beats-relu-except-50
        kind: each
        source: Table 6 caption
        text: GELU activated APP seems to outperform the ReLU activated APP in all cases except ...
        items:
          - {comparisons: [ReLU vs GELU]}                               # every row
          - {comparisons: [ReLU vs GELU], rows: [resnet50], expect: "<"}  # replaces that pair
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from dedl_experiments.report.definition.schema import CellsBlock, ExperimentError, ItemsBlock, check, keys
from dedl_experiments.report.definition.spec import Claim, TableSpec

Position = tuple[str, str]  # (row label, view label)
EXEMPT = "exempt"  # an item block's expect: pairs the claim's text makes an exception of


@dataclass(frozen=True)
class Item:
    """One pair of cells of a comparison (its name and the pair's label, e.g. the encoder) and
    the direction the claim expects: ">" (B > A) or "<" (B < A)."""

    comparison: str
    row: str
    expect: str = ">"


@dataclass(frozen=True)
class Reading:
    """Another reasonable reading of a claim's text: the claim as read that way."""

    label: str  # e.g. "GELU only"
    claim: Claim


@dataclass(frozen=True, kw_only=True)
class EachClaim(Claim):
    items: tuple[Item, ...]
    most: bool = False


@dataclass(frozen=True, kw_only=True)
class AverageClaim(Claim):
    items: tuple[Item, ...]
    size: float | None = None  # claimed |B - A|, in points, or relative to A if `relative`
    relative: bool = False
    tolerance: float | None = None  # default: half the size (the paper's printed numbers' "about")
    consistently: bool = False  # each pair of cells, not only the average, goes the claimed way
    fallback: tuple[Item, ...] = ()  # the same pairs on another measure, used when items have no pairs


@dataclass(frozen=True, kw_only=True)
class ContrastClaim(Claim):
    items: tuple[Item, ...]
    others: tuple[Item, ...]
    fallback: tuple[Item, ...] = ()  # items and others on another measure, used when items have no pairs
    fallback_others: tuple[Item, ...] = ()


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


@dataclass(frozen=True, kw_only=True)
class SavingClaim(Claim):
    variants: tuple[str, ...]  # labels of the table's learning-curve variants


KINDS: dict[str, type[Claim]] = {"each": EachClaim, "average": AverageClaim, "contrast": ContrastClaim,
                                 "best": BestClaim, "reference": ReferenceClaim, "spread": SpreadClaim,
                                 "saving": SavingClaim}
_ITEMS = ("items", "others", "fallback", "fallback_others")
_CELLS = ("among", "winners", "cells")


class _Reader:
    """Claims of one table's block: row keys become row labels, names are checked against the
    table's comparisons and views."""

    def __init__(self, spec: TableSpec, row_keys: dict[str, str], where: str):
        self.spec, self.row_keys, self.where = spec, row_keys, where
        self.views = [view.label for view in spec.views()]

    def row(self, key: object, path: str) -> str:
        if str(key) not in self.row_keys:
            raise ExperimentError(f"{self.where}: {path}: no row {key}; rows: {', '.join(self.row_keys)}")
        return self.row_keys[str(key)]

    def rows(self, listed: list | None, path: str) -> list[str]:
        """Row keys as labels; a listed item may itself be a list (a YAML alias of a list)."""
        if listed is None:
            return [label for label in self.row_keys.values()
                    if next(r for r in self.spec.rows if r.label == label).match is not None]
        flat = [key for item in listed for key in (item if isinstance(item, list) else [item])]
        return [self.row(key, path) for key in flat]

    def view(self, label: str, path: str) -> str:
        if label not in self.views:
            raise ExperimentError(f"{self.where}: {path}: no column {label!r}; columns: {'; '.join(self.views)}")
        return label

    def items(self, blocks: list, path: str) -> tuple[Item, ...]:
        expected: dict[tuple[str, str], str] = {}  # a later block's pair replaces an earlier's, in place
        for i, data in enumerate(blocks):
            block = check(data, ItemsBlock, self.where, f"{path}[{i}]")
            if block.expect not in (">", "<", EXEMPT):
                raise ExperimentError(f"{self.where}: {path}[{i}].expect must be '>', '<' or {EXEMPT}, "
                                      f"not {block.expect!r}")
            for name in block.comparisons:
                try:
                    comparison = self.spec.comparison(name)
                except KeyError:
                    names = "; ".join(c.name for c in self.spec.comparisons)
                    raise ExperimentError(f"{self.where}: {path}[{i}]: no comparison {name!r}; "
                                          f"comparisons: {names}") from None
                rows = ([pair.label for pair in comparison.pairs] if block.rows is None
                        else self.rows(block.rows, f"{path}[{i}].rows"))
                for row in rows:
                    expected[(name, row)] = block.expect
        return tuple(Item(name, row, expect) for (name, row), expect in expected.items() if expect != EXEMPT)

    def reading(self, data: dict, reading: object, path: str) -> Reading:
        """Another reading of the claim: its fields as the reading sets them, the rest as the claim's."""
        if not isinstance(reading, dict) or "label" not in reading:
            raise ExperimentError(f"{self.where}: {path} must be a mapping with a label and the claim's fields it "
                                  "reads otherwise")
        other = {key: value for key, value in data.items() if key != "readings"}
        other.update({key: value for key, value in reading.items() if key != "label"})
        return Reading(str(reading["label"]), self.claim(other, path))

    def cells(self, data: dict, path: str) -> tuple[Position, ...]:
        block = check(data, CellsBlock, self.where, path)
        views = self.views if block.columns is None else [self.view(v, path) for v in block.columns]
        return tuple((row, view) for row in self.rows(block.rows, path) for view in views)

    def variants(self, listed: list, path: str) -> tuple[str, ...]:
        known = [variant.label for variant in self.spec.curve.variants] if self.spec.curve else []
        for label in listed:
            if label not in known:
                raise ExperimentError(f"{self.where}: {path}: no learning-curve variant {label!r}; variants: "
                                      f"{'; '.join(known) or 'none (the table sweeps no training-set size)'}")
        return tuple(listed)

    def claim(self, data: dict, path: str) -> Claim:
        kind = KINDS.get(data.get("kind")) if isinstance(data, dict) else None
        if kind is None:
            raise ExperimentError(f"{self.where}: {path}.kind must be one of {', '.join(KINDS)}")
        names = [f.name for f in dataclasses.fields(kind) if f.name != "table"]
        required = [f.name for f in dataclasses.fields(kind) if f.name != "table"
                    and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        keys(data, ["kind", *names], required, self.where, path)
        values = {}
        for name, value in data.items():
            if name == "readings":
                value = tuple(self.reading(data, reading, f"{path}.readings[{i}]") for i, reading in enumerate(value))
            elif name in _ITEMS:
                value = self.items(value, f"{path}.{name}")
            elif name in _CELLS:
                value = self.cells(value, f"{path}.{name}")
            elif name == "variants":
                value = self.variants(value, f"{path}.variants")
            elif name == "cell":
                value = (self.row(value[0], f"{path}.cell"), self.view(value[1], f"{path}.cell"))
            if name != "kind":
                values[name] = value
        return kind(table=self.spec.name, **values)


def read(blocks: list, spec: TableSpec, row_keys: dict[str, str], where: str) -> tuple[Claim, ...]:
    """The claims of a table's `report: claims:` list; `row_keys`: each row's key -> its label."""
    reader = _Reader(spec, row_keys, where)
    claims = tuple(reader.claim(data, f"report.claims[{i}]") for i, data in enumerate(blocks))
    ids = [claim.id for claim in claims]
    if len(set(ids)) != len(ids):
        raise ExperimentError(f"{where}: claim ids repeat: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    return claims
