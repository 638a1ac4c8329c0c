"""Shading: camera-space face normals and the Text2Mesh spherical-harmonic lighting."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from text2mesh.render.rasterize import Fragments

__all__ = ["TEXT2MESH_SH", "Lighting", "pixel_normals", "sh_basis", "sh_lighting", "shade"]

Lighting = Literal["sh", "unlit"]

TEXT2MESH_SH = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
"""The Text2Mesh demos' SH coefficients: ambient plus the three first-order terms."""


def sh_basis(normals: Tensor) -> Tensor:
    """Real spherical-harmonic basis up to order 2, in kaolin's band order.

    Order: 1, x, z, y, xy, yz, 3z^2-1, xz, x^2-y^2 (each with its normalization constant), i.e.
    the order kaolin's ``spherical_harmonic_lighting`` (used by the Text2Mesh reference)
    expects its 9 coefficients in.

    Args:
        normals: [..., 3] unit vectors.
    Returns:
        [..., 9]
    """
    x, y, z = normals.unbind(-1)
    c0, c1, c2 = 0.28209479177387814, 0.4886025119029199, 1.0925484305920792
    return torch.stack(
        [
            torch.full_like(x, c0),
            c1 * x,
            c1 * z,
            c1 * y,
            c2 * x * y,
            c2 * y * z,
            0.9461746957575601 * z * z - 0.31539156525252005,
            0.7725484040463791 * x * z,
            0.38627420202318956 * (x * x - y * y),
        ],
        dim=-1,
    )


def sh_lighting(normals: Tensor, coefficients: Tensor | tuple[float, ...] = TEXT2MESH_SH) -> Tensor:
    """Irradiance-like scalar lighting from spherical-harmonic coefficients.

    Args:
        normals: [..., 3] unit camera-space normals (+z points towards the camera).
        coefficients: [9] (see :func:`sh_basis` for the order).
    Returns:
        [...] lighting factor. With the default coefficients this is
        ``0.2821 + 0.4886 (x + y + z)``: 0.77 for a face looking straight at the camera.
    """
    coefficients = torch.as_tensor(coefficients, dtype=normals.dtype, device=normals.device)
    if coefficients[4:].any():
        return sh_basis(normals) @ coefficients
    c0, c1 = 0.28209479177387814, 0.4886025119029199
    first = normals @ coefficients[[1, 3, 2]]  # x, y, z weights
    return c0 * coefficients[0] + c1 * first


def pixel_normals(
    camera_vertices: Tensor, faces: Tensor, fragments: Fragments, two_sided: bool = True
) -> Tensor:
    """Unit camera-space normals of the visible face at each covered pixel.

    Args:
        camera_vertices: [B, V, 3] vertices in OpenGL camera space (camera at the origin).
        faces: [F, 3] int64, counter-clockwise seen from the outside.
        fragments: from :func:`text2mesh.render.rasterize`.
        two_sided: flip normals of faces seen from behind so they face the camera (open
            meshes are lit on both sides).
    Returns:
        [N, 3] in ``fragments.pixel_index`` order; differentiable wrt ``camera_vertices``.
    """
    num_vertices = camera_vertices.shape[1]
    corners = faces.index_select(0, fragments.pixel_face)
    rows = fragments.pixel_view[:, None] * num_vertices + corners
    tri = camera_vertices.reshape(-1, 3).index_select(0, rows.reshape(-1)).view(-1, 3, 3)
    v0, v1, v2 = tri.unbind(1)  # one backward for all three (not three image-sized ones)
    normal = torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)
    if two_sided:
        facing_away = (normal * v0).sum(-1, keepdim=True) > 0
        normal = torch.where(facing_away, -normal, normal)
    return torch.nn.functional.normalize(normal, dim=-1, eps=1e-20)


def shade(
    colors: Tensor,
    normals: Tensor,
    lighting: Lighting = "sh",
    coefficients: Tensor | tuple[float, ...] = TEXT2MESH_SH,
) -> Tensor:
    """Apply lighting to interpolated colours.

    Args:
        colors: [N, C] colours (C = 3 per pass; several passes may be concatenated).
        normals: [N, 3] unit camera-space normals (ignored for "unlit").
        lighting: "sh" multiplies the colour by :func:`sh_lighting` and clamps to [0, 1]
            (as Text2Mesh does); "unlit" returns the colours unchanged.
    Returns:
        [N, C]
    """
    if lighting == "unlit":
        return colors
    if lighting != "sh":
        raise ValueError(f"lighting must be 'sh' or 'unlit', got {lighting!r}")
    light = sh_lighting(normals, coefficients).to(colors.dtype)
    return (colors * light[:, None]).clamp(0.0, 1.0)
