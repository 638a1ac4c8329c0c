"""Rasterization: which triangle is visible at each pixel, and where on it.

The visibility search is not differentiable and runs under ``torch.no_grad``; the barycentrics
and depth of the winning triangle are then recomputed from ``clip_vertices`` with autograd, so
gradients reach vertex positions exactly as in nvdiffrast's ``rasterize`` (the image changes
smoothly inside triangles; silhouettes are handled by :func:`text2mesh.render.antialias`).

Method (vectorized, no Python loop over faces or pixels):

1. Homogeneous edge values (Olano & Greer). For a pixel centre ``(X, Y)`` in NDC and the
   clip coordinates ``p_i = (x_i, y_i, z_i, w_i)`` of a triangle's corners, the offsets
   ``d_i = (x_i - w_i X, y_i - w_i Y)`` give ``e_i = d_j x d_k``, proportional to the
   barycentrics of the point where the pixel's ray meets the triangle's plane. The ray
   meets the triangle where all ``e_i`` have one sign, in front of the camera where the
   interpolated ``w`` is positive and within the depth range where the interpolated ``|z|``
   is at most ``w``. No division by a vertex's w, so triangles reaching behind the camera
   need no clipping; in float32 the offsets keep the precision that the textbook form
   ``(X, Y, 1) . (p_j x p_k)`` loses to cancellation.
2. Watertightness without tolerances: two triangles sharing an edge compute its value at a
   pixel from the same two corners with the same operations in the opposite order, so the
   values are exactly opposite (IEEE rounding is symmetric); a pixel centre on a shared edge
   or vertex passes for both triangles and the depth test picks one, so a closed surface never
   shows holes, whatever the rounding.
3. The views are rasterized together (in groups of views for a large mesh): the (view, face)
   pairs go through each op at once. Each triangle's pixel bounding box comes from its
   vertices' projections (for triangles crossing the near plane, from its polygon clipped to
   it); the first pixel of every box is tested straight from the triangle's corners, the
   other (face, pixel) candidates are enumerated in chunks of at most ``max_candidates``
   (bounded memory for 1M faces or 1024x1024 images). Optionally (``cull``), faces turned
   away are left out before any of this, where that cannot change the picture (see
   :func:`face_orientation`).
4. The depth test is a ``scatter_reduce(amin)`` over 64-bit keys ``depth_bits << 32 | face``
   (positive float32 bit patterns sort like the floats), ties broken by the lower face index.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
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
_INF_KEY = 0x7F800000 << _FACE_BITS  # keys from here up (+inf or NaN depth) are background
_MAX_SIDE = 16384  # pixel coordinates travel as int16
_FACE_MASK = (1 << _FACE_BITS) - 1
DEFAULT_MAX_CANDIDATES = 1 << 21
_GROUP_VERTICES = 1 << 18  # vertices of the views depth-tested together
_SPAN_EPS = 2e-3  # pixels: the projection's rounding against the exact test in _nearest_keys


@dataclass(frozen=True)
class Fragments:
    """What :func:`rasterize` found, per pixel; row 0 is the top of the image.

    Attributes (``face_index``, ``front_facing``, ``bary`` and ``depth`` are images made from
    the packed fields on first use):
        shape: (B, H, W) views and image size.
        face_index: [B, H, W] int64, index of the visible face, -1 for background.
        bary: [B, H, W, 3] float, perspective-correct barycentrics of the visible face
            (0 for background); differentiable wrt ``clip_vertices``.
        depth: [B, H, W] float, view depth ``w`` (distance along the camera's viewing axis,
            the clip-space w) of the visible point; 0 for background. Differentiable.
        pixel_index: [N] int64, flat indices into B*H*W of the N covered pixels (ascending).
        pixel_view: [N] int64, view (batch) index of each covered pixel.
        pixel_face: [N] int64, visible face of each covered pixel.
        pixel_bary: [N, 3] float, barycentrics of each covered pixel (packed ``bary``).
        pixel_depth: [N] float, view depth of each covered pixel (packed ``depth``).
        pixel_front: [N] bool, packed ``front_facing``.
        pixel_vertices: [3, N] int64, the vertices (indices into V) of each covered pixel's
            face, corner by corner.
        pixel_corners: (x, y, z, w), each [3, N] float: their clip-space coordinates, corner
            by corner (differentiable; one tuple for every user, so that on the way back the
            coordinates' gradients meet before they are stacked).
        clip_soa: [4, B*V] the rasterized clip-space vertices as rows x, y, z, w, view after
            view (column ``b * V + v``): the view of ``clip_vertices`` that ``pixel_corners``
            were taken from (:func:`take_columns`). Take further differentiable columns from
            this same tensor (antialiasing does): their gradients then meet in one buffer
            on the way back.
        faces: [F, 3] int64 vertex indices of the triangles.
        front_facing: [B, H, W] bool, True where the visible face is counter-clockwise on
            screen (seen from the side its winding's normal points to); False on background.
        face_orientation: [B, F] int8 per view: 1 counter-clockwise on screen, -1 clockwise,
            0 unknown (a vertex behind the camera plane) or degenerate.
    """

    shape: tuple[int, int, int]
    pixel_index: Tensor
    pixel_view: Tensor
    pixel_face: Tensor
    pixel_bary: Tensor
    pixel_depth: Tensor
    pixel_front: Tensor
    pixel_vertices: Tensor
    pixel_corners: tuple[Tensor, Tensor, Tensor, Tensor]
    clip_soa: Tensor
    faces: Tensor
    face_orientation: Tensor

    @cached_property
    def face_index(self) -> Tensor:
        return self._dense(self.pixel_face[:, None], fill=-1)[..., 0]

    @cached_property
    def front_facing(self) -> Tensor:
        return self._dense(self.pixel_front[:, None])[..., 0]

    @cached_property
    def bary(self) -> Tensor:
        return self._dense(self.pixel_bary)

    @cached_property
    def depth(self) -> Tensor:
        return self._dense(self.pixel_depth[:, None])[..., 0]

    def _dense(self, values: Tensor, fill: int = 0) -> Tensor:
        """[N, C] packed values -> [B, H, W, C] with ``fill`` on background (differentiable)."""
        out = values.new_full((self.num_pixels, values.shape[1]), fill)
        out.index_put_((self.pixel_index,), values)
        return out.view(*self.shape, values.shape[1])

    @property
    def clip_vertices(self) -> Tensor:
        """[B, V, 4] the rasterized clip-space vertices (a view of ``clip_soa``)."""
        return self.clip_soa.view(4, self.batch_size, -1).permute(1, 2, 0)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.shape[1], self.shape[2]

    @property
    def batch_size(self) -> int:
        return self.shape[0]

    @property
    def num_pixels(self) -> int:
        """B*H*W, the length of the flat pixel indices."""
        batch, height, width = self.shape
        return batch * height * width

    @property
    def mask(self) -> Tensor:
        """[B, H, W] bool, True where a face is visible."""
        return self.face_index >= 0


def pixel_centers_ndc(
    pixel_index: Tensor,
    image_size: tuple[int, int],
    dtype: torch.dtype,
    pixel_view: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """NDC coordinates of pixel centres.

    Args:
        pixel_index: [N] int64 flat indices into B*H*W.
        image_size: (H, W).
        pixel_view: None, or [N] int64 the view of each pixel (``pixel_index // (H*W)``),
            which saves finding it.
    Returns:
        (X [N], Y [N]) in ``dtype``; X grows to the right, Y grows upwards (row 0 at Y ~ +1).
    """
    height, width = image_size
    plane = height * width
    if pixel_view is None:
        within = pixel_index % plane
    else:
        within = pixel_index - pixel_view * plane
    # int32 (why: integer division takes half the time; a view has at most _MAX_SIDE^2 pixels)
    within = within.int()
    row = torch.div(within, width, rounding_mode="floor")
    return _ndc(within - row * width, row, image_size, dtype)


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
            visible where -w <= x, y, z <= w), best laid out as :func:`transform_vertices`
            makes them (x, y, z, w planes: ``permute(2, 0, 1)`` is contiguous; other layouts
            are copied once). Gradients flow into them through ``bary`` and ``depth``.
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
    batch, num_vertices = clip_vertices.shape[:2]
    height, width = image_size
    # rows x, y, z, w (why: every later step takes columns of it, forward and backward;
    # see :func:`take_columns`)
    clip_soa = clip_vertices.permute(2, 0, 1).reshape(4, -1)  # [4, B*V]
    with torch.no_grad():
        keys, orientation = _depth_test(
            clip_soa.detach(), batch, faces, image_size, max_candidates, orientation, cull
        )
        pixel_index = torch.nonzero(keys < _INF_KEY).squeeze(1)
        pixel_face = keys.index_select(0, pixel_index) & _FACE_MASK
    pixel_vertices = _columns(faces.index_select(0, pixel_face))  # [3, N]
    pixel_view = torch.div(pixel_index, height * width, rounding_mode="floor")
    rows = pixel_view * num_vertices + pixel_vertices
    pixel_corners = take_columns(clip_soa, rows.view(-1)).view(4, 3, -1).unbind(0)
    pixel_bary, pixel_depth, pixel_front = _pixel_bary_depth(
        pixel_corners, pixel_index, pixel_view, image_size
    )
    return Fragments(
        shape=(batch, height, width),
        pixel_index=pixel_index,
        pixel_view=pixel_view,
        pixel_face=pixel_face,
        pixel_bary=pixel_bary,
        pixel_depth=pixel_depth,
        pixel_front=pixel_front,
        pixel_vertices=pixel_vertices,
        pixel_corners=pixel_corners,
        clip_soa=clip_soa,
        faces=faces,
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
        points = _columns(vertices.detach())  # [3, V]
        v0, v1, v2 = (take_columns(points, faces[:, i]) for i in range(3))  # [3, F] each
        first, second = v1 - v0, v2 - v0
        normal = torch.stack(cross_rows(first, second))  # [3, F]
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
    if faces.numel():
        low, high = (int(v) for v in torch.aminmax(faces))  # (one pass for both)
        if low < 0 or high >= clip_vertices.shape[1]:
            raise ValueError("faces index vertices that do not exist")
    height, width = (int(s) for s in image_size)
    if not (0 < height <= _MAX_SIDE and 0 < width <= _MAX_SIDE):
        raise ValueError(f"image_size must be 1 to {_MAX_SIDE} pixels a side, got {image_size}")
    if clip_vertices.dtype in (torch.float16, torch.bfloat16):
        clip_vertices = clip_vertices.float()
    return clip_vertices, faces, (height, width)


def take_columns(matrix: Tensor, index: Tensor) -> Tensor:
    """``matrix[:, index]``: [R, N] and [K] int32/int64 indices into N -> [R, K] contiguous.

    A gather with the index broadcast to every row (why: on CPU it is 2-4x faster than
    ``index_select`` along dim 1, which takes PyTorch's generic strided path, e.g. 0.41 vs
    1.06 ms to take 120k of 245k columns of a [3, N] int32 matrix on 2 threads; and its
    backward, a ``scatter_add`` into [R, N], is 4-5x faster than the ``index_add`` of [K, R]
    rows that gathering rows of an [N, R] matrix costs on the way back).
    """
    return torch.gather(matrix, 1, index.long().expand(matrix.shape[0], -1))


def cross_rows(a: Sequence[Tensor], b: Sequence[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Cross products of vectors given as three [N] rows each -> three [N] rows (why rows:
    elementwise products of [N] rows are several times faster on CPU than ``linalg.cross``
    of [N, 3], forward and backward)."""
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _columns(matrix: Tensor) -> Tensor:
    """[..., N, C] -> [..., C, N] contiguous (why: for a few columns, stacking them is 3-7x
    faster on CPU than PyTorch's transposed copy, ``.mT.contiguous()``)."""
    return torch.stack(matrix.unbind(-1), dim=-2)


def _depth_test(
    clip_soa: Tensor,
    batch: int,
    faces: Tensor,
    image_size: tuple[int, int],
    max_candidates: int,
    orientation: Tensor | None,
    cull: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Nearest (depth, face) key per pixel.

    Views are tested together, in groups of views holding at most ``_GROUP_VERTICES``
    vertices, and within a group the (view, face) pairs are taken ``max_candidates // 4`` at a
    time (why: the test is a few hundred small ops whatever their length, so five views in
    one group cost about the ops of one, and longer ops run on every thread; the bounds keep
    a big mesh to one view, and a bounded number of pairs, at a time).

    Args:
        clip_soa: [4, B*V] rows x, y, z, w of the clip-space vertices, view after view.
        batch: B.
        orientation, cull: as for :func:`rasterize`.
    Returns:
        keys: [B*H*W] int64 ``float32_bits(w) << 32 | face``; ``_INF_KEY`` or more for
            background.
        orientation: [B, F] int8 screen orientation of every face (see :class:`Fragments`).
    """
    num_vertices = clip_soa.shape[1] // max(1, batch)
    num_faces = faces.shape[0]
    height, width = image_size
    plane = height * width
    device = clip_soa.device
    keys = torch.full((batch * plane,), _EMPTY_KEY, dtype=torch.int64, device=device)
    if num_faces == 0:
        return keys, torch.zeros(batch, num_faces, dtype=torch.int8, device=device)
    faces_soa = _columns(faces.int())  # [3, F] (why int32: half the bytes to gather)
    given = orientation
    if given is None:
        orientation = torch.empty(batch, num_faces, dtype=torch.int8, device=device)
    group = max(1, _GROUP_VERTICES // max(1, num_vertices))
    for first_view in range(0, batch, group):
        views = slice(first_view, min(batch, first_view + group))
        num_views = views.stop - views.start
        group_soa = clip_soa[:, views.start * num_vertices : views.stop * num_vertices]
        bounds, front, within = _vertex_bounds(group_soa, image_size)
        all_front = front.view(num_views, num_vertices).all(1)  # [G]
        every_front = bool(all_front.all())
        check_range = not bool(within.all())
        offsets = torch.arange(
            0, num_views * num_vertices, num_vertices, dtype=torch.int32, device=device
        )
        faces_per_chunk = max(1, max_candidates // (4 * num_views))
        for start in range(0, num_faces, faces_per_chunk):
            stop = min(num_faces, start + faces_per_chunk)
            chunk = stop - start
            # [3, G*Fc] corners of every (view, face) pair, as indices into G*V
            rows = (faces_soa[:, None, start:stop] + offsets[:, None]).view(3, -1)
            if given is None:
                found = _clip_orientation(group_soa, rows).view(num_views, chunk)
                orientation[views, start:stop] = found
            pair = None  # [P] the pairs tested, as indices into G*Fc; None: all of them
            if cull is not None:
                skip = cull[views, start:stop]
                if not every_front:  # culling is only safe where all is in front
                    skip = skip & all_front[:, None]
                pair = torch.nonzero(~skip.reshape(-1)).squeeze(1)
                rows = take_columns(rows, pair)
            ahead = None
            if not every_front:  # orientation unknown where a corner is not in front
                ahead = front.index_select(0, rows.view(-1)).view(3, -1).sum(0)
                unknown = torch.nonzero(ahead < 3).squeeze(1)
                if orientation is given:
                    orientation = given.clone()
                view, face = _view_and_face(unknown if pair is None else pair[unknown], chunk)
                orientation[view + views.start, face + start] = 0
            boxes, counts = _pair_boxes(bounds, group_soa, rows, image_size, ahead)
            keep = torch.nonzero(counts > 0).squeeze(1)
            if keep.numel() == 0:
                continue
            view, face = _view_and_face(keep if pair is None else pair[keep], chunk)
            _scan_boxes(
                keys[views.start * plane : views.stop * plane],
                group_soa,
                take_columns(rows, keep),
                take_columns(boxes, keep),
                counts.index_select(0, keep),
                face.add_(start),
                view.mul_(plane),
                image_size,
                max_candidates,
                check_range,
            )
    return keys, orientation


def _view_and_face(pair: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """[P] int64 indices into G*Fc (view-major pairs) -> (view [P], face within chunk [P])."""
    view = torch.div(pair, chunk, rounding_mode="floor")
    return view, pair - view * chunk


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
    x, y, _, w = take_columns(clip_soa, corner_rows.reshape(-1)).view(4, 3, -1)
    det = (w * _edge_values(x, y)).sum(0)
    return torch.sign(det.nan_to_num(0.0)).to(torch.int8).view(shape)


def _vertex_bounds(clip_soa: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor, Tensor]:
    """Per-vertex pixel ranges, from which the box of a triangle in front is one minimum.

    Args:
        clip_soa: [..., 4, N] rows x, y, z, w of clip-space vertices.
    Returns:
        bounds: [..., N] int64, each holding four int16: the first column and row of pixel
            centres at or after the vertex and the negated last ones at or before it (see
            :func:`_pixel_span`), so that the elementwise minimum over a triangle's corners
            gives its box. Only meaningful where ``front``.
        front: [..., N] bool, finite and in front of the near plane (z >= -w, w > 0).
        within: [..., N] bool, front and not beyond the far plane (z <= w).
    """
    x, y, z, w = clip_soa.unbind(-2)
    front = (z + w >= 0) & (w > 0) & (clip_soa.sum(-2).abs() < torch.inf)  # (finite; no NaN)
    within = front & (z <= w)
    inv_w = w.reciprocal()  # (non-finite where not front: cleaned below, and unused there)
    height, width = image_size
    spans = torch.empty(4, *x.shape, dtype=x.dtype, device=x.device)
    position = _pixel_position(x * inv_w, y * inv_w, image_size, out=spans[:2]).nan_to_num_(0.0)
    # the four fields are one ceil: the first centre at or after p is ceil(p - eps), the
    # negated last one at or before it -floor(p + eps) = ceil(-p - eps); clamping p to half a
    # pixel outside the image clamps them as :func:`_pixel_span` does (why: a few passes over
    # [4, ..., N] and one interleaving copy instead of a float [..., N, 4] stack)
    position[0].clamp_(-0.5, width - 0.5)
    position[1].clamp_(-0.5, height - 0.5)
    torch.neg(position, out=spans[2:])
    spans.sub_(_SPAN_EPS).ceil_()
    fields = torch.empty(*x.shape, 4, dtype=torch.int16, device=x.device)
    fields.copy_(spans.movedim(0, -1))
    return fields.view(torch.int64).squeeze(-1), front, within


def _pixel_position(
    x: Tensor, y: Tensor, image_size: tuple[int, int], out: Tensor | None = None
) -> Tensor:
    """NDC (x, y) [...] -> [2, ...] (col, row) in pixel-index units (centres at integers, row
    0 at the top), written into ``out`` when given."""
    height, width = image_size
    position = torch.empty(2, *x.shape, dtype=x.dtype, device=x.device) if out is None else out
    torch.add(x * (width / 2), width / 2 - 0.5, out=position[0])
    torch.add(y * (-height / 2), height / 2 - 0.5, out=position[1])
    return position


def _pixel_span(lo: Tensor, hi: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """First and last pixel centres of the ranges ``[lo, hi]``, widened by a rounding margin.

    Args:
        lo, hi: [2, ...] (col, row) in pixel-index units.
    Returns:
        (first, last) [2, ...] whole numbers, first clamped to [0, size] and last to
        [-1, size - 1] (the range is empty where last < first).
    """
    height, width = image_size
    first = torch.ceil(lo - _SPAN_EPS)
    last = torch.floor(hi + _SPAN_EPS)
    for axis, size in enumerate((width, height)):
        first[axis].clamp_(0, size)
        last[axis].clamp_(-1, size - 1)
    return first, last


def _pair_boxes(
    bounds: Tensor,
    clip_soa: Tensor,
    rows: Tensor,
    image_size: tuple[int, int],
    ahead: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Pixel boxes of some faces in one view.

    Args:
        bounds: [N] from :func:`_vertex_bounds`; clip_soa: [4, N] clip-space rows.
        rows: [3, T] indices into N of each face's corners.
        ahead: None when every vertex is in front of the near plane, else [T] number of each
            face's corners in front.
    Returns:
        boxes: [4, T] int32 rows col0, row0, n_cols, n_rows (why int32: half the bytes of
            int64 in every later gather; a side is at most ``_MAX_SIDE`` pixels).
        counts: [T] int32 number of pixels in each box (0 for faces entirely behind the near
            plane).
    """
    num_pairs = rows.shape[1]
    corners = bounds.index_select(0, rows.view(-1)).view(torch.int16).view(3, num_pairs, 4)
    low = torch.minimum(torch.minimum(corners[0], corners[1]), corners[2])  # [T, 4]
    low = low.t().to(torch.int32, memory_format=torch.contiguous_format)  # [4, T]
    if ahead is not None:
        low[:, ahead < 3] = low.new_tensor([[0], [0], [1], [1]])  # empty, unless clipped below
        partial = torch.nonzero((ahead > 0) & (ahead < 3)).squeeze(1)
        if partial.numel():
            tri = take_columns(clip_soa, rows[:, partial].t().reshape(-1))
            lo, hi = _clipped_extent(tri.t().view(-1, 3, 4), image_size)
            first, last = _pixel_span(lo, hi, image_size)
            low[:, partial] = torch.cat([first, last.neg()]).int()
    boxes = torch.empty_like(low)
    boxes[:2] = low[:2]
    torch.add(low[2:], low[:2], out=boxes[2:]).neg_().add_(1).clamp_(min=0)
    return boxes, boxes[2] * boxes[3]


def _clipped_extent(tri: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Pixel-coordinate extent of triangles clipped to the near plane.

    Args:
        tri: [N, 3, 4] clip-space triangles with at least one vertex in front.
    Returns:
        (lo [2, N], hi [2, N]) (col, row) bounds, clamped to just outside the image (lo > hi
        where no finite part is in front).
    """
    height, width = image_size
    dist = tri[..., 2] + tri[..., 3]
    nxt = tri.roll(-1, dims=1)
    dist_nxt = dist.roll(-1, dims=1)
    t = (dist / (dist - dist_nxt)).nan_to_num(0.0).clamp(0, 1)[..., None]
    points = torch.cat([tri, tri + t * (nxt - tri)], dim=1)  # [N, 6, 4]
    front = dist >= 0
    valid = torch.cat([front, front != (dist_nxt >= 0)], dim=1) & (points[..., 3] > 0)
    valid &= torch.isfinite(points).all(-1)
    w = torch.where(valid, points[..., 3], torch.ones_like(points[..., 3]))
    position = _pixel_position(points[..., 0] / w, points[..., 1] / w, image_size)  # [2, N, 6]
    position[0].clamp_(-2, width + 1)
    position[1].clamp_(-2, height + 1)
    big = float(max(height, width) + 10)
    lo = torch.where(valid, position, big).amin(2)
    hi = torch.where(valid, position, -big).amax(2)
    return lo, hi


def _scan_boxes(
    keys: Tensor,
    clip_soa: Tensor,
    rows: Tensor,
    boxes: Tensor,
    counts: Tensor,
    face: Tensor,
    base: Tensor,
    image_size: tuple[int, int],
    max_candidates: int,
    check_range: bool,
) -> None:
    """Depth-test every pixel centre in the boxes of some triangles into ``keys`` (in place).

    The first pixel of every box is tested straight from the triangle's corners; the other
    (triangle, pixel) candidates (most triangles of a detailed mesh cover at most one pixel
    centre) gather their corners and are enumerated in chunks of at most ``max_candidates``.

    Args:
        keys: [G*H*W] int64 running minimum keys of the views the triangles are seen in.
        clip_soa: [4, N] clip-space rows; rows: [3, T] indices into N of the corners.
        boxes: [4, T] int32 from :func:`_pair_boxes`; counts: [T] int32 > 0 pixels per box;
        face: [T] int64; base: [T] int64 offset of each triangle's view in ``keys``.
        check_range: as for :func:`_nearest_keys`.
    """
    width = image_size[1]
    num_pairs = rows.shape[1]
    corners = take_columns(clip_soa, rows.view(-1)).view(12, num_pairs)  # x, y, z, w rows
    col0, row0, n_cols, _ = boxes
    first_pixel = (row0 * width + col0).long().add_(base)
    _nearest_keys(keys, corners, col0, row0, first_pixel, face, image_size, check_range)
    counts = counts - 1
    ends = torch.cumsum(counts, 0)  # int64: all boxes together may hold more than 2^31
    starts = ends - counts
    total = int(ends[-1])
    if total == 0:
        return
    bounds = [0]
    if total > max_candidates:
        targets = torch.arange(max_candidates, total, max_candidates, device=ends.device)
        cuts = torch.searchsorted(ends, targets, right=False).tolist()
        bounds += sorted({c for c in cuts if 0 < c < num_pairs})
    bounds.append(num_pairs)
    for lo, hi in itertools.pairwise(bounds):
        n = int(ends[hi - 1] - starts[lo])
        if n == 0:
            continue
        # int32: a chunk's values fit (a box holds at most _MAX_SIDE^2 pixels, a chunk about
        # max_candidates more), and they are half the bytes of int64 to gather per candidate
        table = torch.stack(
            [(starts[lo:hi] - starts[lo]).int(), n_cols[lo:hi], col0[lo:hi], row0[lo:hi]]
        )
        tri_of = torch.repeat_interleave(  # the chunk's triangle of each candidate
            torch.arange(hi - lo, device=keys.device), counts[lo:hi], output_size=n
        )
        first, cols, col, row = take_columns(table, tri_of)
        local = torch.arange(1, n + 1, dtype=torch.int32, device=keys.device).sub_(first)
        row_in = torch.div(local, cols, rounding_mode="floor")
        col += local - row_in * cols
        row += row_in
        pixel = (row * width + col).long().add_(base[lo:hi].index_select(0, tri_of))
        tri_face = face[lo:hi].index_select(0, tri_of)
        tri_corners = take_columns(corners[:, lo:hi], tri_of)
        _nearest_keys(keys, tri_corners, col, row, pixel, tri_face, image_size, check_range)


def _nearest_keys(
    keys: Tensor,
    corners: Tensor,
    col: Tensor,
    row: Tensor,
    pixel: Tensor,
    face: Tensor,
    image_size: tuple[int, int],
    check_range: bool,
) -> None:
    """Fold candidates into the depth buffer ``keys`` (in place).

    A candidate is the centre ``q`` of pixel (row, col) against a triangle with clip-space
    corners ``p_i``. The homogeneous edge values ``e_i`` of :func:`_pixel_bary_depth` give its
    barycentrics ``e_i / sum(e)``: the pixel's ray meets the triangle where they are all >= 0
    (all ``e_i`` of one sign), in front of the camera where the interpolated ``w`` is > 0 and
    within the depth range where the interpolated ``|z| <= w``. No division by a vertex's w,
    so corners behind the camera need no clipping. Watertight without tolerances: two
    triangles sharing an edge evaluate it from the same two corners with the same operations
    in opposite order, giving exactly opposite values (IEEE rounding is symmetric), so a
    pixel centre on the edge passes for both and one just off it for exactly one.

    The range test is skipped when ``check_range`` is False, i.e. every vertex is within
    the depth range (``|z| <= w``, w > 0): the points of the triangle are then too.

    Args:
        keys: [G*H*W] int64 running minimum keys of G views.
        corners: [12, C] clip-space corners of each candidate's triangle, rows x0, x1, x2,
            y0, ..., w2.
        col, row: [C] int32 pixel of each candidate in its view; pixel: [C] int64 flat
            index into keys; face: [C] int64.
        check_range: test the interpolated z and w against the depth range.
    """
    x, y, z, w = corners.view(4, 3, -1)
    px, py = _ndc(col, row, image_size, corners.dtype)
    e = _edge_values(x - w * px, y - w * py)  # [3, C]
    weighted_w = (e * w).sum(0)
    depth = weighted_w / e.sum(0)
    inside = (e.amin(0) >= 0) | (e.amax(0) <= 0)
    inside &= depth > 0  # (also false for NaN: all e_i zero)
    if check_range:
        inside &= (e * z).sum(0).abs_() <= weighted_w.abs_()
    # candidates outside are lifted to +inf's bits or above (why not ``torch.where``: on CPU
    # it is not vectorized, ~10x the cost of these integer ops); a positive float's bits sort
    # like the float
    bits = torch.maximum(depth.float().view(torch.int32), (~inside).int().mul_(0x7F800000))
    key = (bits.long() << _FACE_BITS) | face
    keys.scatter_reduce_(0, pixel, key, reduce="amin")


def _ndc(col: Tensor, row: Tensor, image_size: tuple[int, int], dtype: torch.dtype):
    """Pixel centres (col, row int64 [N]) -> NDC (X [N], Y [N]) in ``dtype``; Y grows upwards.

    Every use goes through here, so a pixel centre has exactly the same coordinates for
    every triangle tested against it (which the watertightness of :func:`_nearest_keys`
    relies on).
    """
    height, width = image_size
    x = col.to(dtype) * (2 / width) + (1 / width - 1)
    y = row.to(dtype) * (-2 / height) + (1 - 1 / height)
    return x, y


def _edge_values(dx: Tensor, dy: Tensor) -> Tensor:
    """[3, N] offsets of the corners from the pixel -> [3, N] ``e_i = d_j x d_k``.

    Products of [N] rows taken by unbinding (why: ~1.7x faster than products of rolled
    [3, N] copies, and on the way back an unbind costs one stack, where picking rows one by
    one would cost a zero-filled gradient buffer per row).
    """
    x, y = dx.unbind(0), dy.unbind(0)
    return torch.stack(
        [x[(i + 1) % 3] * y[(i + 2) % 3] - y[(i + 1) % 3] * x[(i + 2) % 3] for i in range(3)]
    )


def _pixel_bary_depth(
    corners: Tensor, pixel_index: Tensor, pixel_view: Tensor, image_size: tuple[int, int]
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

    Args:
        corners: (x, y, z, w) [3, N] each: clip-space corners of the face seen at each pixel.
        pixel_index: [N] int64 flat indices into B*H*W; pixel_view: [N] int64 their views.
    Returns:
        (bary [N, 3], depth [N]) in the corners' dtype, and front [N] bool (the face is
        counter-clockwise on screen).
    """
    x, y, _, w = corners  # each [3 corners, N]
    px, py = pixel_centers_ndc(pixel_index, image_size, x.dtype, pixel_view)
    e = _edge_values(x - w * px, y - w * py)  # [3, N]
    total = e.sum(0)
    bary = e / total
    depth = (w * bary).sum(0)
    front = (depth * total).detach() > 0  # det[p_0, p_1, p_2] = sum(w_i e_i)
    return bary.t(), depth, front
