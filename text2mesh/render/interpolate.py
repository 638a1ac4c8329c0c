"""Interpolation of per-vertex (or per-face) attributes over rasterized pixels.

Packed per-pixel values are channels first, [C, N] for the N covered pixels, like the
[B, C, H, W] images they become (why: every step takes columns, see
:func:`text2mesh.render.rasterize.take_columns`, and reduces over the short leading
dimension, both several times faster on CPU than with [N, C] rows, forward and backward).
"""

from __future__ import annotations

import torch
from torch import Tensor

from text2mesh.render.rasterize import Fragments, take_columns

__all__ = ["gather_face_values", "interpolate", "interpolate_packed", "unpack"]


def interpolate_packed(attributes: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Perspective-correct interpolation at the covered pixels only.

    Args:
        attributes: [V, C] shared by all views, or [B, V, C] per view; any float dtype.
        faces: [F, 3] int64 (the faces that were rasterized).
        fragments: from :func:`text2mesh.render.rasterize`.
    Returns:
        [C, N] values at the N covered pixels, in ``fragments.pixel_index`` order.
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
    columns = attributes.reshape(-1, channels).t()  # [C, V] (or [C, B*V])
    values = take_columns(columns, rows.reshape(-1)).view(channels, 3, -1)  # [C, 3, N]
    bary = fragments.pixel_bary.t().to(columns.dtype)  # [3, N]
    return (values * bary).sum(1)


def unpack(values: Tensor, fragments: Fragments, fill: float = 0.0) -> Tensor:
    """Packed per-pixel values -> images.

    Args:
        values: [C, N] values at ``fragments.pixel_index``.
        fill: value of background pixels.
    Returns:
        [B, H, W, C] (differentiable wrt ``values``; a channels-last view of channels-first
        memory).
    """
    height, width = fragments.image_size
    channels = values.shape[0]
    out = values.new_full((channels, fragments.num_pixels), fill)
    out = out.scatter(1, fragments.pixel_index.expand(channels, -1), values)
    return out.view(channels, fragments.batch_size, height, width).permute(1, 2, 3, 0)


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
        [C, N] in ``fragments.pixel_index`` order.
    """
    channels = face_values.shape[-1]
    rows = fragments.pixel_face
    if face_values.dim() == 3:
        rows = fragments.pixel_view * face_values.shape[1] + rows
    return take_columns(face_values.reshape(-1, channels).t(), rows)
