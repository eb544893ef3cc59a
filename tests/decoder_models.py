"""A small stand-in for a user's image decoder, shared by the decoder tests."""
from __future__ import annotations

import torch


class LinearImageDecoder(torch.nn.Module):
    """8-d embedding -> 1 x height x width image in [0, 1] (NCHW); TorchScript-able, seeded weights."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(8, height * width)
        self.height = height
        self.width = width

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).reshape(-1, 1, self.height, self.width)
