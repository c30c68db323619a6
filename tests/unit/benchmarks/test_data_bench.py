"""The data-pipeline benchmark's building blocks run on tiny tiles (the benchmark itself is not a test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "data_bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("data_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_both_loaders_yield_a_batch(bench, tmp_path: Path) -> None:
    tiles = bench.make_tiles(tmp_path, tile=32, n_tiles=8, height=64, width=80)
    assert tiles.count == 8 and tiles.split.images.shape[1:] == (1, 32, 32) and tiles.std > 0
    reference = bench.reference_loader(bench.write_reference_tiles(tmp_path / "ref", tiles),
                                       tiles.mean, tiles.std, batch_size=4)
    image, mask = next(iter(reference))
    assert image.shape == (4, 1, 32, 32) and mask.shape == (4, 32, 32)
    ours = bench.framework_loader(tiles, batch_size=4)
    image, target = next(iter(ours))
    assert image.shape == (4, 1, 32, 32) and target.shape == (4, 32, 32)


def test_run_and_markdown(bench, tmp_path: Path) -> None:
    report = bench.run(tile=32, n_tiles=8, workers_list=[0], repeats=1, workdir=tmp_path, height=64, width=80)
    result = report["results"][0]
    assert result["reference"]["median"] > 0 and result["ours"]["median"] > 0
    assert "REFERENCE" in bench.markdown(report)
