"""The piano mask network: a frequency-strided U-Net around a dilated temporal conv stack.

It sees only a bounded window of frames (RECEPTIVE_FRAMES each side), so the runtime can
split long audio block by block with that much context and get the same result as one pass.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from separation.piano import BINS

DILATIONS = (1, 2, 4, 8)
KERNEL = 3
CHANNELS = (8, 12, 16, 24, 32)  # per U-Net level, from full frequency resolution down
USED_BINS = BINS - 1  # 1024: halves cleanly at every level
# frames each side that reach one output: 3x3 stem, each down and up conv, the temporal stack
RECEPTIVE_FRAMES = 1 + 2 * (len(CHANNELS) - 1) + sum(DILATIONS) * (KERNEL // 2)


class FrameNorm(nn.Module):
    """LayerNorm over channels of each frame: no statistics across time, so windows agree."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return out


class Block(nn.Module):
    """Pre-norm residual block: dilated conv over time, GELU, pointwise conv."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.norm = FrameNorm(channels)
        self.temporal = nn.Conv1d(
            channels, channels, KERNEL, dilation=dilation, padding=dilation * (KERNEL // 2)
        )
        self.pointwise = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.pointwise(nn.functional.gelu(self.temporal(self.norm(x))))
        out: Tensor = x + h
        return out


class Down(nn.Module):
    """Halve the frequency axis with a 3x3 conv (time resolution kept), then GELU."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(inputs, outputs, 3, stride=(2, 1), padding=1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = nn.functional.gelu(self.conv(x))
        return out


class Up(nn.Module):
    """Double the frequency axis, add the encoder's skip, then a 3x3 conv and GELU."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.grow = nn.ConvTranspose2d(inputs, outputs, (2, 1), stride=(2, 1))
        self.conv = nn.Conv2d(outputs, outputs, 3, padding=1)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        out: Tensor = nn.functional.gelu(self.conv(self.grow(x) + skip))
        return out


class PianoMaskNet(nn.Module):
    """Magnitudes [B, 2·S, BINS, T] of S stems -> piano masks [B, 2·S, BINS, T] in [0, 1].

    One mask per stem and channel: the piano is the sum of the masked stems, so piano that
    the 4-stem network put into bass or vocals can be taken back. A U-Net that strides over
    frequency only (local spectral shapes: harmonics, onsets, decays, shared across pitch)
    around a temporal conv stack on the coarsest level.
    """

    def __init__(self, hidden: int = 256, sources: int = 1) -> None:
        super().__init__()
        channels = 2 * sources
        self.shift = nn.Parameter(torch.full((1, channels, USED_BINS, 1), 4.0))
        self.scale = nn.Parameter(torch.full((1, channels, USED_BINS, 1), 0.25))
        self.stem = nn.Conv2d(channels, CHANNELS[0], 3, padding=1)
        pairs = list(itertools.pairwise(CHANNELS))
        self.downs = nn.ModuleList(Down(a, b) for a, b in pairs)
        self.ups = nn.ModuleList(Up(b, a) for a, b in reversed(pairs))
        coarse = CHANNELS[-1] * (USED_BINS >> len(pairs))
        self.encode = nn.Conv1d(coarse, hidden, 1)
        self.blocks = nn.Sequential(*(Block(hidden, d) for d in DILATIONS))
        self.norm = FrameNorm(hidden)
        self.decode = nn.Conv1d(hidden, coarse, 1)
        self.head = nn.Conv2d(CHANNELS[0], channels, 1)

    def forward(self, magnitude: Tensor) -> Tensor:
        x = torch.log(magnitude[:, :, :USED_BINS] + 1e-5)
        x = nn.functional.gelu(self.stem((x + self.shift) * self.scale))
        skips = []
        for down in self.downs:
            skips.append(x)
            x = down(x)
        batch, channels, bins, frames = x.shape
        h = self.blocks(self.encode(x.reshape(batch, channels * bins, frames)))
        x = x + self.decode(nn.functional.gelu(self.norm(h))).reshape(x.shape)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            x = up(x, skip)
        mask = torch.sigmoid(self.head(x))
        # the Nyquist bin takes the mask of the bin below it
        return torch.cat([mask, mask[:, :, -1:]], dim=2)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
