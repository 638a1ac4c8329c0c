"""Rasterization: which triangle is visible at each pixel, and where on it.

The visibility search is not differentiable and runs under ``torch.no_grad``; the barycentrics
and depth of the winning triangle are then recomputed from ``clip_vertices`` with autograd, so
gradients reach vertex positions exactly as in nvdiffrast's ``rasterize`` (the image changes
smoothly inside triangles; silhouettes are handled by :func:`text2mesh.render.antialias`).

Method (vectorized, no Python loop over faces or pixels):

1. Edge functions. For triangles entirely in front of the camera (nearly all), 2D edge
   functions from the vertices' pixel positions; 1 / w and z / w are linear in screen space,
   giving the perspective-correct view depth and the near/far test. For triangles crossing
   the camera plane, homogeneous 2D rasterization (Olano & Greer): with ``p_i = (x_i, y_i,
   w_i)`` the clip coordinates of the vertices, ``e_i(X, Y) = (X, Y, 1) . (p_j x p_k)`` are
   linear in the pixel's NDC position, need no division by w (so no clipping), and
   ``w = det / sum(e)`` is the view depth.
2. Watertightness: every triangle's coefficients are relative to its own pixel box, and each
   edge function is accepted down to a tolerance of 16 ulps of its terms (about 1e-5 pixel
   for pixel-sized triangles), so neighbouring triangles overlap by a sliver the depth test
   resolves and a closed surface never shows holes, even with pixel centres on vertices or
   shared edges in float32 (the float32 result equals the float64 one on the benchmark mesh).
3. Each triangle's pixel bounding box comes from its polygon clipped to the near plane; the
   first pixel of every box is tested directly, the other (view, face, pixel) candidates are
   enumerated in chunks of at most ``max_candidates`` (bounded memory for 1M faces or
   1024x1024 images). Optionally (``cull``), faces turned away are left out before any of
   this, where that cannot change the picture (see :func:`face_orientation`).
4. The depth test is a ``scatter_reduce(amin)`` over 64-bit keys ``depth_bits << 32 | face``
   (positive float32 bit patterns sort like the floats), ties broken by the lower face index.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

__all__ = [
    "Fragments",
    "camera_centers",
    "face_orientation",
    "is_closed_and_oriented",
    "pixel_centers_ndc",
    "rasterize",
]

_EMPTY_KEY = torch.iinfo(torch.int64).max
_FACE_BITS = 32
_FACE_MASK = (1 << _FACE_BITS) - 1
DEFAULT_MAX_CANDIDATES = 1 << 21


@dataclass(frozen=True)
class Fragments:
    """What :func:`rasterize` found, per pixel; row 0 is the top of the image.

    Attributes (``bary`` and ``depth`` are computed from the packed fields on first use):
        face_index: [B, H, W] int64, index of the visible face, -1 for background.
        bary: [B, H, W, 3] float, perspective-correct barycentrics of the visible face
            (0 for background); differentiable wrt ``clip_vertices``.
        depth: [B, H, W] float, view depth ``w`` (distance along the camera's viewing axis,
            the clip-space w) of the visible point; 0 for background. Differentiable.
        pixel_index: [N] int64, flat indices into B*H*W of the N covered pixels (ascending).
        pixel_face: [N] int64, visible face of each covered pixel.
        pixel_bary: [N, 3] float, barycentrics of each covered pixel (packed ``bary``).
        pixel_depth: [N] float, view depth of each covered pixel (packed ``depth``).
        clip_vertices: [B, V, 4] the rasterized clip-space vertices (used by antialiasing).
        faces: [F, 3] int64 vertex indices of the triangles.
        front_facing: [B, H, W] bool, True where the visible face is counter-clockwise on
            screen (seen from the side its winding's normal points to); False on background.
        face_orientation: [B, F] int8 per view: 1 counter-clockwise on screen, -1 clockwise,
            0 unknown (a vertex behind the camera plane) or degenerate.
    """

    face_index: Tensor
    pixel_index: Tensor
    pixel_face: Tensor
    pixel_bary: Tensor
    pixel_depth: Tensor
    clip_vertices: Tensor
    faces: Tensor
    front_facing: Tensor
    face_orientation: Tensor

    @cached_property
    def bary(self) -> Tensor:
        return self._dense(self.pixel_bary)

    @cached_property
    def depth(self) -> Tensor:
        return self._dense(self.pixel_depth[:, None])[..., 0]

    def _dense(self, values: Tensor) -> Tensor:
        """[N, C] packed values -> [B, H, W, C] with zeros on background (differentiable)."""
        height, width = self.image_size
        out = values.new_zeros(self.batch_size * height * width, values.shape[1])
        out.index_put_((self.pixel_index,), values)
        return out.view(self.batch_size, height, width, values.shape[1])

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.face_index.shape[1]), int(self.face_index.shape[2])

    @property
    def batch_size(self) -> int:
        return int(self.face_index.shape[0])

    @property
    def mask(self) -> Tensor:
        """[B, H, W] bool, True where a face is visible."""
        return self.face_index >= 0

    @property
    def pixel_view(self) -> Tensor:
        """[N] int64, view (batch) index of each covered pixel."""
        height, width = self.image_size
        return torch.div(self.pixel_index, height * width, rounding_mode="floor")


def pixel_centers_ndc(
    pixel_index: Tensor, image_size: tuple[int, int], dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """NDC coordinates of pixel centres.

    Args:
        pixel_index: [N] int64 flat indices into B*H*W.
        image_size: (H, W).
    Returns:
        (X [N], Y [N]) in ``dtype``; X grows to the right, Y grows upwards (row 0 at Y ~ +1).
    """
    height, width = image_size
    within = pixel_index % (height * width)
    row = torch.div(within, width, rounding_mode="floor")
    col = within - row * width
    x = (2 * col + 1).to(dtype) / width - 1
    y = 1 - (2 * row + 1).to(dtype) / height
    return x, y


def rasterize(
    clip_vertices: Tensor,
    faces: Tensor,
    image_size: tuple[int, int],
    *,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
    orientation: Tensor | None = None,
    cull: Tensor | None = None,
) -> Fragments:
    """Find the visible triangle, its barycentrics and depth at every pixel centre.

    Args:
        clip_vertices: [B, V, 4] float32/float64 clip-space positions (OpenGL: x right, y up,
            visible where -w <= x, y, z <= w). Gradients flow into them through ``bary`` and
            ``depth``.
        faces: [F, 3] int64 (int32 accepted) vertex indices.
        image_size: (H, W) in pixels.
        max_candidates: at most this many (view, face, pixel) candidates are held in memory
            at once; lower it to save memory, raise it for fewer chunks.
        orientation: None, or [B, F] int8 screen orientation of every face (1 counter-clockwise,
            -1 clockwise), e.g. from :func:`face_orientation`, which is far cheaper than
            finding it from the projected vertices (done when None). Faces with a vertex behind
            the near plane are set to 0 (unknown) in :attr:`Fragments.face_orientation`.
        cull: None, or [B, F] bool faces turned away from each camera (``back`` from
            :func:`face_orientation`), left out of the views in which every vertex is in
            front of the near plane. Only for a closed, consistently oriented mesh
            (:func:`is_closed_and_oriented`): there no face turned away can be the nearest
            surface seen from outside. It halves the work.
    Returns:
        :class:`Fragments`. Faces with zero projected area, triangles entirely behind the
        near plane or outside the view, and non-finite vertices are never drawn; triangles
        crossing the near plane are drawn where they are in front of it.
    """
    clip_vertices, faces, image_size = _check_inputs(clip_vertices, faces, image_size)
    batch = clip_vertices.shape[0]
    height, width = image_size
    with torch.no_grad():
        keys, orientation = _depth_test(
            clip_vertices.detach(), faces, image_size, max_candidates, orientation, cull
        )
        pixel_index = torch.nonzero(keys != _EMPTY_KEY).squeeze(1)
        pixel_face = keys.index_select(0, pixel_index) & _FACE_MASK
    pixel_bary, pixel_depth, pixel_front = _pixel_bary_depth(
        clip_vertices, faces, pixel_index, pixel_face, image_size
    )
    num_pixels = batch * height * width
    face_index = torch.full((num_pixels,), -1, dtype=torch.int64, device=faces.device)
    face_index[pixel_index] = pixel_face
    front_facing = torch.zeros(num_pixels, dtype=torch.bool, device=faces.device)
    front_facing[pixel_index] = pixel_front
    return Fragments(
        face_index=face_index.view(batch, height, width),
        pixel_index=pixel_index,
        pixel_face=pixel_face,
        pixel_bary=pixel_bary,
        pixel_depth=pixel_depth,
        clip_vertices=clip_vertices,
        faces=faces,
        front_facing=front_facing.view(batch, height, width),
        face_orientation=orientation,
    )


def is_closed_and_oriented(faces: Tensor) -> bool:
    """Whether every edge joins exactly two faces that traverse it in opposite directions.

    Args:
        faces: [F, 3] int64.
    Returns:
        True for a closed, consistently oriented (manifold-edged) triangle mesh.
    """
    if faces.shape[0] == 0:
        return False
    start = faces.reshape(-1)
    end = faces.roll(-1, dims=1).reshape(-1)
    size = int(faces.max()) + 1
    ordered = torch.sort(start * size + end).values
    if bool((ordered[1:] == ordered[:-1]).any()):
        return False
    return bool(torch.isin(end * size + start, ordered).all())


def camera_centers(world_to_camera: Tensor) -> Tensor:
    """World positions of cameras from their rigid world -> camera transforms.

    Args:
        world_to_camera: [B, 4, 4].
    Returns:
        [B, 3] ``-R^T t``, the point the transforms send to the camera-space origin.
    """
    rotation = world_to_camera[:, :3, :3]
    translation = world_to_camera[:, :3, 3:]
    return -(rotation.mT @ translation).squeeze(-1)


def face_orientation(vertices: Tensor, faces: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Screen orientation of every face in every view, and the faces seen from inside.

    Found in world space, without projecting anything (why: this is a small matrix product,
    where the screen-space test gathers three projected corners per face and view): a
    triangle is counter-clockwise on screen exactly when the camera centre ``c`` lies on the
    side its winding's normal ``n = (v1 - v0) x (v2 - v0)`` points to, ``n . (c - v0) > 0``.

    ``back`` marks the faces that can be left out of a closed, consistently oriented mesh
    (:func:`is_closed_and_oriented`) seen from outside, i.e. with every vertex in front of
    the near plane (:func:`rasterize` checks this per view): the nearest surface along any
    ray is then a face turned towards the camera. Faces turned away are those clockwise on
    screen when the mesh's signed volume is positive (outward winding) and counter-clockwise
    when it is negative. A face is only marked when the sign is certain, i.e. ``|n . (c - v0)|`` is far
    above its rounding error (faces seen edge-on are always drawn). A mesh made of several
    closed parts of which some are inside-out is not detected; such a part would be drawn
    from its far side.

    Args:
        vertices: [V, 3] world positions; faces: [F, 3] int64.
        centers: [B, 3] camera centres in world space (:func:`camera_centers`).
    Returns:
        (orientation [B, F] int8: 1 counter-clockwise on screen, -1 clockwise, 0 seen exactly
        edge-on; back [B, F] bool).
    """
    if faces.shape[0] == 0:
        empty = torch.zeros(centers.shape[0], 0, dtype=torch.int8, device=faces.device)
        return empty, empty.bool()
    with torch.no_grad():
        points = vertices.detach().t().contiguous()  # [3, V]
        v0, v1, v2 = (points.index_select(1, faces[:, i]) for i in range(3))  # [3, F] each
        first, second = v1 - v0, v2 - v0
        a1, a2, a3 = first
        b1, b2, b3 = second
        normal = torch.stack([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1])  # [3, F]
        offset = (normal * v0).sum(0)  # n . v0; sums to 6x the signed volume
        facing = torch.addmm(-offset, centers.to(normal), normal)  # [B, F] n . (c - v0)
        # rounding bound: |n| may be off by eps |first| |second| (slivers), times |c - v0|
        reach = float(centers.norm(dim=1).max() + points.abs().amax(1).norm())
        lengths = (first * first).sum(0).mul_((second * second).sum(0)).sqrt_()
        tolerance = lengths.mul_(reach * 1e-4)
        if float(offset.sum()) >= 0:
            back = facing < -tolerance
        else:
            back = facing > tolerance
        return torch.sign(facing).to(torch.int8), back


def _check_inputs(
    clip_vertices: Tensor, faces: Tensor, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, tuple[int, int]]:
    if clip_vertices.dim() != 3 or clip_vertices.shape[-1] != 4:
        raise ValueError(f"clip_vertices must be [B, V, 4], got {tuple(clip_vertices.shape)}")
    if not clip_vertices.is_floating_point():
        raise ValueError("clip_vertices must be a floating-point tensor")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be [F, 3], got {tuple(faces.shape)}")
    if faces.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"faces must be int32 or int64, got {faces.dtype}")
    faces = faces.to(device=clip_vertices.device, dtype=torch.int64)
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= clip_vertices.shape[1]):
        raise ValueError("faces index vertices that do not exist")
    height, width = (int(s) for s in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if clip_vertices.dtype in (torch.float16, torch.bfloat16):
        clip_vertices = clip_vertices.float()
    return clip_vertices, faces, (height, width)


def _edge_coefficients(tri: Tensor, image_size: tuple[int, int], boxes: Tensor) -> Tensor:
    """Scan coefficients from clip coordinates (for triangles crossing the camera plane).

    The homogeneous edge functions need no division by w, so they also work for triangles
    with vertices behind the camera. They are computed in float64: in float32 the cross
    products of nearby vertices lose up to ~0.05 pixel, leaving gaps between neighbouring
    triangles. Relative to each triangle's box they are then evaluated accurately in the
    input dtype, with the tolerance of :func:`_add_tolerance`.

    Args:
        tri: [4, 3, T] clip-space triangles, component-major (x, y, z, w rows; corners).
        boxes: [4, T] int64 pixel boxes (col0, row0, n_cols, n_rows) from :func:`_pair_boxes`.
    Returns:
        [16, T] in tri's dtype: rows 0-3, 4-7, 8-11 are a, b, c of the four functions e_0,
        e_1, e_2 and zn (the NDC-depth numerator), each ``a * col_in + b * row_in + c`` at the
        pixel (row0 + row_in, col0 + col_in); row 12 is |det|; rows 13-15 a, b, c of
        ``q = e_0 + e_1 + e_2`` before the tolerance, so the view depth is ``w = |det| / q``.
        Signs are flipped where det < 0, so a pixel is covered when e_i >= 0,
        -|det| <= zn <= |det| and q > 0.
    """
    height, width = image_size
    dtype = tri.dtype
    x, y, z, w = tri.double().unbind(0)  # each [3, T]; x[i] is corner i
    m = [_cross(x, y, w, (i + 1) % 3, (i + 2) % 3) for i in range(3)]  # (mx, my, mz) per edge
    det = x[0] * m[0][0] + y[0] * m[0][1] + w[0] * m[0][2]
    m.append(tuple(z[0] * m[0][c] + z[1] * m[1][c] + z[2] * m[2][c] for c in range(3)))
    sign = torch.where(det < 0, -1.0, 1.0).to(det.dtype)
    sx, sy = sign * (2.0 / width), sign * (-2.0 / height)
    col0, row0, n_cols, n_rows = boxes.to(det.dtype)
    a = [mx * sx for mx, _, _ in m]
    b = [my * sy for _, my, _ in m]
    c = [
        (mx * (1.0 / width - 1.0) + my * (1.0 - 1.0 / height) + mz) * sign + ai * col0 + bi * row0
        for (mx, my, mz), ai, bi in zip(m, a, b)
    ]
    inverse_depth = [a[0] + a[1] + a[2], b[0] + b[1] + b[2], c[0] + c[1] + c[2]]
    out = torch.stack([*a, *b, *c, det.abs(), *inverse_depth])
    edges = out[:12].view(3, 4, -1)[:, :3]  # [3 (a, b, c), 3 (e_0, e_1, e_2), T]
    _add_tolerance(edges, n_cols, n_rows, torch.finfo(dtype).eps)
    return out.to(dtype)


def _screen_coefficients(corners: Tensor, boxes: Tensor) -> Tensor:
    """Scan coefficients of triangles entirely in front of the camera, from screen positions.

    The 2D edge functions are built from the vertices' pixel positions relative to the
    triangle's box, so the triangles around a vertex all see the same (rounded) vertex and
    their edges meet exactly there; what rounding remains is covered by the tolerance (see
    :func:`_add_tolerance`). 1 / w and z / w are linear in screen space, which gives the
    perspective-correct depth and the near/far test.

    Args:
        corners: [5, 3, T] rows col, row, front, 1/w, z/w (:func:`_project_vertices`) per
            corner.
        boxes: [4, T] int64 pixel boxes (col0, row0, n_cols, n_rows).
    Returns:
        [16, T], laid out as in :func:`_edge_coefficients` with twice the signed screen area
        in place of det: rows 0-11 e_0, e_1, e_2, zn; row 12 |2 area|; rows 13-15 the
        function whose value q gives the view depth ``w = row 12 / q``.
    """
    col, row, _, inv_w, ndc_z = corners.unbind(0)  # each [3, T]: one row per corner
    col0, row0, n_cols, n_rows = boxes.to(corners.dtype)
    u = col - col0
    v = row - row0
    # edge function i (zero on the edge from corner j = i + 1 to k = i + 2), all three at once
    u_j, v_j = u.roll(-1, 0), v.roll(-1, 0)
    du = u.roll(-2, 0) - u_j
    dv = v.roll(-2, 0) - v_j
    out = corners.new_empty(16, corners.shape[2])
    functions = out[:12].view(3, 4, -1)  # [3 (a, b, c), 4 (e_0, e_1, e_2, zn), T]
    edges = functions[:, :3]
    torch.neg(dv, out=edges[0])
    edges[1] = du
    torch.mul(dv, u_j, out=edges[2]).sub_(du * v_j)
    area = edges[0, 0] * u[0] + edges[1, 0] * v[0] + edges[2, 0]
    edges *= torch.where(area < 0, -1.0, 1.0).to(area.dtype)
    torch.abs(area, out=out[12])
    # z / w and 1 / w interpolate linearly on screen with the (unnormalized) e_i as weights
    for values, target in ((ndc_z, functions[:, 3]), (inv_w, out[13:16])):
        torch.mul(edges[:, 0], values[0], out=target)
        target.addcmul_(edges[:, 1], values[1]).addcmul_(edges[:, 2], values[2])
    _add_tolerance(edges, n_cols, n_rows, torch.finfo(corners.dtype).eps)
    return out


def _add_tolerance(edges: Tensor, n_cols: Tensor, n_rows: Tensor, eps: float) -> None:
    """Raise each edge function ``a * col + b * row + c`` by 16 ulps of its terms' size.

    Two triangles sharing an edge evaluate it with different roundings (their coefficients
    are relative to different boxes), so a pixel centre on or within a hair of the edge could
    fail both tests and leave a hole in a closed surface. The tolerance (about 1e-5 pixel for a
    pixel-sized triangle, 1e-3 pixel for a 200-pixel one) makes neighbours overlap by a sliver
    that the depth test resolves.

    Args:
        edges: [3 (a, b, c), 3 (edge functions), T]; ``c`` is modified in place.
        n_cols, n_rows: [T] box sizes.
    """
    a, b, c = edges
    slack = torch.addcmul(c.abs(), a.abs(), n_cols).addcmul_(b.abs(), n_rows)
    c.add_(slack, alpha=16 * eps)


def _cross(x, y, w, j: int, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Components of ``p_j x p_k`` with p_i = (x[i], y[i], w[i]) ([T] tensors)."""
    return (
        y[j] * w[k] - w[j] * y[k],
        w[j] * x[k] - x[j] * w[k],
        x[j] * y[k] - y[j] * x[k],
    )


def _depth_test(
    clip_vertices: Tensor,
    faces: Tensor,
    image_size: tuple[int, int],
    max_candidates: int,
    orientation: Tensor | None,
    cull: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Nearest (depth, face) key per pixel.

    Args:
        orientation, cull: as for :func:`rasterize`.
    Returns:
        keys: [B*H*W] int64 ``float32_bits(w) << 32 | face``; ``_EMPTY_KEY`` for background.
        orientation: [B, F] int8 screen orientation of every face (see :class:`Fragments`).
    """
    batch, num_vertices = clip_vertices.shape[:2]
    num_faces = faces.shape[0]
    height, width = image_size
    device = clip_vertices.device
    keys = torch.full((batch * height * width,), _EMPTY_KEY, dtype=torch.int64, device=device)
    if num_faces == 0:
        return keys, torch.zeros(batch, num_faces, dtype=torch.int8, device=device)
    clip_soa = clip_vertices.permute(2, 0, 1).reshape(4, -1)  # [4, B*V]: x, y, z, w rows
    screen_soa = _project_vertices(clip_soa, image_size)  # [5, B*V]
    faces_soa = faces.t().contiguous()  # [3, F]
    every_view = torch.arange(batch, device=device)[:, None] * num_vertices
    all_front = bool(screen_soa[2].all())
    given = orientation
    if given is None:
        orientation = torch.empty(batch, num_faces, dtype=torch.int8, device=device)
    elif not all_front:
        orientation = given.clone()
    outside = None
    if cull is not None:
        outside = screen_soa[2].view(batch, num_vertices).all(1)[:, None]  # camera outside
    faces_per_chunk = max(1, max_candidates // (4 * batch))
    for start in range(0, num_faces, faces_per_chunk):
        stop = min(num_faces, start + faces_per_chunk)
        corner_rows = every_view[None] + faces_soa[:, None, start:stop]  # [3, B, Fc]
        if given is None:
            orientation[:, start:stop] = _clip_orientation(clip_soa, corner_rows)
        if not all_front:  # unknown where a corner is not in front of the near plane
            front = screen_soa[2].index_select(0, corner_rows.reshape(-1)).view(3, batch, -1)
            orientation[:, start:stop] *= front.sum(0) == 3
        drawn = torch.ones(batch, stop - start, dtype=torch.bool, device=device)
        if cull is not None:
            drawn &= ~(cull[:, start:stop] & outside)
        pairs = torch.nonzero(drawn.view(-1)).squeeze(1)  # view-major (view, face) pairs
        rows = corner_rows.view(3, -1).index_select(1, pairs)  # [3, T]
        boxes, counts, num_front = _pair_boxes(clip_soa, screen_soa, rows, image_size, all_front)
        keep = torch.nonzero(counts > 0).squeeze(1)
        if keep.numel() == 0:
            continue
        pairs, rows = pairs.index_select(0, keep), rows.index_select(1, keep)
        boxes = boxes.index_select(1, keep).long()
        view = torch.div(pairs, stop - start, rounding_mode="floor")
        face = pairs - view * (stop - start) + start
        if num_front is None or bool((num_front[keep] == 3).all()):
            corners = screen_soa.index_select(1, rows.view(-1)).view(5, 3, -1)
            floats = _screen_coefficients(corners, boxes)
        else:
            in_front = num_front[keep] == 3
            floats = _mixed_coefficients(clip_soa, screen_soa, rows, in_front, boxes, image_size)
        counts = (boxes[2] * boxes[3]) * (floats[12] > 0)  # degenerate: nothing
        _scan_candidates(keys, floats, boxes, counts, view, face, image_size, max_candidates)
    return keys, orientation


def _clip_orientation(clip_soa: Tensor, corner_rows: Tensor) -> Tensor:
    """Screen orientation of faces from their clip-space corners.

    The sign of ``det[p_0, p_1, p_2]`` with ``p_i = (x_i, y_i, w_i)`` is the orientation of the
    projected triangle when every corner is in front of the camera (det = w_0 w_1 w_2 times
    twice its NDC area); the caller zeroes it where that is not so.

    Args:
        clip_soa: [4, N] x, y, z, w rows; corner_rows: [3, ...] indices into N.
    Returns:
        [...] int8: 1 counter-clockwise on screen, -1 clockwise, 0 degenerate.
    """
    shape = corner_rows.shape[1:]
    x, y, _, w = clip_soa.index_select(1, corner_rows.reshape(-1)).view(4, 3, -1)
    m = _cross(x, y, w, 1, 2)
    det = x[0] * m[0] + y[0] * m[1] + w[0] * m[2]
    return torch.sign(det.nan_to_num(0.0)).to(torch.int8).view(shape)


def _mixed_coefficients(
    clip_soa: Tensor,
    screen_soa: Tensor,
    corner_rows: Tensor,
    in_front: Tensor,
    boxes: Tensor,
    image_size: tuple[int, int],
) -> Tensor:
    """[16, T] scan coefficients: screen-space for triangles in front, homogeneous otherwise."""
    floats = clip_soa.new_empty(16, corner_rows.shape[1])
    front_idx = torch.nonzero(in_front).squeeze(1)
    other_idx = torch.nonzero(~in_front).squeeze(1)
    if front_idx.numel():
        rows = corner_rows.index_select(1, front_idx).reshape(-1)
        corners = screen_soa.index_select(1, rows).view(5, 3, -1)
        floats[:, front_idx] = _screen_coefficients(corners, boxes.index_select(1, front_idx))
    rows = corner_rows.index_select(1, other_idx).reshape(-1)
    tri = clip_soa.index_select(1, rows).view(4, 3, -1)
    floats[:, other_idx] = _edge_coefficients(tri, image_size, boxes.index_select(1, other_idx))
    return floats


def _project_vertices(clip_soa: Tensor, image_size: tuple[int, int]) -> Tensor:
    """Per-vertex pixel coordinates.

    Args:
        clip_soa: [4, N] rows x, y, z, w of clip-space vertices.
    Returns:
        [5, N] rows col, row (pixel-index units: pixel centres at integers, row 0 at the
        top), front (1.0 for a finite vertex in front of the near plane: z >= -w, w > 0;
        else 0), 1 / w and z / w; all but front are only meaningful where front is 1.
    """
    height, width = image_size
    x, y, z, w = clip_soa
    finite = torch.isfinite(clip_soa.sum(0))  # (a sum overflowing is absurd anyway)
    front = (z + w >= 0) & (w > 0) & finite
    out = clip_soa.new_empty(5, clip_soa.shape[1])
    inv_w = torch.where(front, w, w.new_ones(()), out=out[3]).reciprocal_()
    torch.addcmul(torch.full_like(x, width / 2 - 0.5), x, inv_w, value=width / 2, out=out[0])
    torch.addcmul(torch.full_like(y, height / 2 - 0.5), y, inv_w, value=-height / 2, out=out[1])
    out[2] = front
    torch.mul(z, inv_w, out=out[4])
    return out


def _pair_boxes(
    clip_soa: Tensor,
    screen_soa: Tensor,
    corner_rows: Tensor,
    image_size: tuple[int, int],
    all_front: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Pixel boxes of some (view, face) pairs.

    Args:
        clip_soa: [4, N] clip-space rows; screen_soa: [5, N] from :func:`_project_vertices`.
        corner_rows: [3, T] indices into N of each pair's corners.
        all_front: every vertex is in front of the near plane (then the front flags are not
            gathered).
    Returns:
        boxes: [4, T] float rows col0, row0, n_cols, n_rows (whole numbers).
        counts: [T] float number of pixels in each box (0 for faces entirely behind the
            near plane).
        num_front: None when every vertex is in front of the near plane, else [T] float
            number of corners in front.
    """
    height, width = image_size
    num_pairs = corner_rows.shape[1]
    gathered = 2 if all_front else 3
    xyf = screen_soa[:gathered].index_select(1, corner_rows.reshape(-1)).view(gathered, 3, -1)
    lo = torch.minimum(torch.minimum(xyf[:2, 0], xyf[:2, 1]), xyf[:2, 2])  # [2, T]
    hi = torch.maximum(torch.maximum(xyf[:2, 0], xyf[:2, 1]), xyf[:2, 2])
    num_front = None
    if not all_front:
        num_front = xyf[2].sum(0)
        partial = torch.nonzero((num_front > 0) & (num_front < 3)).squeeze(1)
        if partial.numel():
            rows = corner_rows[:, partial].t().reshape(-1)
            tri = clip_soa.index_select(1, rows).t().reshape(-1, 3, 4)
            part_lo, part_hi = _clipped_extent(tri, image_size)
            lo[:, partial], hi[:, partial] = part_lo.t(), part_hi.t()
    eps = 2e-3  # pixels: rounding of the projection, and the edge tolerances
    boxes = lo.new_empty(4, num_pairs)
    first, extent = boxes[:2], boxes[2:]
    torch.ceil(lo.sub_(eps), out=first).clamp_(min=0)
    last = torch.floor(hi.add_(eps))
    for axis, size in enumerate((width, height)):
        first[axis].clamp_(max=size)
        last[axis].clamp_(max=size - 1)
    torch.sub(last, first, out=extent).add_(1).clamp_(min=0)
    counts = extent[0] * extent[1]
    if num_front is not None:
        counts *= num_front > 0
    return boxes, counts, num_front


def _clipped_extent(tri: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pixel-coordinate extent of triangles clipped to the near plane.

    Args:
        tri: [N, 3, 4] clip-space triangles with at least one vertex in front.
    Returns:
        (lo [N, 2], hi [N, 2]) (col, row) bounds, clamped to just outside the image.
    """
    height, width = image_size
    dist = tri[..., 2] + tri[..., 3]
    nxt = tri.roll(-1, dims=1)
    dist_nxt = dist.roll(-1, dims=1)
    t = (dist / (dist - dist_nxt)).nan_to_num(0.0).clamp(0, 1)[..., None]
    points = torch.cat([tri, tri + t * (nxt - tri)], dim=1)  # [N, 6, 4]
    front = dist >= 0
    valid = torch.cat([front, front != (dist_nxt >= 0)], dim=1) & (points[..., 3] > 0)
    w = torch.where(valid, points[..., 3], torch.ones_like(points[..., 3]))
    col = ((points[..., 0] / w + 1) * (width / 2) - 0.5).clamp(-2, width + 1)
    row = ((1 - points[..., 1] / w) * (height / 2) - 0.5).clamp(-2, height + 1)
    xy = torch.stack([col, row], dim=-1)
    big = float(max(height, width) + 10)
    lo = torch.where(valid[..., None], xy, big).amin(1)
    hi = torch.where(valid[..., None], xy, -big).amax(1)
    return lo, hi


def _scan_candidates(
    keys: Tensor,
    floats: Tensor,
    boxes: Tensor,
    counts: Tensor,
    view: Tensor,
    face: Tensor,
    image_size: tuple[int, int],
    max_candidates: int,
) -> None:
    """Depth-test the pixels in the boxes of some triangles into ``keys`` (in place).

    The first pixel of every box is tested straight from the coefficients (there the edge
    functions are their constant terms); the other pixels (most triangles of a detailed mesh
    cover at most one pixel centre) are enumerated in chunks of ``max_candidates``.

    Args:
        keys: [B*H*W] int64 running minimum keys.
        floats: [16, T] from :func:`_edge_coefficients` or :func:`_screen_coefficients`;
            boxes: [4, T] from :func:`_pair_boxes`; counts: [T] >= 0 pixels to scan per box;
            view, face: [T].
    """
    height, width = image_size
    base = (view * height + boxes[1]) * width + boxes[0]
    _keep_nearest(keys, floats[8:12], floats[12], floats[15], counts > 0, base, face)
    counts = (counts - 1).clamp_(min=0)
    ends = torch.cumsum(counts, 0)
    total = int(ends[-1])
    bounds = [0]
    if total > max_candidates:
        targets = torch.arange(max_candidates, total, max_candidates, device=ends.device)
        cuts = torch.searchsorted(ends, targets, right=False).tolist()
        bounds += sorted({c for c in cuts if 0 < c < counts.numel()})
    bounds.append(counts.numel())
    starts = ends - counts
    ints = torch.stack([starts, boxes[2], base])  # [3, T]
    for lo, hi in itertools.pairwise(bounds):
        n = int(ends[hi - 1] - starts[lo])
        if n == 0:
            continue
        tri_of = torch.repeat_interleave(
            torch.arange(lo, hi, device=keys.device), counts[lo:hi], output_size=n
        )
        first, n_cols, base_of = ints.index_select(1, tri_of).unbind(0)
        local = torch.arange(1, n + 1, device=keys.device) + (starts[lo] - first)
        row_in = torch.div(local, n_cols, rounding_mode="floor")
        col_in = local - row_in * n_cols
        f = floats.index_select(1, tri_of)
        colf = col_in.to(f.dtype)
        rowf = row_in.to(f.dtype)
        e = torch.stack([f[i] * colf + f[4 + i] * rowf + f[8 + i] for i in range(4)])
        total = f[13] * colf + f[14] * rowf + f[15]
        pixel = base_of + row_in * width + col_in
        _keep_nearest(keys, e, f[12], total, None, pixel, face.index_select(0, tri_of))


def _keep_nearest(
    keys: Tensor,
    e: Tensor,
    d: Tensor,
    q: Tensor,
    valid: Tensor | None,
    pixel: Tensor,
    face: Tensor,
) -> None:
    """Fold candidates into the depth buffer ``keys`` (in place).

    Args:
        e: [4, N] e_0, e_1, e_2, zn at the candidates; d: [N] |det|; q: [N] (view depth
            is d / q); valid: [N] bool or None; pixel, face: [N] int64.
    """
    inside = (e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0) & (e[3] >= -d) & (e[3] <= d)
    inside &= q > 0  # a sliver's tolerance band may reach where its plane is behind
    if valid is not None:
        inside &= valid
    idx = torch.nonzero(inside).squeeze(1)
    if idx.numel() == 0:
        return
    depth = (d.index_select(0, idx) / q.index_select(0, idx)).float()
    key = (depth.view(torch.int32).long() << _FACE_BITS) | face.index_select(0, idx)
    keys.scatter_reduce_(0, pixel.index_select(0, idx), key, reduce="amin")


def _pixel_bary_depth(
    clip_vertices: Tensor,
    faces: Tensor,
    pixel_index: Tensor,
    pixel_face: Tensor,
    image_size: tuple[int, int],
) -> tuple[Tensor, Tensor, Tensor]:
    """Differentiable barycentrics and view depth at covered pixels.

    With ``q = (X, Y, 1)`` the pixel centre and ``p_i = (x_i, y_i, w_i)`` the corners, the
    homogeneous edge function ``e_i = det[p_j, p_k, q]`` does not change when multiples of
    ``q`` are taken from its rows, so it is computed from the offsets ``d_i = (x_i - w_i X,
    y_i - w_i Y)`` as ``e_i = d_j x d_k`` (why: the textbook ``(p_j x p_k) . q`` cancels
    terms of size w^2 down to a pixel's share of them and loses up to 1% of a barycentric in
    float32; the offsets keep the error near float32's own). The barycentrics are ``e_i /
    sum(e)`` (perspective-correct), and the view depth is ``w`` interpolated with them. No
    division by w anywhere, so corners behind the camera are fine.

    Returns:
        (bary [N, 3], depth [N]) in clip_vertices.dtype, and front [N] bool (the face is
        counter-clockwise on screen).
    """
    height, width = image_size
    num_vertices = clip_vertices.shape[1]
    view = torch.div(pixel_index, height * width, rounding_mode="floor")
    rows = view * num_vertices + faces.index_select(0, pixel_face).t()  # [3, N]
    corners = clip_vertices.reshape(-1, 4).index_select(0, rows.reshape(-1))  # [3N, 4]
    x, y, _, w = corners.t().reshape(4, 3, -1).unbind(0)  # each [3 corners, N]
    px, py = pixel_centers_ndc(pixel_index, image_size, clip_vertices.dtype)
    dx = x - w * px
    dy = y - w * py
    e = dx.roll(-1, 0) * dy.roll(-2, 0) - dy.roll(-1, 0) * dx.roll(-2, 0)  # [3, N]
    total = e.sum(0)
    bary = e / total
    depth = (w * bary).sum(0)
    front = (depth * total).detach() > 0  # det[p_0, p_1, p_2] = sum(w_i e_i)
    return bary.t(), depth, front
