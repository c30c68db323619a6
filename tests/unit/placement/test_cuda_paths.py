"""The CUDA code paths with a fake torch.cuda (fake_cuda.py): the job's GPU made current, the
random generator state of the job's GPU saved and restored on whatever GPU the resumed job
gets, an fp16 resume from a checkpoint without loss-scaler state, and each run's own peak
memory in a process that runs several."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch

from conftest import compose_config
from dedl_experiments.training import checkpoint
from dedl_experiments.placement import peak_memory, speed
from dedl_experiments.run import train_test
from dedl_experiments.training.loop import FitState
from fake_cuda import FakeCuda

CUDA0, CUDA1 = torch.device("cuda", 0), torch.device("cuda", 1)


def test_the_job_makes_its_pinned_gpu_current(monkeypatch):
    cuda = FakeCuda(monkeypatch, n_gpus=2)
    pinned = {"device": "cuda:1", "gpu": 1, "jobs_per_gpu": 2, "pool": 4, "torch_threads": 4,
              "loader_workers": 4}
    monkeypatch.setattr(speed, "pin_current_job", lambda: pinned)
    placement = speed.place_job(compose_config(["device=auto"]))
    assert placement.device == CUDA1 and cuda.calls == [("set_device", 1)] and cuda.current == 1
    # The pool's share, as a value the job hands to its task: k jobs on the GPU, capped workers.
    assert placement.jobs_on_device == 2 and placement.torch_threads == 4
    assert placement.workers(8) == 4 and placement.workers(2) == 2
    cuda.calls.clear()
    monkeypatch.setattr(speed, "pin_current_job", lambda: {})
    alone = speed.place_job(compose_config(["device=cpu"]))
    assert alone.device.type == "cpu" and alone.jobs_on_device == 1 and alone.workers(8) == 8
    assert cuda.calls == []  # a CPU job leaves CUDA alone


class _Stub:
    """The parts of a task that checkpoint.training_state and restore_training_state use."""

    def __init__(self, device: torch.device):
        self.device, self.optimizers, self.schedulers = device, {}, {}

    def modules(self):
        return {}

    def extra_state(self):
        return {}

    def load_extra_state(self, state):
        pass


def _state(device, scaler=None):
    return checkpoint.training_state(_Stub(device), {"epoch": 1},
                                     scaler or torch.amp.GradScaler("cuda", enabled=False))


def test_the_gpu_state_saved_is_the_job_gpus_and_goes_to_the_resumed_jobs_gpu(monkeypatch):
    cuda = FakeCuda(monkeypatch, n_gpus=2)
    saved = _state(CUDA1)["rng"]
    assert torch.equal(saved["cuda"], cuda.rng[1]) and "get_rng_state_all" not in cuda.names()
    # Resumed in a process that sees one GPU (another SLURM allocation): no IndexError, and the
    # state reaches the GPU the job trains on.
    cuda = FakeCuda(monkeypatch, n_gpus=1)
    checkpoint.set_rng_state(saved, CUDA0)
    assert torch.equal(cuda.rng[0], saved["cuda"]) and cuda.calls == [("set_rng_state", 0)]


def test_a_cpu_job_saves_no_gpu_state_and_ignores_one(monkeypatch):
    cuda = FakeCuda(monkeypatch, n_gpus=2)
    saved = _state(torch.device("cpu"))["rng"]
    assert "cuda" not in saved and cuda.calls == []
    checkpoint.set_rng_state(_state(CUDA0)["rng"], torch.device("cpu"))  # resumed on the CPU
    assert cuda.names() == ["get_rng_state"]


@pytest.mark.parametrize("saved_gpus,visible,device,restored", [
    (4, 1, CUDA0, 0),  # fewer GPUs now: the entry of the job's GPU number
    (2, 2, CUDA1, 1),
    (2, 4, torch.device("cuda", 3), 0),  # a GPU number the old list lacks: the first
    (1, 2, torch.device("cuda"), 0),  # the current device
])
def test_older_checkpoints_with_every_gpus_state_resume(monkeypatch, saved_gpus, visible, device, restored):
    old = FakeCuda(monkeypatch, n_gpus=saved_gpus)
    states = [s + 10 for s in old.get_rng_state_all()]
    cuda = FakeCuda(monkeypatch, n_gpus=visible)
    checkpoint.set_rng_state(_state(torch.device("cpu"))["rng"] | {"cuda": states}, device)
    target = cuda._gpu(device)
    assert torch.equal(cuda.rng[target], states[restored])
    assert [name for name in cuda.names() if "rng" in name] == ["set_rng_state"]


def test_an_fp16_resume_from_a_checkpoint_without_scaler_state_starts_a_fresh_scaler(monkeypatch, caplog):
    FakeCuda(monkeypatch)
    saved = _state(CUDA0)  # a bf16 run: its scaler was disabled and saved {}
    assert saved["scaler"] == {}
    fp16 = torch.amp.GradScaler("cuda", enabled=True)
    fresh = fp16.state_dict()
    with caplog.at_level(logging.INFO, logger="dedl_experiments.training.checkpoint"):
        assert checkpoint.restore_training_state(_Stub(CUDA0), saved, fp16) == {"epoch": 1}
    assert fp16.state_dict() == fresh
    assert "no loss-scaler state" in caplog.text and "starts afresh" in caplog.text
    # A saved scaler state is still restored.
    trained = torch.amp.GradScaler("cuda", init_scale=1024.0, enabled=True)
    checkpoint.restore_training_state(_Stub(CUDA0), _state(CUDA0, trained), fp16)
    assert fp16.get_scale() == 1024.0


# --- peak memory: each run's own, also when one process runs several ---------------------


class _Network(torch.nn.Module):
    def load_state_dict(self, state, strict=True, assign=False):
        pass


class _Task(_Stub):
    """What train_and_test asks of a task, with no network to train."""

    def __init__(self):
        super().__init__(CUDA0)
        self.net = _Network()

    def network(self):
        return self.net

    def describe(self):
        return {}

    def training_set(self):
        return None

    def final_state(self, best_state, seed):
        return {}

    def test_metrics(self, batch_size):
        return {"iou": 0.5}, None

    def result_extras(self):
        return {}

    def inference_checkpoint(self, state):
        return {}

    def write_artifacts(self, out, metrics, extras):
        return []


@pytest.fixture
def _tf32_restored():
    """speed_settings sets the process's TF32 switches for a CUDA run."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


def test_each_run_records_its_own_peak_memory(tmp_path, monkeypatch, _tf32_restored):
    """A process trains two cells one after the other (a sequential sweep, a pool worker's
    next job, the folds of a cell): the second's peak is its own, not the first's."""
    cuda = FakeCuda(monkeypatch)
    tracker = SimpleNamespace(log_artifact=lambda *a: None, log_params=lambda *a: None,
                              log_metrics=lambda *a, **k: None)
    results = {}
    for batch, peak_mib in ((16, 9000), (8, 3000)):
        cfg = compose_config([f"data_dir={tmp_path}", f"budget.batch_size={batch}",
                              "speed.compile=false", "train.checkpoint_every=0"])
        task = _Task()

        def fit(task, settings, state, speed, on_epoch_end, peak_mib=peak_mib):
            cuda.allocate(peak_mib)  # activations of the biggest step
            cuda.free(peak_mib)  # freed, but kept in the allocator's cache
            return FitState(epoch=1, best_epoch=0, best_state={})

        monkeypatch.setattr(train_test, "fit", fit)
        results[batch] = train_test.train_and_test(cfg, task, SimpleNamespace(epochs=1), tracker,
                                                 "run", tmp_path / f"out{batch}", None)
    assert results[16]["peak_memory_mb"] == 9000 and results[8]["peak_memory_mb"] == 3000
    ledger = json.loads((tmp_path / peak_memory.LEDGER).read_text())
    assert sorted(e["peak_reserved_mb"] for e in ledger.values()) == [3000.0, 9000.0]
    assert ("reset_peak_memory_stats", 0) in cuda.calls
