"""Baking a mesh's colours into a UV texture: unwrap with xatlas, fill texels, dilate seams.

The pipeline, each step a function:

1. :func:`unwrap` — xatlas cuts the surface into charts and packs them into the unit square.
   Vertices on chart seams are duplicated; faces keep their order.
2. :func:`rasterize_uv` — every texel whose centre lies inside a triangle of the UV layout gets
   that face's index and the texel centre's barycentric coordinates.
3. A :data:`SurfaceColorFn` turns (face, barycentrics) into colours. :func:`vertex_color_fn`
   interpolates vertex colours; :func:`field_color_fn` evaluates a style field at the texel's
   surface point, so the texture holds detail finer than the mesh's vertices.
4. :func:`fill_empty` gives every uncovered texel the colour of the nearest covered one, so
   bilinear filtering and mipmaps never pull background colour across seams.

UV convention (OBJ's and trimesh's): ``v = 0`` is the bottom row of the image, image row 0
is the top (``v = 1``). Texel ``(row, col)`` has its centre at
``u = (col + 0.5) / N``, ``v = 1 - (row + 0.5) / N``. glTF flips ``v``; the GLB writer does that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage

SurfaceColorFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(face_index [K] int64, bary [K, 3] float32) -> colours [K, 3] float in [0, 1]."""

_MAX_CANDIDATES = 1 << 21  # texel candidates tested per batch of faces (bounds memory)


@dataclass(frozen=True)
class BakedTexture:
    """A mesh split at UV seams, with its texture.

    Attributes:
        vertices: [V', 3] float32 positions (copies of input vertices; V' >= V).
        faces: [F, 3] int64 indices into ``vertices``, same order as the input faces.
        uv: [V', 2] float32 texture coordinates in [0, 1] (OBJ convention, see module doc).
        vertex_map: [V'] int64 index of the input vertex each output vertex copies.
        image: [N, N, 3] uint8 sRGB texture, row 0 at the top (``v = 1``).
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    vertex_map: np.ndarray
    image: np.ndarray


def unwrap(
    vertices: np.ndarray, faces: np.ndarray, resolution: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV-parametrize a triangle mesh with xatlas, packed for a ``resolution``² texture.

    Args:
        vertices: [V, 3] float positions.
        faces: [F, 3] integer indices.
        resolution: texture size in texels; charts keep a 2-texel gap at this size.
    Returns:
        (vertex_map [V'] int64, faces [F, 3] int64 into the new vertices, uv [V', 2] float32).
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = 2
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    vertex_map, new_faces, uv = atlas[0]
    return vertex_map.astype(np.int64), new_faces.astype(np.int64), uv.astype(np.float32)


def rasterize_uv(
    uv: np.ndarray, faces: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Find the texels whose centres lie inside each triangle of a UV layout.

    Args:
        uv: [V, 2] texture coordinates in [0, 1] (OBJ convention).
        faces: [F, 3] int64 indices into ``uv``.
        size: texture size N (square).
    Returns:
        texel [K] int64 flat index ``row * N + col``; face_index [K] int64;
        bary [K, 3] float32 barycentric coordinates of the texel centre in that face.
        A texel on an edge shared by two faces may appear twice (either entry is right).
    """
    pixel = np.stack([uv[:, 0] * size - 0.5, (1.0 - uv[:, 1]) * size - 0.5], axis=-1).astype(np.float64)
    corners = pixel[faces]  # [F, 3, 2] (x = col, y = row)
    lo = np.clip(np.ceil(corners.min(axis=1) - 1e-6), 0, size - 1).astype(np.int64)
    hi = np.clip(np.floor(corners.max(axis=1) + 1e-6), 0, size - 1).astype(np.int64)
    extent = np.maximum(hi - lo + 1, 0)
    counts = extent[:, 0] * extent[:, 1]
    ends = np.cumsum(counts)
    out: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    start = 0
    while start < len(faces):
        budget = ends[start] - counts[start] + _MAX_CANDIDATES
        stop = max(int(np.searchsorted(ends, budget, side="right")), start + 1)
        out.append(_texels_in_faces(corners, lo, extent, counts, start, min(stop, len(faces)), size))
        start = stop
    if not out:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.float32)
    texel, face_index, bary = (np.concatenate(parts) for parts in zip(*out))
    return texel, face_index, bary


def _texels_in_faces(corners, lo, extent, counts, start, stop, size):
    """Test every texel centre in the bounding boxes of faces ``start:stop`` (see rasterize_uv)."""
    face_index = np.repeat(np.arange(start, stop), counts[start:stop])
    first = np.repeat(np.cumsum(counts[start:stop]) - counts[start:stop], counts[start:stop])
    local = np.arange(len(face_index)) - first
    width = extent[face_index, 0]
    col = lo[face_index, 0] + local % np.maximum(width, 1)
    row = lo[face_index, 1] + local // np.maximum(width, 1)
    a, b, c = (corners[face_index, k] for k in range(3))
    e1, e2 = b - a, c - a
    px, py = col - a[:, 0], row - a[:, 1]
    det = e1[:, 0] * e2[:, 1] - e2[:, 0] * e1[:, 1]
    safe = np.where(np.abs(det) > 1e-12, det, 1.0)
    w1 = (px * e2[:, 1] - e2[:, 0] * py) / safe
    w2 = (e1[:, 0] * py - px * e1[:, 1]) / safe
    bary = np.stack([1.0 - w1 - w2, w1, w2], axis=-1)
    inside = (np.abs(det) > 1e-12) & (bary >= -1e-6).all(axis=-1)
    texel = row * size + col
    return texel[inside], face_index[inside], bary[inside].astype(np.float32)


def vertex_color_fn(colors: np.ndarray, faces: np.ndarray) -> SurfaceColorFn:
    """Colours by barycentric interpolation of vertex colours.

    Args:
        colors: [V, 3] float colours in [0, 1].
        faces: [F, 3] int64 indices into ``colors`` (the faces the rasterizer reports).
    """
    colors = np.asarray(colors, np.float32)

    def color(face_index: np.ndarray, bary: np.ndarray) -> np.ndarray:
        return np.einsum("kc,kcd->kd", bary, colors[faces[face_index]])

    return color


def field_color_fn(
    field: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
    points: np.ndarray | torch.Tensor,
    faces: np.ndarray,
    chunk: int = 65536,
) -> SurfaceColorFn:
    """Colours from a style field evaluated at each texel's surface point.

    Args:
        field: module mapping xyz [K, 3] to a tuple whose first entry is colours [K, 3] in
            [0, 1] (a StyleField); called under ``torch.no_grad`` in chunks of ``chunk`` points.
        points: [V, 3] the positions the field was trained on (the undisplaced, normalized
            mesh), one per vertex of ``faces``.
        faces: [F, 3] int64 indices into ``points``.
    """
    points = torch.as_tensor(np.asarray(points), dtype=torch.float32)
    faces_t = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
    parameters = field.parameters() if isinstance(field, torch.nn.Module) else iter(())
    device = next((parameter.device for parameter in parameters), torch.device("cpu"))

    def color(face_index: np.ndarray, bary: np.ndarray) -> np.ndarray:
        corners = points[faces_t[torch.as_tensor(face_index)]]  # [K, 3, 3]
        xyz = torch.einsum("kc,kcd->kd", torch.as_tensor(bary), corners)
        with torch.no_grad():
            parts = [field(part.to(device))[0].float().cpu() for part in xyz.split(chunk)]
        return torch.cat(parts).clamp(0, 1).numpy() if parts else np.zeros((0, 3), np.float32)

    return color


def fill_empty(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Give every uncovered texel the value of the nearest covered texel (seam dilation).

    Args:
        image: [N, N, C] texture.
        covered: [N, N] bool, True where a triangle wrote the texel.
    Returns:
        [N, N, C] texture with no uncovered texels left (unchanged if none is covered).
    """
    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def bake_texture(
    vertices: np.ndarray,
    faces: np.ndarray,
    colors: np.ndarray | None,
    size: int,
    color_fn: SurfaceColorFn | None = None,
) -> BakedTexture:
    """Unwrap a mesh and bake its colours into a ``size``² texture.

    Args:
        vertices: [V, 3] float positions.
        faces: [F, 3] integer indices.
        colors: [V, 3] float vertex colours in [0, 1], used when ``color_fn`` is None.
        size: texture width and height in texels.
        color_fn: colours at (face of the *input* ``faces``, barycentrics); face indices and
            barycentrics are the same for the input mesh and its seam-split copy.
    Returns:
        BakedTexture.
    """
    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int64)
    if color_fn is None:
        if colors is None:
            raise ValueError("bake_texture needs colors or color_fn")
        color_fn = vertex_color_fn(np.asarray(colors, np.float32), faces)
    vertex_map, split_faces, uv = unwrap(vertices, faces, size)
    texel, face_index, bary = rasterize_uv(uv, split_faces, size)
    flat = np.full((size * size, 3), 0.5, np.float32)
    flat[texel] = color_fn(face_index, bary)
    covered = np.zeros(size * size, bool)
    covered[texel] = True
    image = fill_empty(flat.reshape(size, size, 3), covered.reshape(size, size))
    image = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return BakedTexture(vertices[vertex_map], split_faces, uv, vertex_map, image)
