"""Analytic antialiasing of silhouette edges, which gives vertex positions silhouette gradients.

Method (in the spirit of nvdiffrast's ``antialias``, Laine et al. 2020): rasterized images are
piecewise constant in vertex positions at silhouettes, so their gradient there is zero. Every
silhouette edge of a view (a boundary edge, or an edge whose two faces turn opposite ways on
screen) is intersected with the rows (for edges closer to vertical) or columns (closer to
horizontal) of pixel centres it spans; each crossing lies between two adjacent pixels, p on
the side of the edge's faces and o on the other, at distance ``t`` (0..1 pixels) from p. If
the edge is visible there (o shows something behind the edge or background, and p is not
covered by something far in front of it), the crossing gives a coverage estimate: o is
``t - 0.5`` covered by the surface when t > 0.5, otherwise p is ``0.5 - t`` uncovered, and
that pixel's colour is blended towards the other's by this amount. For a straight edge this
is exactly the area of the pixel on the surface's side, and it is a smooth function of the
edge's projected endpoints, so gradients flow to the two vertices of the silhouette edge (and
to the colours of both pixels). Each edge is handled along one axis only, so coverage is not
counted twice; where several visible edges cross one pixel pair, the front-most is used.

Why this and not a soft-coverage (SoftRas-style) term: it touches only the pixels on
silhouettes instead of evaluating every face near every pixel, keeps interior colours exact
(no blur, no blur-radius hyper-parameter), and costs about as much as the silhouette is long,
which keeps the renderer far cheaper than CLIP. Starting from silhouette *edges* rather than
from the triangle seen at a pixel (as nvdiffrast does) keeps full silhouette gradients when
triangles are smaller than pixels, the usual case for 50k-face meshes at 224x224.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from text2mesh.render.rasterize import Fragments, take_columns

__all__ = ["antialias", "blend_pairs", "face_neighbors", "mesh_edges", "unpack_blend"]

_MIN_W = 1e-6
_OCCLUSION_SLACK = 0.1  # p may be this much (relative) nearer than the edge: surface curvature


def face_neighbors(faces: Tensor) -> Tensor:
    """Face adjacency across edges.

    Args:
        faces: [F, 3] int64. Edge k of face f joins faces[f, k] and faces[f, (k + 1) % 3].
    Returns:
        [F, 3] int64: the other face sharing edge k, or -1 on a boundary edge. Non-manifold
        edges (three or more faces) are paired in an arbitrary but deterministic order.
    """
    num_faces = faces.shape[0]
    if num_faces == 0:
        return faces.new_empty(0, 3)
    start = faces.reshape(-1)
    end = faces.roll(-1, dims=1).reshape(-1)
    lo = torch.minimum(start, end)
    hi = torch.maximum(start, end)
    key = lo * (int(faces.max()) + 1) + hi
    order = torch.argsort(key, stable=True)
    sorted_key = key[order]
    same = torch.nonzero(sorted_key[1:] == sorted_key[:-1]).squeeze(1)
    neighbors = torch.full((num_faces * 3,), -1, dtype=torch.int64, device=faces.device)
    first, second = order[same], order[same + 1]
    neighbors[second] = torch.div(first, 3, rounding_mode="floor")
    neighbors[first] = torch.div(second, 3, rounding_mode="floor")
    return neighbors.view(num_faces, 3)


def mesh_edges(faces: Tensor, neighbors: Tensor | None = None) -> Tensor:
    """Every edge of a mesh once, with the faces on both sides and its vertices.

    Args:
        faces: [F, 3] int64.
        neighbors: [F, 3] from :func:`face_neighbors` (computed when None).
    Returns:
        [5, E] int64 rows: face; the face across the edge (-1 on a boundary); the edge's
        vertices a and b, in ``face``'s winding order; ``face``'s third vertex c.
    """
    if neighbors is None:
        neighbors = face_neighbors(faces)
    num_faces = neighbors.shape[0]
    arange = torch.arange(num_faces, device=neighbors.device)[:, None]
    face, k = torch.nonzero((neighbors > arange) | (neighbors < 0), as_tuple=True)
    corner = face * 3
    other = neighbors.view(-1).index_select(0, corner + k)
    flat = faces.reshape(-1)
    a, b, c = (flat.index_select(0, corner + (k + i) % 3) for i in range(3))
    return torch.stack([face, other, a, b, c])


def antialias(
    image: Tensor,
    fragments: Fragments,
    neighbors: Tensor | None = None,
    *,
    edges: Tensor | None = None,
) -> Tensor:
    """Blend colours across visible silhouette edges (see the module docstring).

    Args:
        image: [B, H, W, C] float, pixel colours as rasterized (premultiplied when it carries
            an alpha channel; include alpha as a channel to antialias coverage too).
        fragments: the :class:`Fragments` the image was made from.
        neighbors: [F, 3] from :func:`face_neighbors`; computed when None (pass it to reuse
            across calls with the same faces).
        edges: [5, E] from :func:`mesh_edges` (derived from ``neighbors`` when None; pass
            it to reuse across calls with the same faces).
    Returns:
        [B, H, W, C], differentiable wrt ``image`` and ``fragments.clip_soa``.
    """
    batch, height, width, channels = image.shape
    pairs = blend_pairs(fragments, neighbors, edges=edges, dtype=image.dtype)
    if pairs is None:
        return image
    flat = image.reshape(-1, channels)
    return _Blend.apply(flat, *pairs).view(batch, height, width, channels)


def blend_pairs(
    fragments: Fragments,
    neighbors: Tensor | None = None,
    *,
    edges: Tensor | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor, Tensor] | None:
    """The blend that antialiasing applies to an image made from ``fragments``.

    Args:
        fragments, neighbors, edges: as for :func:`antialias`.
        dtype: of the weights (default: the clip vertices' dtype).
    Returns:
        None when no visible silhouette crosses a pixel pair, else (source [M], target [M]
        int64 flat pixel indices into B*H*W, weight [M] float): the blend is
        ``image[target] += weight * (image[source] - image[target])`` for all M at once.
        ``weight`` is differentiable wrt ``fragments.clip_soa``.
    """
    if edges is None:
        edges = mesh_edges(fragments.faces, neighbors)
    with torch.no_grad():
        crossings = _visible_crossings(fragments, edges)
    if crossings is None:
        return None
    p, o, edge_start, edge_end, direction, coord, vertical = crossings
    t = _crossing(fragments, edge_start, edge_end, direction, coord, vertical)
    past_middle = t.detach() >= 0.5
    target = torch.where(past_middle, o, p)
    source = torch.where(past_middle, p, o)
    return source, target, (t - 0.5).abs().to(dtype or t.dtype)


def unpack_blend(
    values: Tensor,
    fragments: Fragments,
    pairs: tuple[Tensor, Tensor, Tensor] | None,
    fill: Sequence[float] | Tensor | None = None,
) -> Tensor:
    """Packed values -> channels-first images, antialiased with :func:`blend_pairs`, in one step.

    Same result as ``antialias(unpack(values, fragments, fill), fragments)`` (moved to
    channels first) when every channel has the same fill (the blend is a convex combination
    of two pixels, so it commutes with compositing over a constant background), but the
    backward pass touches only the covered pixels and the blended pairs: the images are made
    in the [B, C, H, W] layout the rest of the pipeline (and CLIP) uses, so no image-sized
    copy or gradient buffer is needed on the way back.

    Args:
        values: [C, N] float values at ``fragments.pixel_index``.
        pairs: from :func:`blend_pairs`, or None for no blending.
        fill: [C] values of uncovered pixels (default 0).
    Returns:
        [B, C, H, W] contiguous, differentiable wrt ``values`` and the pairs' weights.
    """
    height, width = fragments.image_size
    batch, channels = fragments.batch_size, values.shape[0]
    if pairs is None:
        empty = fragments.pixel_index.new_empty(0)
        pairs = (empty, empty, values.new_empty(0))
    fill = values.new_zeros(channels) if fill is None else torch.as_tensor(fill).to(values)
    shape = (batch, channels, height * width)
    image = _UnpackBlend.apply(values, fragments.pixel_index, *pairs, shape, fill)
    return image.view(batch, channels, height, width)


def _planar_index(pixel: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Flat pixel indices into B*H*W -> [C, K] flat indices of their C channels in a
    [B, C, H*W] image (channel-major, the layout of [C, K] packed values)."""
    _, channels, plane = shape
    view = torch.div(pixel, plane, rounding_mode="floor")
    first = pixel + view * ((channels - 1) * plane)
    return first + torch.arange(0, channels * plane, plane, device=pixel.device)[:, None]


class _UnpackBlend(torch.autograd.Function):
    """Scatter packed values into a channels-first image filled with ``fill``, then blend
    pixel pairs (as :class:`_Blend`).

    Hand-written backward (why: speed): autograd through unpack + blend allocates and fills
    several image-sized gradient buffers, although only the N covered pixels and the M
    blended pairs carry gradient; this backward gathers the N covered pixels' gradients and
    adds the pairs' corrections to them. Background pixels have no input value, so the
    corrections that land on them are dropped.

    Args (to ``apply``):
        values: [C, N] float at the covered pixels ``pixel_index`` [N] int64 (ascending).
        source, target: [M] int64 flat pixel indices into B*H*W; weight: [M] float,
            differentiable.
        shape: (B, C, H*W); fill: [C] values of the other pixels (no gradient).
    Returns:
        [B * C * H * W] image, laid out [B, C, H, W].
    """

    @staticmethod
    def forward(ctx, values, pixel_index, source, target, weight, shape, fill):
        batch, channels, plane = shape
        image = fill.view(1, channels, 1).expand(batch, channels, plane).contiguous().view(-1)
        at_values = _planar_index(pixel_index, shape).view(-1)
        image.index_copy_(0, at_values, values.reshape(-1))
        at_source = _planar_index(source, shape)
        at_target = (at_source + (target - source)).view(-1)  # (same view, same planes)
        at_source = at_source.view(-1)
        difference = image.index_select(0, at_source) - image.index_select(0, at_target)
        difference = difference.view(channels, -1)  # [C, M]
        image.index_add_(0, at_target, (weight * difference).view(-1))
        ctx.save_for_backward(pixel_index, source, target, weight, difference, at_values, at_target)
        return image

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        pixel_index, source, target, weight, difference, at_values, at_target = ctx.saved_tensors
        grad_out = grad_out.reshape(-1)
        channels = difference.shape[0]
        grad_target = grad_out.index_select(0, at_target).view(channels, -1)  # [C, M]
        grad_values = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_values = grad_out.index_select(0, at_values).view(channels, -1)  # [C, N]
            spread = weight * grad_target
            ends = torch.cat([source, target])
            rows = torch.searchsorted(pixel_index, ends).clamp_(max=pixel_index.numel() - 1)
            covered = torch.nonzero(pixel_index.index_select(0, rows) == ends).squeeze(1)
            corrections = take_columns(torch.cat([spread, -spread], dim=1), covered)
            at = rows.index_select(0, covered)
            grad_values.scatter_add_(1, at.expand(channels, -1), corrections)
        if ctx.needs_input_grad[4]:
            grad_weight = (grad_target * difference).sum(0)
        return grad_values, None, None, None, grad_weight, None, None


class _Blend(torch.autograd.Function):
    """``out = image; out[target] += weight * (image[source] - image[target])``.

    Hand-written backward (why: speed): through autograd, the gather of the source and target
    colours costs a zero-filled image-sized gradient buffer plus an image-sized addition in
    the backward pass; here the gradient is scattered straight into one copy of the incoming
    gradient. Pixel pairs are
    distinct (one crossing per pair), but a pixel may be the target of several pairs, so the
    forward reads all colours before writing any (as the autograd version did).

    Args (to ``apply``):
        image: [N, C] float, flat pixel colours.
        source, target: [M] int64 flat pixel indices.
        weight: [M] float in [0, 0.5], differentiable.
    Returns:
        [N, C] blended colours.
    """

    @staticmethod
    def forward(ctx, image: Tensor, source: Tensor, target: Tensor, weight: Tensor) -> Tensor:
        difference = image.index_select(0, source) - image.index_select(0, target)
        ctx.save_for_backward(source, target, weight, difference)
        return image.index_add(0, target, weight[:, None] * difference)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        source, target, weight, difference = ctx.saved_tensors
        grad_target = grad_out.index_select(0, target)  # [M, C]
        grad_image = grad_weight = None
        if ctx.needs_input_grad[0]:
            spread = weight[:, None] * grad_target
            grad_image = grad_out.index_add(0, source, spread).index_add_(0, target, -spread)
        if ctx.needs_input_grad[3]:
            grad_weight = (grad_target * difference).sum(1)
        return grad_image, None, None, grad_weight


def _screen(clip: Tensor, image_size: tuple[int, int]) -> tuple[Tensor, Tensor]:
    """Clip-space points [4, ...] (rows x, y, z, w) -> (col, row) [...] in pixel-index
    coordinates (centres at integers)."""
    height, width = image_size
    w = clip[3]
    col = (clip[0] / w + 1) * (width / 2) - 0.5
    row = (1 - clip[1] / w) * (height / 2) - 0.5
    return col, row


def _silhouette_edges(fragments: Fragments, edges: Tensor) -> tuple[Tensor, Tensor]:
    """Silhouette edges of every view.

    Args:
        edges: [5, E] from :func:`mesh_edges`.
    Returns:
        (view [S], corners [3, S] vertices a, b, c of the edge's face): edge (a, b) is a
        silhouette in ``view``: a boundary edge, or its neighbour turns the other way on
        screen. Faces with a vertex behind the camera plane are left out.
    """
    orientation = fragments.face_orientation  # [B, F]
    has_boundary = edges.shape[1] > 0 and int(edges[1].min()) < 0
    # (the -1 across a boundary is clamped to a valid column here and replaced below; a closed
    # mesh has none, and its columns are read as they are)
    sides = edges[:2].clamp(min=0) if has_boundary else edges[:2]
    own = take_columns(orientation, sides[0])  # [B, E]
    across = take_columns(orientation, sides[1])
    if has_boundary:
        across = torch.where(edges[1] < 0, -own, across)
    # orientations are -1, 0 or 1: the product is negative where both are known and differ
    silhouette = (own * across) < 0  # [B, E]
    view, edge = torch.nonzero(silhouette, as_tuple=True)
    return view, take_columns(edges[2:], edge)


def _visible_crossings(fragments: Fragments, edges: Tensor):
    """Pixel pairs split by a visible silhouette edge (no gradients).

    Per-edge values travel in one table, gathered once per crossing (why: a few larger ops
    instead of a gather per value; this runs on every render).

    Returns:
        None, or (p [M], o [M] flat pixel indices, edge_start [M], edge_end [M] rows of
        ``fragments.clip_soa``'s columns, direction [M] (+1/-1: o = p + direction along the axis),
        coord [M, 2] (col, row) of p, vertical [M] bool (pairs along a column)).
    """
    height, width = fragments.image_size
    flat_clip = fragments.clip_soa.detach()  # [4, B*V]
    num_vertices = fragments.clip_vertices.shape[1]
    if fragments.faces.shape[0] == 0 or fragments.pixel_index.numel() == 0:
        return None
    view, corners = _silhouette_edges(fragments, edges)
    if view.numel() == 0:
        return None
    device = view.device
    rows = corners.add_(view * num_vertices)  # [3, S] rows of a, b, c
    points = take_columns(flat_clip, rows.view(-1))  # [4, 3S]
    col, row = (c.view(3, -1) for c in _screen(points, (height, width)))
    depth = points[3].view(3, -1)  # view depth w of a, b, c
    # the side of the edge its face lies on (sign of the 2D cross product)
    side = torch.sign((col[1] - col[0]) * (row[2] - row[0]) - (row[1] - row[0]) * (col[2] - col[0]))
    vertical = (col[1] - col[0]).abs() > (row[1] - row[0]).abs()  # closer to horizontal
    # along: the axis pairs run along; across: the axis whose integer lines the edge crosses
    along = torch.where(vertical, row[:2], col[:2])  # [2, S] at a and b
    across = torch.where(vertical, col[:2], row[:2])
    lines = torch.where(vertical, width, height)
    first = torch.ceil(across.amin(0)).clamp_(min=0)
    last = torch.minimum(torch.ceil(across.amax(0)), lines.to(first.dtype))
    counts = (last - first).clamp_(min=0).long()
    total = int(counts.sum())
    if total == 0:
        return None
    edge = torch.repeat_interleave(
        torch.arange(len(counts), device=device), counts, output_size=total
    )
    offset = torch.arange(total, device=device) - (torch.cumsum(counts, 0) - counts)[edge]
    table = torch.cat([along, across, col[:2], row[:2], depth[:2], first[None]])
    a0, a1, c0, c1, ca, cb, ra, rb, depth_a, depth_b, first_line = take_columns(table, edge)
    is_vertical = vertical.index_select(0, edge)
    line = first_line.long() + offset  # integer row (or column) of pixel centres crossed
    line_f = line.to(c0.dtype)
    u = (line_f - c0) / (c1 - c0)
    hit = a0 + u * (a1 - a0)
    low_f = torch.floor(hit)
    low = low_f.long()
    extent = torch.where(is_vertical, height, width)
    inside_image = (low >= 0) & (low + 1 < extent)
    # is the pixel at `low` on the face's side of the edge?
    low_col = torch.where(is_vertical, line_f, low_f)
    low_row = torch.where(is_vertical, low_f, line_f)
    low_side = torch.sign((cb - ca) * (low_row - ra) - (rb - ra) * (low_col - ca))
    p_is_low = low_side == side.index_select(0, edge)
    along_p = low + (~p_is_low).long()
    direction = torch.where(p_is_low, 1, -1)
    p_col = torch.where(is_vertical, line, along_p)
    p_row = torch.where(is_vertical, along_p, line)
    view_e = view.index_select(0, edge)
    p = (view_e * height + p_row.clamp(0, height - 1)) * width + p_col.clamp(0, width - 1)
    o = p + direction * torch.where(is_vertical, width, 1)
    # visibility against the depth buffer
    buffer = torch.full((fragments.num_pixels,), torch.inf, dtype=flat_clip.dtype, device=device)
    buffer[fragments.pixel_index] = fragments.pixel_depth.detach().to(flat_clip.dtype)
    edge_depth = depth_a + u * (depth_b - depth_a)
    o_depth = buffer.index_select(0, o.clamp(0, buffer.numel() - 1))
    p_depth = buffer.index_select(0, p.clamp(0, buffer.numel() - 1))
    visible = (
        inside_image
        & (o_depth > edge_depth * (1 + 1e-5))
        & (p_depth >= edge_depth * (1 - _OCCLUSION_SLACK))
    )
    keep = torch.nonzero(visible).squeeze(1)
    if keep.numel() == 0:
        return None
    # one crossing per pixel pair: the front-most edge (sort by pair, then depth)
    pair_id = torch.minimum(p, o).index_select(0, keep) * 2 + is_vertical.index_select(0, keep)
    depth_bits = edge_depth.index_select(0, keep).float().clamp(min=0).view(torch.int32).long()
    order = torch.argsort((pair_id << 31) | depth_bits, stable=True)
    sorted_pair = pair_id.index_select(0, order)
    first_of_pair = torch.ones_like(sorted_pair, dtype=torch.bool)
    first_of_pair[1:] = sorted_pair[1:] != sorted_pair[:-1]
    keep = keep.index_select(0, order[first_of_pair])
    ends = take_columns(rows[:2], edge.index_select(0, keep))
    coord = torch.stack([p_col, p_row], dim=1).index_select(0, keep)
    return (
        p.index_select(0, keep),
        o.index_select(0, keep),
        ends[0],
        ends[1],
        direction.index_select(0, keep),
        coord,
        is_vertical.index_select(0, keep),
    )


def _crossing(
    fragments: Fragments,
    edge_start: Tensor,
    edge_end: Tensor,
    direction: Tensor,
    coord: Tensor,
    vertical: Tensor,
) -> Tensor:
    """Differentiable distance [M] (pixels, clamped to 0..1) from p's centre to the edge."""
    ends = take_columns(fragments.clip_soa, torch.cat([edge_start, edge_end]))  # [4, 2M]
    (a_col, b_col), (a_row, b_row) = (c.chunk(2) for c in _screen(ends, fragments.image_size))
    px = coord[:, 0].to(a_col.dtype)
    py = coord[:, 1].to(a_col.dtype)
    along_a = torch.where(vertical, a_row, a_col)
    along_b = torch.where(vertical, b_row, b_col)
    across_a = torch.where(vertical, a_col, a_row)
    across_b = torch.where(vertical, b_col, b_row)
    p_along = torch.where(vertical, py, px)
    p_across = torch.where(vertical, px, py)
    hit = along_a + (p_across - across_a) * (along_b - along_a) / (across_b - across_a)
    return ((hit - p_along) * direction.to(hit.dtype)).clamp(0.0, 1.0)
