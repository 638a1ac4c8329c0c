"""What every 2D generator shares: the :class:`Canvas` interface, the picture sizes a run asks
for, and small image helpers.

A canvas is an ``nn.Module`` whose parameters define a picture; ``canvas.texture((H, W))``
draws it at any size as a [3, H, W] image in [0, 1] (row 0 at the top). Canvases can start
from an init image, kept in the ``init`` buffer (saved with the parameters in ``state_dict``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import MAX_IMAGE_SIDE
from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["Canvas", "clamped_logit", "output_size", "plane_points", "resize_image", "working_size"]

_EPS = 1e-4


def output_size(cfg: Config) -> tuple[int, int]:
    """(H, W) of the final picture from ``imagine.size`` = [width, height]; ConfigError if bad."""
    size = list(cfg.imagine.size)
    if len(size) != 2 or not all(isinstance(v, int) and 1 <= v <= MAX_IMAGE_SIDE for v in size):
        raise ConfigError(f"--size needs two whole numbers WIDTH HEIGHT between 1 and {MAX_IMAGE_SIDE}, got {size}")
    width, height = size
    return height, width


def working_size(cfg: Config) -> tuple[int, int]:
    """(H, W) of the picture while optimizing: the output size, shrunk so its shorter side is at
    most ``imagine.render_size`` (same aspect ratio)."""
    height, width = output_size(cfg)
    if cfg.imagine.render_size < 8:
        raise ConfigError(f"imagine.render_size must be at least 8, got {cfg.imagine.render_size}")
    scale = min(1.0, cfg.imagine.render_size / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """[3, H, W] -> [3, h, w], bilinear with antialiasing (identity when the size matches)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0]


def clamped_logit(image: Tensor) -> Tensor:
    """logit of values in [0, 1] (any shape), clamped away from 0 and 1 so it stays finite."""
    return torch.logit(image.clamp(_EPS, 1.0 - _EPS))


def plane_points(size: tuple[int, int], *, dtype=torch.float32, device="cpu") -> Tensor:
    """Pixel centres of an (H, W) picture on the plane z = 0.

    The picture spans y in [-1, 1] (up) and x in [-W/H, W/H], so a picture's content does not
    depend on its resolution, only on its aspect ratio.

    Returns:
        [H * W, 3] points, row-major from the top-left pixel.
    """
    height, width = size
    aspect = width / height
    ys = 1.0 - (torch.arange(height, dtype=dtype, device=device) + 0.5) * (2.0 / height)
    xs = (-1.0 + (torch.arange(width, dtype=dtype, device=device) + 0.5) * (2.0 / width)) * aspect
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y, torch.zeros_like(grid_x)], dim=-1).reshape(-1, 3)


class Canvas(nn.Module):
    """Base class: a parametrized picture the optimization loop can optimize.

    ``parameters()`` are what the loop moves; subclasses implement :meth:`texture`;
    :meth:`perturb` moves the parameters a little (for ``vary``); ``state_dict`` (the
    parameters and the ``init`` buffer, [3, H, W] or None: the init image) is what checkpoints
    hold; ``kind`` is the generator's registry name.
    """

    kind: str = ""

    def __init__(self, init: Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("init", None if init is None else init.detach().float().clone())

    def base_logits(self, size: tuple[int, int]) -> Tensor | None:
        """logit(init image) at ``size`` ([3, H, W]), or None without an init image."""
        if self.init is None:
            return None
        return clamped_logit(resize_image(self.init, size))

    def texture(self, size: tuple[int, int], progress: float = 1.0) -> Tensor:
        """The picture at ``size`` = (H, W): [3, H, W] float in [0, 1], differentiable."""
        raise NotImplementedError

    @torch.no_grad()
    def perturb(self, strength: float, generator: torch.Generator | None = None) -> None:
        """Add Gaussian noise of ``strength`` times each parameter tensor's spread (0: no-op)."""
        if strength == 0:
            return
        for param in self.parameters():
            spread = param.std().clamp_min(0.05) if param.numel() > 1 else 0.05
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(noise.to(param.device) * spread * strength)
