"""What a signal on a mesh's vertices looks like, as numbers: how rough, how directional, how
bumpy a displacement is, which way its detail points, and how striped a colour is.

These are the measures behind the claims "a spiky prompt gives spikes" (not pits), "ridged gives
grooves in one direction", "bumpy gives isolated bumps" and "stripes come out striped" (tests and
``scripts/bench_steering.py``). All take a mesh on the unit sphere (as the stylizer sees it).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .structures import face_areas, face_normals

__all__ = [
    "bump_count",
    "detail_skewness",
    "direction_share",
    "roughness",
    "stripe_score",
    "uniform_laplacian",
]


def _neighbour_mean(values: Tensor, faces: Tensor) -> Tensor:
    """Mean of each vertex's edge neighbours: values [V] or [V, C] -> same shape (edges shared by
    two faces count twice, which weights a neighbour by its number of shared faces)."""
    src = faces[:, [0, 1, 2, 1, 2, 0]].reshape(-1)
    dst = faces[:, [1, 2, 0, 0, 1, 2]].reshape(-1)
    flat = values.reshape(len(values), -1)
    total = torch.zeros_like(flat).index_add_(0, dst, flat[src])
    count = torch.zeros(len(values), dtype=flat.dtype).index_add_(0, dst, torch.ones(len(src), dtype=flat.dtype))
    return (total / count.clamp(min=1)[:, None]).reshape(values.shape)


def uniform_laplacian(values: Tensor, faces: Tensor) -> Tensor:
    """Each vertex's value minus the mean of its neighbours: values [V] (or [V, C]), faces [F, 3]."""
    return values - _neighbour_mean(values, faces)


def roughness(displacement: Tensor, faces: Tensor) -> float:
    """Mean |uniform Laplacian| of a displacement [V]: the energy at the mesh's finest scale.
    Spikes and sharp grooves raise it; a constant offset or a broad swell leaves it near 0."""
    return float(uniform_laplacian(displacement, faces).abs().mean())


def _face_gradients(values: Tensor, vertices: Tensor, faces: Tensor) -> tuple[Tensor, Tensor]:
    """Gradient of a piecewise-linear vertex signal inside each face: ([F, 3] vectors in the face
    plane, [F] face areas)."""
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    fa, fb, fc = (values[faces[:, i]] for i in range(3))
    n, area = face_normals(vertices, faces), face_areas(vertices, faces)
    grad = (fa[:, None] * torch.linalg.cross(n, c - b) + fb[:, None] * torch.linalg.cross(n, a - c)
            + fc[:, None] * torch.linalg.cross(n, b - a)) / (2 * area).clamp(min=1e-12)[:, None]
    return grad, area


def direction_share(displacement: Tensor, vertices: Tensor, faces: Tensor) -> float:
    """How much of a displacement's gradient points one way: the largest eigenvalue of the
    area-weighted structure tensor sum(g g^T) over faces, as a share of its trace.

    1/3 for gradients spread over every direction (bumps, noise on a sphere), up to ~0.7-0.9 for
    parallel grooves (their gradient lies along one axis wherever the surface faces it).
    """
    grad, area = _face_gradients(displacement, vertices, faces)
    tensor = (grad * area[:, None]).T @ grad
    eigenvalues = torch.linalg.eigvalsh(tensor)
    return float(eigenvalues[-1] / eigenvalues.sum().clamp(min=1e-20))


def _smoothed(values: Tensor, faces: Tensor, passes: int) -> Tensor:
    for _ in range(passes):
        values = _neighbour_mean(values, faces)
    return values


def _detail(displacement: Tensor, faces: Tensor) -> Tensor:
    """A displacement's fine detail [V]: lightly smoothed (single-vertex noise out) minus its broad
    shape (a swell or a wave's long trend)."""
    fine = _smoothed(displacement, faces, 2)
    return fine - _smoothed(fine, faces, 8)


def detail_skewness(displacement: Tensor, faces: Tensor) -> float:
    """Which way a displacement's detail points: the skewness E[x^3] / E[x^2]^1.5 of its detail.

    Studs and spikes standing out of the surface give a long positive tail (positive), the same
    spikes turned inward, sharp pits, a negative one; symmetric detail (waves, grooves' triangle
    profile, noise) near 0. What tells "a spiky object" that came out spiky from one that came
    out pitted: both are equally rough."""
    detail = _detail(displacement, faces)
    detail = detail - detail.mean()
    return float(detail.pow(3).mean() / detail.pow(2).mean().clamp(min=1e-20).pow(1.5))


def bump_count(displacement: Tensor, vertices: Tensor, faces: Tensor, top: float = 0.15, radius: float = 0.12,
               min_height: float = 0.004, roundness: float = 0.4) -> int:
    """Isolated bumps: connected regions of the highest ``top`` share of the displacement's detail
    (lightly smoothed, so single-vertex noise does not count, minus its broad shape; at least
    ``min_height`` and a quarter of the highest detail) of 3 or more vertices that stay within
    ``radius`` of their centre (radius of gyration; all in unit-sphere units) and are round: their
    narrower spread at least ``roundness`` times their wider one. Bumps and spikes give many;
    parallel grooves give long bands (too wide to count); waves give a few large regions or
    short pieces of crest (too elongated)."""
    import trimesh

    detail = _detail(displacement, faces)
    high = (detail >= torch.quantile(detail, 1 - top)) & (detail >= max(min_height, 0.25 * float(detail.max())))
    edges = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    edges = edges[high[edges[:, 0]] & high[edges[:, 1]]]
    regions = trimesh.graph.connected_components(edges.numpy(), min_len=3, nodes=high.nonzero().flatten().numpy())
    count = 0
    for region in regions:
        points = vertices[torch.as_tensor(region)]
        centred = points - points.mean(0)
        spread = torch.linalg.eigvalsh(centred.T @ centred / len(points))  # ascending
        round_enough = float(spread[1]) >= roundness**2 * float(spread[2])
        count += int(centred.pow(2).sum(1).mean().sqrt() <= radius and round_enough)
    return count


def _sphere_directions(n: int) -> Tensor:
    """n directions [n, 3] spread evenly over a hemisphere (a Fibonacci lattice)."""
    i = torch.arange(n, dtype=torch.float32) + 0.5
    z = i / n
    phi = i * math.pi * (3 - math.sqrt(5))
    r = (1 - z**2).sqrt()
    return torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], dim=1)


def stripe_score(colours: Tensor, vertices: Tensor, bins: int = 48, directions: int = 200) -> tuple[float, int]:
    """How striped a per-vertex colour [V, 3] is, and how many stripes.

    Along each of ``directions`` axes the vertices are binned by their position on the axis; the
    share of the colour's variance that the bin means explain (R^2) is 1 when colour depends on
    that coordinate only (parallel stripes, a gradient) and low for blotches or dots. Returns the
    best axis's share and the number of colour bands along it (sign changes of the binned
    profile around its mean, + 1), so a single gradient (1-2 bands) is told from stripes. A colour
    that does not vary (per-vertex spread under ``1e-3``) has no stripes: (0.0, 0), not the share
    its rounding noise would give.
    """
    centred = colours - colours.mean(0)
    if float(centred.pow(2).sum(1).mean()) < 1e-6:
        return 0.0, 0
    total = centred.pow(2).sum()
    principal = torch.linalg.svd(centred, full_matrices=False).Vh[0]  # [3] the colour's main axis
    best, bands = 0.0, 0
    for axis in _sphere_directions(directions):
        t = vertices @ axis
        index = ((t - t.min()) / (t.max() - t.min()).clamp(min=1e-9) * bins).long().clamp(max=bins - 1)
        count = torch.bincount(index, minlength=bins).float()
        means = torch.zeros(bins, 3).index_add_(0, index, centred) / count.clamp(min=1)[:, None]
        share = float((means[index].pow(2).sum()) / total)
        if share > best:
            main = means[count > 0] @ principal
            best, bands = share, int((main[1:].sign() * main[:-1].sign() < 0).sum()) + 1
    return best, bands
