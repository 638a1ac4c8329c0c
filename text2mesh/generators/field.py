"""The ``field`` generator: the style field (:class:`~text2mesh.field.StyleField`) evaluated at
the points of a flat grid (the picture plane ``z = 0``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..config import FieldConfig
from ..field import StyleField
from .base import Canvas, clamped_logit, plane_points

if TYPE_CHECKING:
    from ..config import Config

__all__ = ["LR", "FieldCanvas", "build"]

# Adam moves every weight of the field by about lr a step, and the noise-initialized colour head
# (FieldCanvas) turns that into large colour changes: at the stylizer's 5e-4 the picture
# saturates to a corner of the RGB cube in one step and its tanh leaves no gradient (measured
# with the tiny CLIP, "a red image", 128x128: magenta from step 1; at 3e-5 red leads by 0.66
# after 150 steps, the picture varies and the loss still moves).
LR = 3e-5
FIELD_CHUNK = 65536  # points per field evaluation when drawing without gradients


class FieldCanvas(Canvas):
    """The style field over the picture plane (colour head only).

    An untrained style field is plain grey; without an init image the colour head's last
    layer starts with random weights instead, scaled so the colours before the final tanh
    vary over the picture with mean 0 and std ``noise``: the picture starts as colour noise
    (at the field's own frequencies) around grey. (From a uniform grey, a
    small CLIP's gradient can point away from the prompt's colour; from a varied picture it
    tells more.) With an init image it draws ``sigmoid(logit(init) + logit(field))``, and the
    untouched field is exactly grey (logit 0), so the untouched canvas IS the init image.

    Args:
        cfg: field settings (displacement is ignored here).
        init: optional [3, H, W] init image in [0, 1]; the untouched canvas is exactly it.
        noise: spread of the initial colours without an init image (0: plain grey; 0.25 gives
            colours of about 0.5 +- 0.12).
        generator: CPU random source for the field's weights and frequencies.
    """

    kind = "field"

    def __init__(
        self,
        cfg: FieldConfig,
        *,
        init: Tensor | None = None,
        noise: float = 0.25,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(init)
        self.field = StyleField(cfg, generator=generator)
        if init is None and noise > 0 and cfg.colors:
            self._colour_noise(noise, generator)

    @torch.no_grad()
    def _colour_noise(self, noise: float, generator: torch.Generator | None) -> None:
        last = self.field.color_head[-1]  # a zero-initialized Linear
        last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * 1e-3)
        colors = self.field(plane_points((32, 32)))[0]
        pre = torch.atanh((2 * colors - 1).clamp(-0.999, 0.999))  # [P, 3], linear regime
        scale = noise / pre.std(dim=0).clamp_min(1e-12)  # per channel
        last.weight.mul_(scale[:, None])
        last.bias.copy_(-pre.mean(dim=0) * scale)  # grey on average

    def texture(self, size: tuple[int, int], progress: float = 1.0) -> Tensor:
        device = next(self.field.parameters()).device
        points = plane_points(size, device=device)
        if torch.is_grad_enabled():
            colors = self.field(points, progress)[0]  # [H*W, 3]; 0.5 grey before training
        else:  # large pictures: bounded memory
            colors = torch.cat([self.field(chunk, progress)[0] for chunk in points.split(FIELD_CHUNK)])
        image = colors.T.reshape(3, *size)
        base = self.base_logits(size)
        if base is None:
            return image
        return torch.sigmoid(base + clamped_logit(image))


def build(cfg: Config, init: Tensor | None, generator: torch.Generator) -> FieldCanvas:
    """The run's field canvas (``cfg.field``'s settings)."""
    return FieldCanvas(cfg.field, init=init, generator=generator)
