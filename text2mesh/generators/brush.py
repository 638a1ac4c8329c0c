"""The strokes generator's brush: an analytic differentiable stroke rasterizer, strokes as cubic Bezier curves.

A stroke is a cubic Bezier curve (4 control points) drawn with a round brush of some width,
colour and opacity. Coverage of a pixel is a sigmoid of (half width - distance to the curve),
so every stroke parameter receives gradients from the pixels near the stroke; strokes are
composited in order with the usual "over" operator onto a background colour or image.

Coordinates: ``points[..., 0]`` is x in [0, 1] from the left edge to the right edge of the
picture, ``points[..., 1]`` is y in [0, 1] from the TOP row to the bottom row (like PIL).
Widths are fractions of the picture's shorter side. Distances are measured in the same
short-side units, so round brushes stay round on non-square pictures.

The distance to a curve is the distance to its polyline of ``segments`` chords. Each stroke is
evaluated only in a pixel window around its control points; inside it the nearest chord per
pixel is found without autograd and only that chord's distance is recomputed with autograd
(the gradient of the exact minimum, at a fraction of the memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

EDGE_SLOPE = 4.0  # sigmoid steepness across a brush edge, per softness pixel

__all__ = ["Strokes", "bezier_points", "composite_over", "paint_in_order", "random_strokes", "render_strokes", "stroke_coverage"]


@dataclass(frozen=True)
class Strokes:
    """N brush strokes, drawn in order (stroke 0 first, at the bottom).

    Attributes:
        points: [N, 4, 2] float cubic Bezier control points, (x, y) in [0, 1], y down.
        widths: [N] float brush diameters as fractions of the picture's shorter side (> 0).
        colors: [N, 3] float RGB in [0, 1].
        opacities: [N] float in [0, 1].
    """

    points: Tensor
    widths: Tensor
    colors: Tensor
    opacities: Tensor

    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, index) -> Strokes:
        """Select strokes by index/slice/mask (keeps the stroke dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Strokes(
            self.points[index], self.widths[index], self.colors[index], self.opacities[index]
        )

    def detach(self) -> Strokes:
        return Strokes(
            self.points.detach(), self.widths.detach(), self.colors.detach(), self.opacities.detach()
        )


def bezier_points(control: Tensor, n: int) -> Tensor:
    """Points along cubic Bezier curves.

    Args:
        control: [N, 4, 2] control points.
        n: number of points per curve (>= 2), at evenly spaced curve parameters t in [0, 1].
    Returns:
        [N, n, 2] points (differentiable wrt ``control``).
    """
    t = torch.linspace(0.0, 1.0, n, dtype=control.dtype, device=control.device)[:, None]
    s = 1.0 - t
    basis = torch.cat([s**3, 3 * s * s * t, 3 * s * t * t, t**3], dim=1)  # [n, 4]
    return torch.einsum("tk,nkc->ntc", basis, control)


def random_strokes(
    n: int,
    *,
    width_range: tuple[float, float] = (0.02, 0.08),
    length: float = 0.15,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Strokes:
    """N random short strokes spread over the picture.

    Each stroke starts at a uniform random point; its other control points follow a random
    walk with steps of about ``length / 3``. Colours are uniform, opacities 1.

    Returns:
        Strokes on ``device`` with ``dtype``.
    """
    start = torch.rand(n, 1, 2, generator=generator, dtype=torch.float64)
    steps = (torch.rand(n, 3, 2, generator=generator, dtype=torch.float64) - 0.5) * (2 * length / 3)
    points = torch.cat([start, start + torch.cumsum(steps, dim=1)], dim=1).clamp(0.0, 1.0)
    lo, hi = width_range
    widths = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
    colors = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    opacities = torch.ones(n, dtype=torch.float64)
    return Strokes(
        *(t.to(device=device, dtype=dtype) for t in (points, widths, colors, opacities))
    )


def _stroke_windows(
    strokes: Strokes, image_size: tuple[int, int], margin: float
) -> tuple[Tensor, tuple[int, int]]:
    """Pixel windows holding each stroke (its control points' box, padded).

    A Bezier curve lies inside the box of its control points; the box is padded by half the
    brush width plus ``margin`` pixels. All windows get the size of the largest one.

    Returns:
        (origins [N, 2] int64 (x0, y0) pixel of each window's top-left corner, (h, w) size).
    """
    height, width = image_size
    short = min(height, width)
    with torch.no_grad():
        pts = strokes.points.detach() * torch.tensor([width, height], dtype=strokes.points.dtype,
                                                     device=strokes.points.device)
        pad = strokes.widths.detach()[:, None] * (short / 2) + margin  # [N, 1]
        lo = (pts.amin(1) - pad).floor().clamp_min(0)
        hi = (pts.amax(1) + pad).ceil().clamp_min(1)
        hi = torch.minimum(hi, torch.tensor([width, height], dtype=hi.dtype, device=hi.device))
        lo = torch.minimum(lo, hi - 1)
        size = (hi - lo).amax(0).long().tolist()
    return lo.long(), (max(size[1], 1), max(size[0], 1))


def _segment_distance(q: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Distances from points to segments: q, a, b broadcastable [..., 2] -> [...]."""
    ab = b - a
    t = ((q - a) * ab).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)
    closest = a + t.clamp(0.0, 1.0).unsqueeze(-1) * ab
    return ((q - closest) ** 2).sum(-1).add(1e-12).sqrt()


def stroke_coverage(
    strokes: Strokes,
    image_size: tuple[int, int],
    *,
    segments: int = 16,
    softness: float = 1.0,
    margin: float = 3.0,
) -> Tensor:
    """Per-stroke brush coverage of every pixel (before opacity).

    Coverage is computed inside a window around each stroke (see ``margin``) and is exactly 0
    outside it.

    Args:
        strokes: N strokes.
        image_size: (H, W) in pixels.
        segments: chords per curve.
        softness: width of the anti-aliased edge in pixels (> 0): coverage goes from 12% to
            88% over that width across the brush edge.
        margin: how far outside the brush edge coverage is computed, in units of ``softness``
            pixels (3: the dropped tail is below 1e-5).
    Returns:
        [N, H, W] float in [0, 1): sigmoid(4 (width / 2 - distance) / softness) with
        distances in pixels, differentiable wrt points and widths.
    """
    height, width = image_size
    short = min(height, width)
    n = len(strokes)
    dtype, device = strokes.points.dtype, strokes.points.device
    origins, (win_h, win_w) = _stroke_windows(strokes, image_size, margin * softness)
    iy = origins[:, 1, None, None] + torch.arange(win_h, device=device)[None, :, None]
    ix = origins[:, 0, None, None] + torch.arange(win_w, device=device)[None, None, :]
    iy, ix = torch.broadcast_tensors(iy, ix)  # [N, h, w] pixel rows / columns
    inside = ((iy < height) & (ix < width)).reshape(n, -1)
    q = torch.stack([ix, iy], dim=-1).reshape(n, -1, 2).to(dtype).add(0.5) / short  # [N, P, 2]
    scale = torch.tensor([width / short, height / short], dtype=dtype, device=device)
    curve = bezier_points(strokes.points * scale, segments + 1)  # [N, S+1, 2]
    with torch.no_grad():
        a, ab = curve[:, :-1].detach(), curve.diff(dim=1).detach()  # [N, S, 2]
        qa = q[:, None] - a[:, :, None]  # [N, S, P, 2]
        t = (qa * ab[:, :, None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[..., None]
        offset = qa - t.clamp_(0.0, 1.0)[..., None] * ab[:, :, None]
        nearest = (offset * offset).sum(-1).argmin(1)  # [N, P]
    index = nearest[..., None].expand(-1, -1, 2)
    a = torch.gather(curve[:, :-1], 1, index)  # [N, P, 2]
    b = torch.gather(curve[:, 1:], 1, index)
    distance = _segment_distance(q, a, b)  # [N, P]
    edge = softness / (EDGE_SLOPE * short)
    window = torch.sigmoid((strokes.widths[:, None] / 2 - distance) / edge) * inside
    flat = (iy * width + ix).reshape(n, -1).masked_fill(~inside, 0)
    coverage = torch.zeros(n, height * width, dtype=dtype, device=device)
    coverage = coverage.scatter_add(1, flat, window)
    return coverage.reshape(n, height, width)


def render_strokes(
    strokes: Strokes,
    image_size: tuple[int, int],
    background: Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0),
    *,
    segments: int = 16,
    softness: float = 1.0,
) -> Tensor:
    """Paint strokes in order onto a background.

    Args:
        strokes: N strokes (N may be 0).
        image_size: (H, W) in pixels.
        background: an RGB colour (tuple or [3] tensor), or a [3, H, W] image in [0, 1].
        segments, softness: see :func:`stroke_coverage`.
    Returns:
        [3, H, W] float image in [0, 1], differentiable wrt every stroke parameter (and the
        background image).
    """
    height, width = image_size
    dtype, device = strokes.points.dtype, strokes.points.device
    canvas = torch.as_tensor(background).to(device=device, dtype=dtype)
    if canvas.dim() == 1:
        canvas = canvas[:, None, None]
    canvas = canvas.expand(3, height, width)
    if len(strokes) == 0:
        return canvas.clone()
    alpha = stroke_coverage(strokes, image_size, segments=segments, softness=softness)
    alpha = alpha * strokes.opacities[:, None, None]  # [N, H, W]
    return composite_over(alpha, strokes.colors.to(dtype), canvas)


def paint_in_order(
    strokes: Strokes,
    image_size: tuple[int, int],
    background: Tensor | tuple[float, float, float],
    counts: list[int],
    *,
    segments: int = 16,
    softness: float = 1.0,
) -> Tensor:
    """The painting after each of ``counts`` strokes (an animation of it being painted).

    Every stroke's coverage is found once and painted over the previous frame, so K frames
    of N strokes cost one :func:`render_strokes`, not K.

    Args:
        strokes, image_size, background, segments, softness: as :func:`render_strokes`.
        counts: K stroke counts, ascending, each in [0, N].
    Returns:
        [K, 3, H, W]: frame k equals ``render_strokes(strokes[:counts[k]], ...)``.
    """
    height, width = image_size
    dtype, device = strokes.points.dtype, strokes.points.device
    canvas = torch.as_tensor(background).to(device=device, dtype=dtype)
    canvas = (canvas[:, None, None] if canvas.dim() == 1 else canvas).expand(3, height, width).clone()
    alpha = stroke_coverage(strokes, image_size, segments=segments, softness=softness) if len(strokes) else None
    frames, painted = [], 0
    for count in counts:
        for index in range(painted, count):
            a = alpha[index] * strokes.opacities[index]
            canvas = canvas * (1 - a) + strokes.colors[index].to(dtype)[:, None, None] * a
        painted = max(painted, count)
        frames.append(canvas)
    return torch.stack(frames)


def composite_over(alpha: Tensor, colors: Tensor, background: Tensor) -> Tensor:
    """Layers painted in order (layer 0 first) with the "over" operator, in closed form.

    ``result = background * prod_j (1 - a_j) + sum_i c_i a_i prod_{j > i} (1 - a_j)``, the
    products taken with one reversed cumulative product instead of a loop over layers.

    Args:
        alpha: [N, H, W] layer opacities in [0, 1].
        colors: [N, 3] layer colours.
        background: [3, H, W].
    Returns:
        [3, H, W].
    """
    keep = 1.0 - alpha  # [N, H, W]
    # after[i] = prod_{j > i} keep[j]: exclusive reversed cumulative product
    after = torch.cumprod(torch.cat([torch.ones_like(keep[:1]), keep.flip(0)[:-1]]), dim=0).flip(0)
    painted = torch.einsum("nhw,nc->chw", alpha * after, colors)
    return background * (after[0] * keep[0]) + painted
