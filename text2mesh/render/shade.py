"""Shading: camera-space face normals and the Text2Mesh spherical-harmonic lighting."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from text2mesh.render.rasterize import Fragments, cross_rows

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


def sh_lighting(
    normals: Tensor, coefficients: Tensor | tuple[float, ...] = TEXT2MESH_SH, dim: int = -1
) -> Tensor:
    """Irradiance-like scalar lighting from spherical-harmonic coefficients.

    Args:
        normals: unit camera-space normals (+z points towards the camera), their x, y, z
            along ``dim``: [..., 3] by default, [3, N] with ``dim=0``.
        coefficients: [9] (see :func:`sh_basis` for the order).
        dim: the dimension holding x, y, z.
    Returns:
        ``normals``' shape without ``dim``: the lighting factor. With the default
        coefficients this is ``0.2821 + 0.4886 (x + y + z)``: 0.77 for a face looking
        straight at the camera.
    """
    coefficients = torch.as_tensor(coefficients, dtype=normals.dtype, device=normals.device)
    if coefficients[4:].any():
        return sh_basis(normals.movedim(dim, -1)) @ coefficients
    c0, c1 = 0.28209479177387814, 0.4886025119029199
    rows = normals.movedim(dim, 0)  # [3, ...]
    first = (coefficients[[1, 3, 2]] @ rows.reshape(3, -1)).view(rows.shape[1:])  # x, y, z
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
        [3, N] (rows x, y, z) in ``fragments.pixel_index`` order; differentiable wrt the
        clip-space corners.
    """
    linear = projection[:, [0, 1, 3]]  # [B, 3, 4]
    if bool(linear[:, :, 3].any()):
        raise ValueError("projection must be perspective: rows x, y and w without translation")
    corners = fragments.pixel_corners  # (x, y, z, w) [3, N] each
    linear = linear[:, :, :3].to(corners[0])
    det = torch.linalg.det(linear)  # [B]
    to_camera = linear.mT / det[:, None, None]  # [B, 3, 3]: A^T / det A
    # (x, y, w) of the edges from corner 0, as [N] rows taken by unbinding (why: picking
    # single rows costs a zero-filled gradient buffer per pick on the way back; an unbind's
    # backward is one stack)
    (x0, x1, x2), (y0, y1, y2), _, (w0, w1, w2) = (c.unbind(0) for c in corners)
    first = (x1 - x0, y1 - y0, w1 - w0)
    second = (x2 - x0, y2 - y0, w2 - w0)
    clip_normal = torch.stack(cross_rows(first, second))  # [3, N]
    with torch.no_grad():
        shared = bool((to_camera == to_camera[:1]).all())  # one projection for every view
    if shared:
        normal = to_camera[0] @ clip_normal  # [3, N]
        det_at = det[:1].sign()
    else:
        # pixels come view after view (ascending pixel_index): one small product per view
        counts = torch.bincount(fragments.pixel_view, minlength=fragments.batch_size).tolist()
        normal = torch.cat(
            [m @ n for n, m in zip(clip_normal.split(counts, dim=1), to_camera, strict=True)],
            dim=1,
        )  # [3, N]
        det_at = det.sign().index_select(0, fragments.pixel_view)
    length_sq = (normal * normal).sum(0)  # [N]
    scale = length_sq.clamp_min(torch.finfo(normal.dtype).tiny).rsqrt()  # [N]
    if two_sided:
        # camera-space normal . corner = det[p_0, p_1, p_2] / det A, > 0 facing away; the
        # flip goes into the [N] scale rather than the [3, N] normals
        with torch.no_grad():
            at_corner = clip_normal[0] * x0 + clip_normal[1] * y0 + clip_normal[2] * w0
            facing_away = (at_corner * det_at) > 0
        scale = torch.where(facing_away, -scale, scale)
    return normal * scale


def shade(
    colors: Tensor,
    normals: Tensor,
    lighting: Lighting = "sh",
    coefficients: Tensor | tuple[float, ...] = TEXT2MESH_SH,
) -> Tensor:
    """Apply lighting to interpolated colours.

    Args:
        colors: [C, N] colours of N pixels (C = 3 per pass; several passes may be stacked).
        normals: [3, N] unit camera-space normals (ignored for "unlit").
        lighting: "sh" multiplies the colour by :func:`sh_lighting` and clamps to [0, 1]
            (as Text2Mesh does); "unlit" returns the colours unchanged.
    Returns:
        [C, N]
    """
    if lighting == "unlit":
        return colors
    if lighting != "sh":
        raise ValueError(f"lighting must be 'sh' or 'unlit', got {lighting!r}")
    light = sh_lighting(normals, coefficients, dim=0).to(colors.dtype)  # [N]
    return (colors * light).clamp(0.0, 1.0)
