"""Compositing premultiplied colour over a background."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["background_color", "composite"]


def composite(rgb: Tensor, alpha: Tensor, background: Sequence[float] | Tensor | None) -> Tensor:
    """Put premultiplied colour over a background.

    Args:
        rgb: [..., 3] premultiplied colour (colour * coverage).
        alpha: [..., 1] coverage in [0, 1].
        background: (r, g, b) in [0, 1] (or a [3] tensor), or None to keep the premultiplied
            colour (transparent background; use ``alpha`` to composite later).
    Returns:
        [..., 3] ``rgb + (1 - alpha) * background``, or ``rgb`` when background is None.
    """
    if background is None:
        return rgb
    return torch.addcmul(rgb, 1 - alpha, background_color(background, rgb))


def background_color(background: Sequence[float] | Tensor, like: Tensor) -> Tensor:
    """(r, g, b) -> [3] tensor with ``like``'s dtype and device; ValueError if not 3 numbers."""
    bg = torch.as_tensor(background, dtype=like.dtype, device=like.device)
    if bg.shape != (3,):
        raise ValueError(f"background must be 3 numbers (r, g, b), got shape {tuple(bg.shape)}")
    return bg
