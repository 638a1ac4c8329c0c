"""Interpolation of per-vertex (or per-face) attributes over rasterized pixels."""

from __future__ import annotations

import torch
from torch import Tensor

from text2mesh.render.rasterize import Fragments

__all__ = ["gather_face_values", "interpolate", "interpolate_packed", "unpack"]


def interpolate_packed(attributes: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Perspective-correct interpolation at the covered pixels only.

    Args:
        attributes: [V, C] shared by all views, or [B, V, C] per view; any float dtype.
        faces: [F, 3] int64 (the faces that were rasterized).
        fragments: from :func:`text2mesh.render.rasterize`.
    Returns:
        [N, C] values at the N covered pixels, in ``fragments.pixel_index`` order.
        Differentiable wrt ``attributes`` and (through the barycentrics) vertex positions.
    """
    faces = faces.to(device=attributes.device, dtype=torch.int64)
    corner = faces.index_select(0, fragments.pixel_face)  # [N, 3]
    if attributes.dim() == 2:
        values = attributes.index_select(0, corner.reshape(-1))
    elif attributes.dim() == 3:
        if attributes.shape[0] != fragments.batch_size:
            raise ValueError(
                f"attributes batch {attributes.shape[0]} != fragments batch {fragments.batch_size}"
            )
        num_vertices = attributes.shape[1]
        rows = fragments.pixel_view[:, None] * num_vertices + corner
        values = attributes.reshape(-1, attributes.shape[-1]).index_select(0, rows.reshape(-1))
    else:
        raise ValueError(f"attributes must be [V, C] or [B, V, C], got {tuple(attributes.shape)}")
    values = values.view(-1, 3, attributes.shape[-1])
    bary = fragments.pixel_bary.to(values.dtype)
    return torch.einsum("nkc,nk->nc", values, bary)


def unpack(values: Tensor, fragments: Fragments, fill: float = 0.0) -> Tensor:
    """Packed per-pixel values -> images.

    Args:
        values: [N, C] values at ``fragments.pixel_index``.
        fill: value of background pixels.
    Returns:
        [B, H, W, C] (differentiable wrt ``values``).
    """
    height, width = fragments.image_size
    num_pixels = fragments.batch_size * height * width
    out = values.new_full((num_pixels, values.shape[1]), fill)
    out.index_put_((fragments.pixel_index,), values)
    return out.view(fragments.batch_size, height, width, values.shape[1])


def interpolate(attributes: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Perspective-correct interpolation of vertex attributes into images.

    Args:
        attributes: [V, C] shared by all views, or [B, V, C] per view.
        faces: [F, 3] int64.
        fragments: from :func:`text2mesh.render.rasterize`.
    Returns:
        [B, H, W, C], 0 on background pixels.
    """
    return unpack(interpolate_packed(attributes, faces, fragments), fragments)


def gather_face_values(face_values: Tensor, fragments: Fragments) -> Tensor:
    """Per-face values at the covered pixels (flat shading).

    Args:
        face_values: [F, C] or [B, F, C].
    Returns:
        [N, C] in ``fragments.pixel_index`` order.
    """
    if face_values.dim() == 2:
        return face_values.index_select(0, fragments.pixel_face)
    num_faces = face_values.shape[1]
    rows = fragments.pixel_view * num_faces + fragments.pixel_face
    return face_values.reshape(-1, face_values.shape[-1]).index_select(0, rows)
