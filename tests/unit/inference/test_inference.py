"""predict_tiles: the same probabilities as a plain per-batch loop, in input order."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dedl_experiments.inference.tiled import predict_tiles


def test_predict_tiles_matches_a_plain_loop() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    tiles = np.random.default_rng(0).random((7, 1, 16, 16), dtype=np.float32)
    got = predict_tiles(net, tiles, [0.3], [0.2], 3, torch.device("cpu"))
    with torch.no_grad():
        want = torch.softmax(net((torch.from_numpy(tiles) - 0.3) / 0.2), dim=1)[:, 1].numpy()
    assert got.shape == (7, 16, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
