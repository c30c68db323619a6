"""A stand-in for the torch.cuda functions the project calls, for tests of the CUDA code paths on
a machine without a GPU: it answers for `n_gpus` GPUs, keeps a random generator state and
allocator counters per GPU, and records every call (name, GPU) in `calls`."""

from __future__ import annotations

import pytest
import torch

MIB = 2**20


class FakeCuda:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, n_gpus: int = 1, name: str = "NVIDIA H200"):
        self.n_gpus, self.name, self.current = n_gpus, name, 0
        self.calls: list[tuple[str, int | None]] = []
        # One distinct generator state per GPU (what torch.cuda.get_rng_state returns: uint8).
        self.rng = {i: torch.full((16,), i, dtype=torch.uint8) for i in range(n_gpus)}
        self.allocated = dict.fromkeys(range(n_gpus), 0)
        self.reserved = dict.fromkeys(range(n_gpus), 0)
        self.peak_allocated = dict.fromkeys(range(n_gpus), 0)
        self.peak_reserved = dict.fromkeys(range(n_gpus), 0)
        for fn in ("is_available", "device_count", "current_device", "set_device",
                   "get_device_name", "get_rng_state", "set_rng_state", "get_rng_state_all",
                   "set_rng_state_all", "empty_cache", "reset_peak_memory_stats",
                   "max_memory_allocated", "max_memory_reserved"):
            monkeypatch.setattr(torch.cuda, fn, getattr(self, fn))

    def _gpu(self, device=None) -> int:
        if isinstance(device, str):
            device = torch.device(device)
        index = device.index if isinstance(device, torch.device) else device
        index = self.current if index is None else index
        if not 0 <= index < self.n_gpus:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index} (this fake has {self.n_gpus} GPUs)")
        return index

    def _record(self, name: str, device=None) -> int:
        index = self._gpu(device)
        self.calls.append((name, index))
        return index

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    # --- devices ---
    def is_available(self) -> bool:
        return self.n_gpus > 0

    def device_count(self) -> int:
        return self.n_gpus

    def current_device(self) -> int:
        return self.current

    def set_device(self, device) -> None:
        self.current = self._record("set_device", device)

    def get_device_name(self, device=None) -> str:
        self._gpu(device)
        return self.name

    # --- random generators ---
    def get_rng_state(self, device="cuda") -> torch.Tensor:
        return self.rng[self._record("get_rng_state", device)].clone()

    def set_rng_state(self, state: torch.Tensor, device="cuda") -> None:
        self.rng[self._record("set_rng_state", device)] = state.clone()

    def get_rng_state_all(self) -> list[torch.Tensor]:
        self.calls.append(("get_rng_state_all", None))
        return [self.rng[i].clone() for i in range(self.n_gpus)]

    def set_rng_state_all(self, states) -> None:
        self.calls.append(("set_rng_state_all", None))
        for i, state in enumerate(states):
            self.rng[self._gpu(i)] = state.clone()

    # --- caching allocator: allocated <= reserved; freed blocks stay reserved until emptied ---
    def allocate(self, mib: float, device=None) -> None:
        index = self._gpu(device)
        self.allocated[index] += int(mib * MIB)
        self.reserved[index] = max(self.reserved[index], self.allocated[index])
        self.peak_allocated[index] = max(self.peak_allocated[index], self.allocated[index])
        self.peak_reserved[index] = max(self.peak_reserved[index], self.reserved[index])

    def free(self, mib: float, device=None) -> None:
        self.allocated[self._gpu(device)] -= int(mib * MIB)

    def empty_cache(self) -> None:
        self.calls.append(("empty_cache", None))
        self.reserved = dict(self.allocated)

    def reset_peak_memory_stats(self, device=None) -> None:
        index = self._record("reset_peak_memory_stats", device)
        self.peak_allocated[index] = self.allocated[index]
        self.peak_reserved[index] = self.reserved[index]

    def max_memory_allocated(self, device=None) -> int:
        return self.peak_allocated[self._gpu(device)]

    def max_memory_reserved(self, device=None) -> int:
        return self.peak_reserved[self._gpu(device)]
