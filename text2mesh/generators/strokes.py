"""The ``strokes`` generator: brush strokes (:mod:`text2mesh.generators.brush`) painted over a
background colour or the init image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .base import Canvas, clamped_logit, resize_image
from .brush import Strokes, paint_in_order, random_strokes, render_strokes

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["LR", "StrokeCanvas", "build"]

LR = 0.01
COLOR_GAIN = 10.0  # stroke colour/opacity logits are stored divided by this
WIDTH_GAIN = 3.0  # stroke log widths are stored divided by this


class StrokeCanvas(Canvas):
    """Brush strokes painted over a background colour or the init image.

    Parameters (unconstrained, mapped in :meth:`strokes`): control points (clamped to a margin
    around the picture), log widths / WIDTH_GAIN, colour and opacity logits / COLOR_GAIN. The
    gains make one Adam learning rate suit them all: a step that moves a point by 1% of the
    picture changes a colour logit by 0.1 and a width by 3%.

    Args:
        n_strokes: number of strokes.
        width_range: (min, max) initial brush widths, fractions of the shorter side.
        max_width: widths never exceed this.
        background: RGB colour under the strokes when there is no init image.
        init: optional [3, H, W] init image: painted under the strokes, and each stroke starts
            with the init image's colour at its first control point.
        segments, softness: see :func:`text2mesh.generators.brush.render_strokes`.
        generator: CPU random source for the initial strokes.
    """

    kind = "strokes"

    def __init__(
        self,
        n_strokes: int,
        *,
        width_range: tuple[float, float] = (0.02, 0.08),
        max_width: float = 0.3,
        background: tuple[float, float, float] = (1.0, 1.0, 1.0),
        init: Tensor | None = None,
        segments: int = 12,
        softness: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(init)
        start = random_strokes(n_strokes, width_range=tuple(width_range), generator=generator)
        colors = start.colors
        if init is not None:
            h, w = init.shape[-2:]
            px = (start.points[:, 0, 0] * (w - 1)).round().long()
            py = (start.points[:, 0, 1] * (h - 1)).round().long()
            colors = init[:, py, px].T.float()
        self.points = nn.Parameter(start.points)
        self.log_widths = nn.Parameter(start.widths.log() / WIDTH_GAIN)
        self.color_logits = nn.Parameter(clamped_logit(colors) / COLOR_GAIN)
        self.opacity_logits = nn.Parameter(torch.full((n_strokes,), 2.0 / COLOR_GAIN))
        self.max_width = max_width
        self.segments = segments
        self.softness = softness
        self.register_buffer("background", torch.tensor(background, dtype=torch.float32))

    def strokes(self) -> Strokes:
        """The current strokes (differentiable wrt the parameters)."""
        return Strokes(
            points=self.points.clamp(-0.1, 1.1),
            widths=(self.log_widths * WIDTH_GAIN).exp().clamp(max=self.max_width),
            colors=torch.sigmoid(self.color_logits * COLOR_GAIN),
            opacities=torch.sigmoid(self.opacity_logits * COLOR_GAIN),
        )

    def _background(self, size: tuple[int, int]) -> Tensor:
        """What the strokes are painted on: the init image at ``size`` ([3, H, W]) or the [3] colour."""
        if self.init is not None:
            return resize_image(self.init, size)
        return self.background

    def texture(self, size: tuple[int, int], progress: float = 1.0, n: int | None = None) -> Tensor:
        """The painting at ``size``; ``n`` paints only the first n strokes (animations)."""
        strokes = self.strokes()
        if n is not None:
            strokes = strokes[: max(int(n), 0)]
        return render_strokes(
            strokes, size, self._background(size), segments=self.segments, softness=self.softness
        )

    def painting_frames(self, size: tuple[int, int], counts: list[int]) -> Tensor:
        """[K, 3, H, W]: the painting after the first ``counts[k]`` strokes (ascending)."""
        return paint_in_order(self.strokes(), size, self._background(size), counts,
                              segments=self.segments, softness=self.softness)


def build(cfg: Config, init: Tensor | None, generator: torch.Generator) -> StrokeCanvas:
    """The run's stroke canvas: ``imagine.n_strokes`` strokes of ``imagine.stroke_width`` over
    ``render.background``."""
    im = cfg.imagine
    if im.n_strokes < 1:
        raise ConfigError(f"imagine.n_strokes must be at least 1, got {im.n_strokes}")
    lo, hi = im.stroke_width
    return StrokeCanvas(im.n_strokes, width_range=(lo, hi), background=tuple(cfg.render.background), init=init,
                        generator=generator)
