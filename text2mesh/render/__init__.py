"""Differentiable mesh rendering in pure PyTorch (CPU and CUDA).

Four small composable steps, chained by :class:`Renderer`::

    fragments = rasterize(clip_vertices, faces, (H, W))     # which face, where, how deep
    colors = interpolate(vertex_colors, faces, fragments)    # [B, H, W, C]
    image = antialias(image, fragments)                      # silhouette gradients
    rgb = composite(rgb, alpha, background)

The Renderer itself works on the covered pixels only, channels first: ``interpolate_packed``,
``pixel_normals`` and ``shade`` give [C, N] values for the N covered pixels, which
``unpack_blend`` turns into antialiased [B, C, H, W] images.
"""

from text2mesh.render.antialias import antialias, face_neighbors, mesh_edges
from text2mesh.render.composite import composite
from text2mesh.render.interpolate import (
    gather_face_values,
    interpolate,
    interpolate_packed,
    unpack,
)
from text2mesh.render.rasterize import (
    Fragments,
    camera_centers,
    face_orientation,
    is_closed_and_oriented,
    rasterize,
)
from text2mesh.render.renderer import Renderer, RenderOutput, transform_vertices
from text2mesh.render.shade import (
    TEXT2MESH_SH,
    pixel_normals,
    sh_basis,
    sh_lighting,
    shade,
)

__all__ = [
    "TEXT2MESH_SH",
    "Fragments",
    "RenderOutput",
    "Renderer",
    "antialias",
    "camera_centers",
    "composite",
    "face_neighbors",
    "face_orientation",
    "gather_face_values",
    "interpolate",
    "interpolate_packed",
    "is_closed_and_oriented",
    "mesh_edges",
    "pixel_normals",
    "rasterize",
    "sh_basis",
    "sh_lighting",
    "shade",
    "transform_vertices",
    "unpack",
]
