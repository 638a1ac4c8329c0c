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


def pixel_normals(fragments: Fragments, projection: Tensor, two_sided: bool = True) -> Tensor:
    """Unit camera-space normals of the visible face at each covered pixel.

    Found from the clip-space corners that rasterization gathered (why: no second gather of
    camera-space corners, and no second scatter of their gradients on the way back). A
    perspective projection maps camera-space ``(x, y, z)`` linearly to clip-space ``(x, y,
    w)`` by a 3x3 matrix ``A`` (its rows 0, 1 and 3 have no translation), and for corners
    ``p_i = A c_i`` the cross products of their edges obey ``(c_1 - c_0) x (c_2 - c_0) =
    A^T ((p_1 - p_0) x (p_2 - p_0)) / det A``.

    Args:
        fragments: from :func:`text2mesh.render.rasterize` (its ``pixel_corners``).
        projection: [B, 4, 4] the cameras' perspective projections (camera -> clip space).
        two_sided: flip normals of faces seen from behind so they face the camera (open
            meshes are lit on both sides).
    Returns:
        [N, 3] in ``fragments.pixel_index`` order; differentiable wrt the clip-space corners.
    """
    linear = projection[:, [0, 1, 3]]  # [B, 3, 4]
    if bool(linear[:, :, 3].any()):
        raise ValueError("projection must be perspective: rows x, y and w without translation")
    corners = fragments.pixel_corners
    linear = linear[:, :, :3].to(corners)
    det = torch.linalg.det(linear)  # [B]
    to_camera = linear.mT / det[:, None, None]  # [B, 3, 3]: A^T / det A
    # (x, y, w) of the edges from corner 0, by matrix products and a whole-corner unbind
    # (why: picking single coordinates of single corners costs a zero-filled gradient buffer
    # per pick on the way back, 9 of them; these backward passes fill nothing)
    pick = corners.new_zeros(4, 3)
    pick[[0, 1, 3], [0, 1, 2]] = 1.0
    p0, p1, p2 = corners.unbind(0)  # [N, 4] each
    clip_normal = torch.linalg.cross((p1 - p0) @ pick, (p2 - p0) @ pick, dim=1)  # [N, 3]
    with torch.no_grad():
        shared = bool((to_camera == to_camera[:1]).all())  # one projection for every view
    if shared:
        normal = clip_normal @ to_camera[0].mT  # [N, 3]
        det_at = det[:1].sign()
    else:
        # pixels come view after view (ascending pixel_index): one small product per view
        counts = torch.bincount(fragments.pixel_view, minlength=fragments.batch_size).tolist()
        normal = torch.cat(
            [n @ m.mT for n, m in zip(clip_normal.split(counts), to_camera, strict=True)]
        )  # [N, 3]
        det_at = det.sign().index_select(0, fragments.pixel_view)
    # squared lengths as a matrix product (why: a sum over a dimension of 3 is slower on CPU)
    length_sq = (normal * normal) @ normal.new_ones(3)
    scale = length_sq.clamp_min(torch.finfo(normal.dtype).tiny).rsqrt()  # [N]
    if two_sided:
        # camera-space normal . corner = det[p_0, p_1, p_2] / det A, > 0 facing away; the
        # flip goes into the [N] scale rather than the [N, 3] normals
        with torch.no_grad():
            facing_away = ((clip_normal * (p0 @ pick)).sum(1) * det_at) > 0
        scale = torch.where(facing_away, -scale, scale)
    return normal * scale[:, None]


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
