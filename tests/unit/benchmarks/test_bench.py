"""The training-speed benchmark's parts on tiny tiles (the benchmark itself is not a test):
both loops run and report alike, FLOP counts, the Table 2 projection, and bf16 autocast
agreeing with fp32 for one training step of the UNet + APP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import bench, sweep_bench
from dedl_experiments.models.app import layer_widths

CUDA = torch.cuda
TINY = {"tile": 32, "batch": 2, "height": 64, "width": 80}  # 2 x 3 tiles of 32 px per image


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> bench.Setup:
    return bench.make_setup(tmp_path_factory.mktemp("bench"), TINY["tile"], TINY["batch"],
                            torch.device("cpu"), unique_tiles=8, workers=0,
                            height=TINY["height"], width=TINY["width"])


def test_both_loops_run_and_report_alike(tmp_path: Path) -> None:
    report = bench.run(steps=2, repeats=1, warmup=1, device="cpu", workdir=tmp_path, workers=0,
                       extras=False, mlflow=False, project=False, log=lambda text: None, **TINY)
    loops = report["loops"]
    assert set(loops) == {"reference", "ours_none", "ours_gelu"}
    keys = {name: set(result) for name, result in loops.items()}
    assert keys["reference"] == keys["ours_none"] == keys["ours_gelu"]
    for result in loops.values():
        assert result["tiles"] == 4 and result["steps"] == 2
        assert result["tiles_per_s"]["median"] > 0 and result["achieved_flops"] > 0
        assert result["mfu"] is None  # GPU only
    assert "iou" in loops["reference"]["last_metrics"] and "iou" in loops["ours_none"]["last_metrics"]
    assert report["ratio_ours_over_reference"] > 0
    table = bench.markdown(report)
    assert "REFERENCE" in table and "ours, app=gelu" in table and "GPU only" in table


def test_capped_loader_reads_the_reference_tiles(setup: bench.Setup) -> None:
    fw = bench.framework(setup, "none")
    loader = bench.capped_loader(fw, setup, "train", True, 5)
    assert len(loader.dataset) == 5 and set(loader.dataset.indices) <= set(range(setup.tiles.count))
    assert sum(len(image) for image, _ in loader) == 5
    assert len(bench.cycled(setup.pairs, 5)) == 5


def _app_flops(width: int, batch: int) -> int:
    """Forward + backward (input gradient included) of the APP's linear layers: 3 x 2 x MACs."""
    widths = layer_widths(width)
    rows = batch * 2 * width  # every row of both class maps
    return 3 * 2 * rows * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def test_flop_counts() -> None:
    small, large = bench.training_flops(32, 2), bench.training_flops(64, 2)
    for flops in (small, large):
        assert flops["net_per_step"] > 0 and flops["app_per_step"] > 0
        assert flops["net_per_tile"] == flops["net_per_step"] / 2
    assert small["app_per_step"] == _app_flops(32, 2)
    assert large["app_per_step"] == _app_flops(64, 2)
    # The first layer maps W -> 32 W per row, so per-row FLOPs grow ~W^2 and rows grow with H:
    # doubling the tile more than triples the APP's FLOPs; the convolutions scale with pixels.
    assert large["app_per_step"] / small["app_per_step"] > 3.5
    assert large["net_per_step"] / small["net_per_step"] == pytest.approx(4, rel=0.01)


def test_projection_arithmetic() -> None:
    p = bench.projection(train_none=1.0, train_gelu=2.0, val=0.5, how="test")
    epoch_none = 1452 * 1.0 + 720 * 0.5
    assert p["epoch_s"]["none"] == epoch_none
    assert p["cell_s"]["gelu"] == 50 * (1452 * 2.0 + 720 * 0.5)
    assert p["table2_s"] == pytest.approx(120 * (50 * epoch_none / 3 + 2 * p["cell_s"]["gelu"] / 3))


def test_bf16_autocast_matches_fp32_for_one_training_step(setup: bench.Setup) -> None:
    """What CUDA runs use (bf16 autocast), checked on CPU: the loss and logits of one training
    step of the UNet + GELU APP, and the network's gradients, agree with fp32 within bf16's
    precision (8 significant bits). (The APP's own gradients at initialisation do not: its
    output layers' gradients lose their direction in bf16; see the benchmark's report.)"""
    fw = bench.framework(setup, "gelu")
    task = fw.task
    image, target = next(iter(bench.capped_loader(fw, setup, "train", True, 2)))
    task.net.train()
    task.app.train()

    def step(autocast: bool):
        for module in task.modules().values():
            module.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = task.net((image - task.shift) / task.scale)
            loss = task.step((image, target), task.new_metrics(), train=True)
        loss.backward()
        grads = torch.cat([p.grad.flatten() for p in task.net.parameters() if p.grad is not None])
        return loss.detach(), logits.detach(), grads

    loss32, logits32, grads32 = step(False)
    loss16, logits16, grads16 = step(True)
    assert logits32.dtype == torch.float32 and logits16.dtype == torch.bfloat16  # autocast ran
    assert loss16.dtype == torch.float32  # cross-entropy runs in fp32 under autocast
    assert loss16.item() == pytest.approx(loss32.item(), rel=1e-2)
    logits16 = logits16.float()
    scale = logits32.abs().max().item()
    torch.testing.assert_close(logits16, logits32, rtol=0, atol=0.05 * scale)
    assert (logits16 - logits32).abs().mean() < 0.01 * scale
    assert torch.nn.functional.cosine_similarity(grads16, grads32, dim=0) > 0.97


def test_each_section_reports_as_it_finishes(tmp_path: Path) -> None:
    seen: list[str] = []
    bench.run(steps=1, repeats=1, warmup=1, device="cpu", workdir=tmp_path, workers=0,
              extras=False, mlflow=False, project=False, log=lambda text: None,
              section=lambda name, data: seen.append((name, sorted(data))), **TINY)
    names = [name for name, _ in seen]
    assert names == ["synthetic data + prepare", "training loops + FLOPs"]
    assert "loops" in seen[1][1] and "seconds" in seen[1][1]
    bench_results = tmp_path / "out"
    bench_results.mkdir()
    sweep_bench.append_result(bench_results, "a", {"x": 1})
    sweep_bench.append_result(bench_results, "b", {"x": 2})
    lines = (bench_results / "results.jsonl").read_text().splitlines()
    assert [line.split('"section": ')[1][:3] for line in lines] == ['"a"', '"b"']


def test_mini_sweep_command_and_figures() -> None:
    args = sweep_bench.sweep_args(2, sweep_bench.base_overrides(False, 2, 1, False), Path("/d"))
    assert args[:3] == ["-m", "hydra/launcher=gpus", "speed.jobs_per_gpu=2"]
    assert "budget=paper" in args and "app=none,gelu" in args and "seed=1,2" in args
    assert "data_dir=/d" in args and "budget.epochs=2" in args
    small = sweep_bench.base_overrides(True, 2, 2, False)
    assert "budget=smoke" in small and "budget.scale=0.0625" in small

    runs = [{"status": "FINISHED", "epoch_s": [5.0, 2.0, 2.2], "train_time_s": 9.2,
             "tiles": {"train": 36, "val": 24}, "device": "cuda:0", "torch_threads": "8",
             "tile_px": 480}
            for _ in range(4)]
    result = sweep_bench.summarise(2, wall_s=60.0, runs=runs, n_gpus=1)
    assert result["cells_per_hour"] == pytest.approx(240.0)
    assert result["concurrent"] == 2 and result["later_epoch_s"] == pytest.approx(2.1)
    assert sweep_bench._tile_px({"tiling.size": "480", "budget.scale": "0.0625"}) == 32
    assert result["fixed_s_per_cell"] == pytest.approx((60.0 * 2 - 4 * 9.2) / 4)
    proj = sweep_bench.project(result, n_gpus=1, val_weight=0.5)
    epoch = 2.1 * (1452 + 0.5 * 720) / (36 + 0.5 * 24)
    assert proj["epoch_s"] == pytest.approx(epoch)
    assert proj["waves"] == 60 and proj["table2_s"] == pytest.approx(
        60 * (result["fixed_s_per_cell"] + 50 * epoch))
    report = {"config": {"ks": [2], "small": False, "epochs": 2, "images_per_patient": 1,
                         "compile": False, "n_gpus": 1, "val_weight": 0.5, "prepare_s": 3.0},
              "sweeps": [result | {"projection": proj}, {"k": 4, "error": "timeout"}]}
    table = sweep_bench.markdown(report)
    assert "| 2 | 60.0 | 4 | 240.0 |" in table and "failed or cut short" in table
    small = sweep_bench.project(result | {"tile_px": 32}, n_gpus=1, val_weight=0.5)
    assert small["epoch_s"] == pytest.approx(epoch * 225)


class RecordingCuda:
    """torch.cuda for `loop_peaks_alone` on CPU: records the memory calls, and at each
    `empty_cache` whether a loop built before is still alive; the rest is torch.cuda's."""

    def __init__(self, built: list) -> None:
        self.calls: list[str] = []
        self.built = built  # weak references to the loops' models, appended as they are built

    def __getattr__(self, name: str):
        return getattr(CUDA, name)

    def empty_cache(self) -> None:
        import gc

        gc.collect()
        self.calls.append(f"empty_cache, alive {sum(ref() is not None for ref in self.built)}")

    def reset_peak_memory_stats(self, device) -> None:
        self.calls.append("reset_peak_memory_stats")

    def max_memory_allocated(self, device) -> int:
        self.calls.append("max_memory_allocated")
        return 100 * 2**20

    def max_memory_reserved(self, device) -> int:
        self.calls.append("max_memory_reserved")
        return 120 * 2**20


def test_each_loops_peak_memory_is_measured_alone(setup: bench.Setup, monkeypatch) -> None:
    """Before each loop is built, the one before it is gone, the allocator's cache emptied and
    the peak reset; the peak read after its epoch is its own."""
    import weakref

    built: list = []
    framework, reference_trainer = bench.framework, bench.reference_trainer

    def tracked_framework(*args, **kwargs):
        fw = framework(*args, **kwargs)
        built.append(weakref.ref(fw.task.net))
        return fw

    def tracked_trainer(*args, **kwargs):
        trainer = reference_trainer(*args, **kwargs)
        built.append(weakref.ref(trainer.model))
        return trainer

    cuda = RecordingCuda(built)
    monkeypatch.setattr(bench, "framework", tracked_framework)
    monkeypatch.setattr(bench, "reference_trainer", tracked_trainer)
    monkeypatch.setattr(bench.torch, "cuda", cuda)
    peaks = bench.loop_peaks_alone(setup, n_tiles=2)
    assert peaks == {name: {"allocated_mb": 100.0, "reserved_mb": 120.0} for name in bench.LOOPS}
    per_loop = ["reset_peak_memory_stats", "max_memory_allocated", "max_memory_reserved"]
    assert cuda.calls == [*(["empty_cache, alive 0", *per_loop] * 3), "empty_cache, alive 0"]
    assert len(built) == 3


def test_the_ledger_gets_the_peak_reserved_alone(setup: bench.Setup, monkeypatch) -> None:
    recorded = {}
    monkeypatch.setattr(bench, "record_peak_memory",
                        lambda cfg, device, what, peak_mb: recorded.setdefault("mb", peak_mb))
    loops = {"ours_gelu": {"peak_memory_mb": 100.0, "peak_reserved_mb": 150.0}}
    bench.record_bench_memory(setup, torch.device("cuda", 0), loops)
    assert recorded == {"mb": 150.0}  # no allowance for other loops' blocks: none were alive
