"""The ``pixels`` generator: a free colour grid (a pyramid of them) at a low resolution, smoothly
(bicubically) upsampled."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Canvas, working_size

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["LR", "PixelCanvas", "build"]

LR = 0.05


class PixelCanvas(Canvas):
    """A free colour grid at low resolution, bicubically upsampled in logit space.

    With ``levels`` > 1 the grid is a pyramid: the logits are the sum of grids at the given
    resolution, half of it, a quarter, ... (at least 1x1), each upsampled to the picture. Adam
    moves every grid at the same pace, so the coarse ones (the overall colour, large areas)
    change as readily as the fine ones.

    Args:
        resolution: (h, w) of the finest parameter grid.
        levels: number of pyramid levels (1: one plain grid).
        init: optional [3, H, W] init image; the grids then hold an offset to it (zeros at start).
        noise: std of the random initial logits of the finest grid without an init image
            (0: plain grey).
        generator: CPU random source for the initial logits.
    """

    kind = "pixels"

    def __init__(
        self,
        resolution: tuple[int, int],
        *,
        levels: int = 1,
        init: Tensor | None = None,
        noise: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(init)
        grids = []
        for k in range(max(1, levels)):
            shape = (3, max(1, resolution[0] >> k), max(1, resolution[1] >> k))
            start = torch.zeros(shape)
            if k == 0 and init is None and noise > 0:
                start = torch.randn(shape, generator=generator) * noise
            grids.append(nn.Parameter(start))
        self.grids = nn.ParameterList(grids)

    def logits(self, size: tuple[int, int]) -> Tensor:
        """The summed pyramid at ``size``: [3, H, W] logits (before any init image)."""
        total = None
        for grid in self.grids:
            up = grid
            if tuple(grid.shape[-2:]) != tuple(size):
                up = F.interpolate(grid[None], size=size, mode="bicubic", align_corners=False)[0]
            total = up if total is None else total + up
        return total

    def texture(self, size: tuple[int, int], progress: float = 1.0) -> Tensor:
        logits = self.logits(size)
        base = self.base_logits(size)
        return torch.sigmoid(logits if base is None else base + logits)


def build(cfg: Config, init: Tensor | None, generator: torch.Generator) -> PixelCanvas:
    """The run's pixel canvas: its finest grid has ``imagine.pixel_resolution`` cells along the
    working picture's shorter side (at most one per pixel)."""
    im = cfg.imagine
    height, width = working_size(cfg)
    short = min(height, width)
    if im.pixel_resolution < 1:
        raise ConfigError(f"imagine.pixel_resolution must be at least 1, got {im.pixel_resolution}")
    res = min(im.pixel_resolution, short)
    grid = (max(1, round(height * res / short)), max(1, round(width * res / short)))
    return PixelCanvas(grid, levels=im.pixel_levels, init=init, generator=generator)
