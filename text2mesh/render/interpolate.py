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
    if faces is fragments.faces:  # their corners were gathered by rasterize
        corner = fragments.pixel_vertices  # [3, N]
    else:
        faces = faces.to(device=attributes.device, dtype=torch.int64)
        corner = faces.index_select(0, fragments.pixel_face).t()
    if attributes.dim() == 2:
        rows = corner
    elif attributes.dim() == 3:
        if attributes.shape[0] != fragments.batch_size:
            raise ValueError(
                f"attributes batch {attributes.shape[0]} != fragments batch {fragments.batch_size}"
            )
        rows = fragments.pixel_view[None] * attributes.shape[1] + corner
    else:
        raise ValueError(f"attributes must be [V, C] or [B, V, C], got {tuple(attributes.shape)}")
    channels = attributes.shape[-1]
    flat = attributes.reshape(-1, channels)
    values = flat.index_select(0, rows.reshape(-1)).view(3, -1, channels).unbind(0)
    # corner-major weighted sum (why: a third cheaper, forward and backward, than a batched
    # [N, 3, C] x [N, 3] product)
    bary = fragments.pixel_bary.t().to(flat.dtype).unbind(0)  # 3 x [N]
    out = values[0] * bary[0][:, None]
    for value, weight in zip(values[1:], bary[1:]):
        out = out + value * weight[:, None]
    return out


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
