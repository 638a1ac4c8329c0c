"""Cameras: look-at and perspective matrices, front-view sampling, orbits, batched.

Conventions (those of the reference Text2Mesh code, so its view centres carry over):
world y is up; a camera at azimuth ``a`` and elevation ``e`` on a sphere of radius ``r``
sits at ``r * (cos e cos a, sin e, cos e sin a)`` and looks at ``target``. So azimuth 0 looks
from +x, azimuth pi/2 from +z (the front of a y-up mesh facing +z). Camera space is OpenGL's:
the camera looks down -z, x right, y up; clip space maps the visible frustum to [-1, 1]^3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Cameras:
    """A batch of B perspective cameras.

    Attributes:
        world_to_camera: [B, 4, 4] rigid transforms (world -> OpenGL camera space).
        projection: [B, 4, 4] perspective matrices (camera -> clip space).
        eye: [B, 3] camera positions in world space.
        image_size: (height, width) in pixels of the images these cameras produce.
    """

    world_to_camera: Tensor
    projection: Tensor
    eye: Tensor
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return self.world_to_camera.shape[0]

    @property
    def full_transform(self) -> Tensor:
        """[B, 4, 4] world -> clip space (projection @ world_to_camera)."""
        return self.projection @ self.world_to_camera

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(
            self.world_to_camera.to(device),
            self.projection.to(device),
            self.eye.to(device),
            self.image_size,
        )

    def __getitem__(self, index) -> Cameras:
        """Select cameras by index/slice/mask (keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Cameras(
            self.world_to_camera[index], self.projection[index], self.eye[index], self.image_size
        )


def look_at(eye: Tensor, target: Tensor, up: Tensor | None = None) -> Tensor:
    """World -> camera transforms for cameras at ``eye`` looking at ``target``.

    Args:
        eye: [B, 3] camera positions.
        target: [B, 3] or [3] points looked at.
        up: [3] world up direction (default +y). When a view direction is parallel to ``up``
            (camera straight above/below), +z is used as up for that camera instead.
    Returns:
        [B, 4, 4] rigid transforms in eye.dtype (OpenGL camera: looks down -z).
    """
    target = target.expand_as(eye)
    if up is None:
        up = torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype, device=eye.device)
    forward = torch.nn.functional.normalize(target - eye, dim=-1)
    up_b = up.to(eye).expand_as(eye)
    parallel = torch.linalg.cross(forward, up_b).norm(dim=-1, keepdim=True) < 1e-6
    alt_up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device).expand_as(eye)
    up_b = torch.where(parallel, alt_up, up_b)
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up_b), dim=-1)
    true_up = torch.linalg.cross(right, forward)
    rotation = torch.stack([right, true_up, -forward], dim=-2)  # rows: camera axes in world
    translation = -(rotation @ eye.unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype, device=eye.device)
    out[:, :3, :3] = rotation
    out[:, :3, 3] = translation
    out[:, 3, 3] = 1.0
    return out


def perspective(
    fov_y: float,
    aspect: float = 1.0,
    near: float = 0.1,
    far: float = 100.0,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """OpenGL perspective projection.

    Args:
        fov_y: vertical field of view in radians.
        aspect: width / height of the image.
        near, far: clipping distances (> 0).
    Returns:
        [4, 4] matrix mapping camera space to clip space (w = -z_camera).
    """
    f = 1.0 / math.tan(fov_y / 2.0)
    m = torch.zeros(4, 4, dtype=dtype, device=device)
    m[0, 0] = f / aspect
    m[1, 1] = f
    m[2, 2] = (far + near) / (near - far)
    m[2, 3] = 2.0 * far * near / (near - far)
    m[3, 2] = -1.0
    return m


def eye_from_angles(azimuth: Tensor, elevation: Tensor, radius: float | Tensor) -> Tensor:
    """Camera positions on a sphere (reference convention, see module docstring).

    Args:
        azimuth, elevation: [B] angles in radians.
        radius: scalar or [B].
    Returns:
        [B, 3] positions.
    """
    return torch.stack(
        [
            radius * torch.cos(elevation) * torch.cos(azimuth),
            radius * torch.sin(elevation),
            radius * torch.cos(elevation) * torch.sin(azimuth),
        ],
        dim=-1,
    )


def cameras_from_angles(
    azimuth: Tensor,
    elevation: Tensor,
    *,
    radius: float = 2.0,
    fov_degrees: float = 60.0,
    image_size: tuple[int, int] = (224, 224),
    target: Tensor | None = None,
    near: float = 0.05,
    far: float = 100.0,
) -> Cameras:
    """Cameras orbiting ``target`` (default the origin) at the given angles.

    Args:
        azimuth, elevation: [B] radians (float tensors; their device/dtype is used).
        radius: distance to the target.
        fov_degrees: vertical field of view.
        image_size: (height, width).
    Returns:
        Cameras with B entries.
    """
    if target is None:
        target = torch.zeros(3, dtype=azimuth.dtype, device=azimuth.device)
    eye = eye_from_angles(azimuth, elevation, radius) + target
    height, width = image_size
    proj = perspective(
        math.radians(fov_degrees),
        width / height,
        near,
        far,
        dtype=azimuth.dtype,
        device=azimuth.device,
    )
    world_to_camera = look_at(eye, target)
    return Cameras(world_to_camera, proj.expand(len(azimuth), 4, 4).clone(), eye, image_size)


def sample_front_views(
    n_views: int,
    center_azimuth: float,
    center_elevation: float,
    std: float,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """The reference's view sampling: the first view at the centre, the others jittered.

    Elevation ~ N(center_elevation, pi / std), azimuth ~ N(center_azimuth, 2 pi / std)
    (standard deviations, as in the reference code). Elevation is clamped to +-89 degrees.

    Returns:
        (azimuth [n_views], elevation [n_views]) in radians.
    """
    noise = torch.randn(2, max(n_views - 1, 0), generator=generator, dtype=torch.float64)
    azim = torch.cat([torch.zeros(1, dtype=torch.float64), noise[0] * (2 * math.pi / std)])
    elev = torch.cat([torch.zeros(1, dtype=torch.float64), noise[1] * (math.pi / std)])
    azim = (azim + center_azimuth)[:n_views]
    elev = (elev + center_elevation)[:n_views].clamp(-math.radians(89), math.radians(89))
    return azim.to(device=device, dtype=dtype), elev.to(device=device, dtype=dtype)


def orbit_views(
    n_views: int,
    elevation: float = 0.0,
    start_azimuth: float = math.pi / 2,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[Tensor, Tensor]:
    """Evenly spaced views around the object (turntables, evaluation, 'orbit' mode).

    Returns:
        (azimuth [n_views], elevation [n_views]) in radians, starting at ``start_azimuth``.
    """
    azim = start_azimuth + torch.arange(n_views, dtype=torch.float64) * (2 * math.pi / n_views)
    elev = torch.full((n_views,), float(elevation), dtype=torch.float64)
    return azim.to(device=device, dtype=dtype), elev.to(device=device, dtype=dtype)
