"""Cutouts: many random square sub-crops of a picture per step, at a scheduled range of scales.

CLIP sees a canvas through cutouts: large ones steer the composition, small ones add detail.
A :class:`CutoutSchedule` moves the range of cutout sizes from large (early steps) to small
(late steps); :func:`make_cutouts` cuts one batch, resized (with antialiasing) to CLIP's input.

Sizes are fractions of the picture's shorter side; a cutout of size s is a square of
``s * min(H, W)`` pixels placed uniformly at random inside the picture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["CutoutSchedule", "cutout_boxes", "make_cutouts"]


@dataclass(frozen=True)
class CutoutSchedule:
    """How many cutouts, and how large, at each point of a run.

    Attributes:
        n: cutouts per step (per picture).
        start: (smallest, largest) size at the first step, fractions of the shorter side.
        end: (smallest, largest) size at the last step.
        full: whether the first cutout of every step is the whole picture.
    """

    n: int = 16
    start: tuple[float, float] = (0.6, 1.0)
    end: tuple[float, float] = (0.2, 0.6)
    full: bool = True

    def scales(self, progress: float) -> tuple[float, float]:
        """The (smallest, largest) cutout size at ``progress`` in [0, 1] (linear in between)."""
        p = min(max(float(progress), 0.0), 1.0)
        lo = self.start[0] + (self.end[0] - self.start[0]) * p
        hi = self.start[1] + (self.end[1] - self.start[1]) * p
        return lo, max(hi, lo)


def cutout_boxes(
    n: int,
    scales: tuple[float, float],
    image_size: tuple[int, int],
    *,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random square boxes inside a picture.

    Args:
        n: number of boxes.
        scales: (smallest, largest) side as a fraction of the shorter side, in (0, 1].
        image_size: (H, W) of the picture.
    Returns:
        [n, 4] int64 boxes (top, left, side, side) in pixels, each fully inside the picture,
        with side >= 1.
    """
    height, width = image_size
    short = min(height, width)
    lo, hi = scales
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    side = ((lo + (hi - lo) * u[:, 0]) * short).round().clamp(1, short).long()
    top = (u[:, 1] * (height - side + 1)).floor().long()
    left = (u[:, 2] * (width - side + 1)).floor().long()
    return torch.stack([top, left, side, side], dim=1)


def make_cutouts(
    images: Tensor,
    n: int,
    out_size: tuple[int, int],
    scales: tuple[float, float],
    *,
    full: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Cut and resize random square crops.

    Args:
        images: [B, 3, H, W] or [3, H, W] float pictures.
        n: cutouts per picture.
        out_size: (h, w) of every cutout (CLIP's input size).
        scales: (smallest, largest) cutout side, fractions of the shorter side.
        full: make the first cutout of each picture the whole picture (resized, not cropped).
        generator: for the random boxes (one set of boxes shared by the B pictures).
    Returns:
        [B * n, 3, h, w] (picture-major: the n cutouts of picture 0 come first), differentiable
        wrt ``images``.
    """
    if images.dim() == 3:
        images = images[None]
    height, width = images.shape[-2:]
    boxes = cutout_boxes(n, scales, (height, width), generator=generator).tolist()
    crops = []
    for i, (top, left, h, w) in enumerate(boxes):
        crop = images if (full and i == 0) else images[:, :, top : top + h, left : left + w]
        crops.append(_resize(crop, out_size))
    return torch.stack(crops, dim=1).flatten(0, 1)


def _resize(images: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, 3, H, W] -> [B, 3, h, w] bilinear, antialiased when shrinking."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
