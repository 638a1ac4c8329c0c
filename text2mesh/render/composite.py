"""Compositing premultiplied colour over a background."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["composite"]


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
    bg = torch.as_tensor(background, dtype=rgb.dtype, device=rgb.device)
    if bg.shape != (3,):
        raise ValueError(f"background must be 3 numbers (r, g, b), got shape {tuple(bg.shape)}")
    return torch.addcmul(rgb, 1 - alpha, bg)
