"""The flat grid scene the 2D mode renders a canvas through (not a generator).

:class:`CanvasScene` is the degenerate mesh scene of ``imagine``: a flat grid mesh facing one
fixed camera, coloured by a canvas's texture and drawn by the shared renderer's
rasterize/interpolate ops, unlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..render import Fragments, composite, interpolate, rasterize, transform_vertices
from ..views import Cameras, cameras_from_angles
from .base import plane_points

__all__ = ["CanvasScene", "canvas_scene", "grid_faces"]

HAIR = 1e-3  # pixels: offset of the canvas grid from the render's pixel centres


@dataclass(frozen=True)
class CanvasScene:
    """The 2D mode as a mesh scene: a flat grid mesh in front of one fixed camera.

    The grid has one vertex per texture pixel, at the pixel's centre on the picture plane
    (see :func:`~text2mesh.generators.base.plane_points`) up to a thousandth of a pixel (so no pixel centre lies on an
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
