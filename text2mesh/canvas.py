"""Canvases of the 2D mode: pictures the shared optimization loop can optimize.

A canvas is an ``nn.Module`` whose parameters define a picture; ``canvas.texture((H, W))``
draws it at any size as a [3, H, W] image in [0, 1] (row 0 at the top). Three generators:

- :class:`FieldCanvas` -- the style field (:class:`~text2mesh.field.StyleField`) evaluated at
  the points of a flat grid (the picture plane ``z = 0``);
- :class:`PixelCanvas` -- a free colour grid at a low resolution, smoothly (bicubically)
  upsampled;
- :class:`StrokeCanvas` -- a list of brush strokes drawn by :mod:`text2mesh.strokes`.

All three can start from an init image. The field and pixel canvases then draw
``sigmoid(logit(init) + offset)`` where the generator's offset is exactly zero before the first
step, so an untouched canvas IS the init image; the stroke canvas paints over it, each stroke
starting in the colour under it.

:class:`CanvasScene` is the degenerate mesh scene the 2D mode is rendered through: a flat grid
mesh facing one fixed camera, coloured by a texture and drawn by the shared renderer's
rasterize/interpolate ops, unlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import FieldConfig
from .field import StyleField
from .render import Fragments, composite, interpolate, rasterize, transform_vertices
from .strokes import Strokes, paint_in_order, random_strokes, render_strokes
from .views import Cameras, cameras_from_angles

__all__ = [
    "Canvas",
    "CanvasScene",
    "FieldCanvas",
    "PixelCanvas",
    "StrokeCanvas",
    "canvas_scene",
    "plane_points",
    "resize_image",
]

_EPS = 1e-4
COLOR_GAIN = 10.0  # stroke colour/opacity logits are stored divided by this
WIDTH_GAIN = 3.0  # stroke log widths are stored divided by this
FIELD_CHUNK = 65536  # points per field evaluation when drawing without gradients
HAIR = 1e-3  # pixels: offset of the canvas grid from the render's pixel centres


def resize_image(image: Tensor, size: tuple[int, int]) -> Tensor:
    """[3, H, W] -> [3, h, w], bilinear with antialiasing (identity when the size matches)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    out = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False, antialias=True)
    return out[0]


def _logit(image: Tensor) -> Tensor:
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
    """Base class: a parametrized picture.

    Subclasses implement :meth:`texture`; :meth:`perturb` moves the parameters a little (for
    ``vary``); the ``init`` buffer ([3, H, W] or None) is the init image, saved with the
    parameters in ``state_dict``.
    """

    kind: str = ""

    def __init__(self, init: Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("init", None if init is None else init.detach().float().clone())

    def base_logits(self, size: tuple[int, int]) -> Tensor | None:
        """logit(init image) at ``size`` ([3, H, W]), or None without an init image."""
        if self.init is None:
            return None
        return _logit(resize_image(self.init, size))

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


class FieldCanvas(Canvas):
    """The style field over the picture plane (colour head only).

    An untrained style field is plain grey; without an init image the colour head's last
    layer starts with random weights instead, scaled so the colours before the final tanh
    vary over the picture with mean 0 and std ``noise``: the picture starts as colour noise
    (at the field's own frequencies) around grey. (From a uniform grey, a
    small CLIP's gradient can point away from the prompt's colour; from a varied picture it
    tells more.)

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
        return torch.sigmoid(base + _logit(image))


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
        segments, softness: see :func:`text2mesh.strokes.render_strokes`.
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
        self.color_logits = nn.Parameter(_logit(colors) / COLOR_GAIN)
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


@dataclass(frozen=True)
class CanvasScene:
    """The 2D mode as a mesh scene: a flat grid mesh in front of one fixed camera.

    The grid has one vertex per texture pixel, at the pixel's centre on the picture plane
    (see :func:`plane_points`) up to a thousandth of a pixel (so no pixel centre lies on an
    edge, and the border pixels are covered); the camera sees exactly the picture, so an
    unlit render reproduces the texture. Nothing in the scene moves, so it is rasterized once
    (:func:`text2mesh.render.rasterize`) and every render only interpolates the texture's
    colours over the stored fragments (:func:`text2mesh.render.interpolate`).

    Attributes:
        vertices: [H*W, 3] float32 grid vertices.
        faces: [F, 3] int64, two triangles per grid cell, counter-clockwise seen from the camera.
        cameras: one camera on +z looking at the picture.
        size: (H, W) of textures and renders.
        fragments: the scene's rasterization by ``cameras``.
    """

    vertices: Tensor
    faces: Tensor
    cameras: Cameras
    size: tuple[int, int]
    fragments: Fragments

    def colors(self, texture: Tensor) -> Tensor:
        """[3, H, W] texture -> [H*W, 3] vertex colours."""
        return texture.reshape(3, -1).T

    def render(self, texture: Tensor, background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> Tensor:
        """Draw the grid coloured by ``texture`` ([3, H, W]), unlit -> [1, 3, H, W] in its dtype.

        Differentiable wrt ``texture``; pixels no triangle covers (none, by construction)
        would show ``background``.
        """
        rgb = interpolate(self.colors(texture), self.faces, self.fragments)  # [1, H, W, 3]
        covered = (self.fragments.face_index >= 0)[..., None].to(rgb.dtype)
        return composite(rgb, covered, background).permute(0, 3, 1, 2)


def grid_faces(height: int, width: int, *, device="cpu") -> Tensor:
    """[2 * (H-1) * (W-1), 3] int64 triangles of an (H, W) row-major vertex grid (rows downward)."""
    idx = torch.arange(height * width, device=device).reshape(height, width)
    tl, tr = idx[:-1, :-1].reshape(-1), idx[:-1, 1:].reshape(-1)
    bl, br = idx[1:, :-1].reshape(-1), idx[1:, 1:].reshape(-1)
    upper = torch.stack([tl, bl, tr], dim=-1)
    lower = torch.stack([tr, bl, br], dim=-1)
    return torch.cat([upper, lower], dim=0)


def canvas_scene(
    size: tuple[int, int], *, radius: float = 2.0, fov_degrees: float = 60.0, device="cpu"
) -> CanvasScene:
    """The flat grid scene for (H, W) textures and renders.

    The camera sits at distance ``radius`` on +z; the picture plane is scaled so it exactly
    fills the camera's view.
    """
    height, width = size
    half_height = radius * math.tan(math.radians(fov_degrees) / 2.0)
    points = plane_points(size, dtype=torch.float32, device=device)
    # Pixel centres would fall exactly on vertices (ties in the rasterizer). Stretch the grid
    # by HAIR pixel per side and shift it by HAIR / 2 pixel right and HAIR / 4 pixel up: every
    # render pixel centre is then strictly inside a triangle, within 2 * HAIR pixel of its own
    # vertex (colour error < 0.2% of the local contrast). The rasterizer is watertight in
    # float32, so float32 vertices are enough.
    pixel = torch.tensor([2.0 * width / height / width, 2.0 / height, 0.0], dtype=torch.float32)
    stretch = torch.tensor(
        [1.0 + 2.0 * HAIR / max(width - 1, 1), 1.0 + 2.0 * HAIR / max(height - 1, 1), 1.0],
        dtype=torch.float32,
    )
    shift = pixel * torch.tensor([HAIR / 2, HAIR / 4, 0.0], dtype=torch.float32)
    vertices = (points * stretch.to(device) + shift.to(device)) * half_height
    azimuth = torch.tensor([math.pi / 2], device=device)
    elevation = torch.zeros(1, device=device)
    cameras = cameras_from_angles(
        azimuth, elevation, radius=radius, fov_degrees=fov_degrees, image_size=(height, width)
    )
    faces = grid_faces(height, width, device=device)
    with torch.no_grad():
        clip_vertices = transform_vertices(vertices, cameras)
        fragments = rasterize(clip_vertices, faces, (height, width))
    return CanvasScene(vertices, faces, cameras, (height, width), fragments)
