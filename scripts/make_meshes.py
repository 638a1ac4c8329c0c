"""Make the shipped base meshes in ``meshes/`` deterministically from code.

    python scripts/make_meshes.py [--out meshes] [--only human]

Meshes (all y-up, facing +z, closed, outward-facing counter-clockwise triangles):

- ``sphere.obj``: an icosphere (subdivision 5, 20480 faces).
- ``vase.obj``: a lathe (surface of revolution) with a wall, a lip and an inner floor.
- ``human.obj``: a standing humanoid, a smooth union of capsules and ellipsoids (a signed
  distance function) meshed with marching cubes, smoothed, decimated to 56k faces and relaxed
  (tangential steps projected back onto the distance function's zero set, so no slivers or folds).
- ``dog.obj``: a four-legged animal built the same way.

The implicit shapes need scikit-image for marching cubes (``pip install scikit-image``); it is
a dependency of this script only, since the meshes are committed files.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parent.parent

Field = Callable[[np.ndarray], np.ndarray]  # points [N, 3] -> signed distance [N] (negative inside)


# ---------------------------------------------------------------------------- implicit shapes


def capsule(a: tuple[float, float, float], b: tuple[float, float, float], ra: float, rb: float | None = None) -> Field:
    """A segment a-b thickened by a radius going linearly from ``ra`` at a to ``rb`` at b."""
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rb = ra if rb is None else rb
    axis = b_ - a_
    length2 = float(axis @ axis)

    def sdf(p: np.ndarray) -> np.ndarray:
        t = np.clip(((p - a_) @ axis) / length2, 0.0, 1.0)
        closest = a_ + t[:, None] * axis
        return np.linalg.norm(p - closest, axis=1) - (ra + (rb - ra) * t)

    return sdf


def ellipsoid(center: tuple[float, float, float], radii: tuple[float, float, float]) -> Field:
    """An axis-aligned ellipsoid (approximate distance, exact zero set)."""
    c, r = np.asarray(center, dtype=np.float64), np.asarray(radii, dtype=np.float64)

    def sdf(p: np.ndarray) -> np.ndarray:
        q = (p - c) / r
        k0 = np.linalg.norm(q, axis=1)
        k1 = np.linalg.norm(q / r, axis=1)
        return k0 * (k0 - 1.0) / np.maximum(k1, 1e-12)

    return sdf


def smooth_union(parts: list[Field], k: float) -> Field:
    """Polynomial smooth minimum of the parts' distances, blending within ``k``."""

    def sdf(p: np.ndarray) -> np.ndarray:
        d = parts[0](p)
        for part in parts[1:]:
            e = part(p)
            h = np.maximum(k - np.abs(d - e), 0.0) / k
            d = np.minimum(d, e) - h * h * k * 0.25
        return d

    return sdf


def smooth_subtract(base: Field, cut: Field, k: float) -> Field:
    """``base`` with ``cut`` carved out, blended within ``k``."""

    def sdf(p: np.ndarray) -> np.ndarray:
        d, e = base(p), -cut(p)
        h = np.maximum(k - np.abs(d - e), 0.0) / k
        return np.maximum(d, e) + h * h * k * 0.25

    return sdf


def mirrored(make: Callable[[float], Field]) -> list[Field]:
    """The left (+x) and right (-x) copies of a part built by ``make(side)``."""
    return [make(1.0), make(-1.0)]


def human_sdf() -> Field:
    """A standing humanoid, 1.8 units tall, feet on y=0, facing +z, arms slightly out."""
    head = smooth_union(
        [
            ellipsoid((0.0, 1.64, 0.0), (0.082, 0.108, 0.098)),  # skull
            ellipsoid((0.0, 1.585, 0.028), (0.064, 0.06, 0.07)),  # jaw and chin
            ellipsoid((0.0, 1.666, 0.07), (0.06, 0.02, 0.03)),  # brow ridge
            capsule((0.0, 1.655, 0.092), (0.0, 1.612, 0.112), 0.009, 0.014),  # nose
            *mirrored(lambda s: ellipsoid((s * 0.085, 1.635, -0.005), (0.013, 0.03, 0.02))),  # ears
        ],
        k=0.018,
    )
    head = smooth_subtract(
        head,
        smooth_union(mirrored(lambda s: ellipsoid((s * 0.032, 1.645, 0.096), (0.018, 0.011, 0.014))), k=0.01),
        k=0.018,
    )  # eye sockets
    trunk = smooth_union(
        [
            capsule((0.0, 1.42, -0.005), (0.0, 1.58, 0.0), 0.047),  # neck
            *mirrored(lambda s: capsule((s * 0.04, 1.47, -0.02), (s * 0.16, 1.415, -0.01), 0.045)),  # trapezius
            ellipsoid((0.0, 1.29, 0.0), (0.165, 0.17, 0.1)),  # chest
            ellipsoid((0.0, 1.08, -0.005), (0.135, 0.18, 0.088)),  # waist
            ellipsoid((0.0, 0.93, -0.01), (0.16, 0.12, 0.1)),  # hips
            capsule((-0.16, 1.4, -0.01), (0.16, 1.4, -0.01), 0.06),  # shoulders
            *mirrored(lambda s: ellipsoid((s * 0.075, 1.31, 0.06), (0.07, 0.06, 0.05))),  # chest muscles
            *mirrored(lambda s: ellipsoid((s * 0.075, 0.87, -0.06), (0.075, 0.075, 0.06))),  # seat
        ],
        k=0.06,
    )
    arms = [
        *mirrored(lambda s: capsule((s * 0.19, 1.4, -0.01), (s * 0.25, 1.12, -0.02), 0.052, 0.04)),
        *mirrored(lambda s: capsule((s * 0.25, 1.12, -0.02), (s * 0.29, 0.87, 0.02), 0.04, 0.03)),
        *mirrored(lambda s: ellipsoid((s * 0.30, 0.80, 0.03), (0.022, 0.065, 0.042))),  # palms
        *mirrored(lambda s: capsule((s * 0.29, 0.83, 0.065), (s * 0.285, 0.78, 0.075), 0.012, 0.01)),  # thumbs
    ]
    legs = [
        *mirrored(lambda s: capsule((s * 0.09, 0.92, -0.01), (s * 0.1, 0.5, 0.0), 0.085, 0.058)),
        *mirrored(lambda s: capsule((s * 0.1, 0.5, 0.0), (s * 0.105, 0.1, -0.025), 0.055, 0.037)),
        *mirrored(lambda s: ellipsoid((s * 0.105, 0.045, 0.045), (0.048, 0.045, 0.12))),  # feet
    ]
    body = smooth_union([trunk, *arms], k=0.03)
    body = smooth_union([body, *legs], k=0.04)
    return smooth_union([body, head], k=0.035)


def dog_sdf() -> Field:
    """A four-legged animal (a dog) standing on y=0, head towards +z."""
    body = smooth_union(
        [
            ellipsoid((0.0, 0.55, 0.0), (0.17, 0.17, 0.42)),  # torso
            ellipsoid((0.0, 0.6, 0.28), (0.18, 0.19, 0.2)),  # chest
            capsule((0.0, 0.68, 0.36), (0.0, 0.86, 0.5), 0.09),  # neck
        ],
        k=0.08,
    )
    head = smooth_union(
        [
            ellipsoid((0.0, 0.92, 0.55), (0.11, 0.11, 0.12)),  # skull
            capsule((0.0, 0.89, 0.6), (0.0, 0.86, 0.75), 0.06, 0.045),  # snout
            ellipsoid((0.0, 0.885, 0.79), (0.03, 0.025, 0.02)),  # nose
            *mirrored(lambda s: capsule((s * 0.07, 1.0, 0.52), (s * 0.1, 1.1, 0.49), 0.035, 0.012)),  # ears
        ],
        k=0.03,
    )
    legs = [
        *mirrored(lambda s: capsule((s * 0.1, 0.55, 0.3), (s * 0.1, 0.05, 0.32), 0.06, 0.04)),  # front
        *mirrored(lambda s: capsule((s * 0.1, 0.55, -0.3), (s * 0.1, 0.3, -0.36), 0.075, 0.05)),  # hind thigh
        *mirrored(lambda s: capsule((s * 0.1, 0.3, -0.36), (s * 0.1, 0.05, -0.32), 0.05, 0.04)),  # hind shin
        *mirrored(lambda s: ellipsoid((s * 0.1, 0.035, 0.35), (0.05, 0.035, 0.07))),  # front paws
        *mirrored(lambda s: ellipsoid((s * 0.1, 0.035, -0.29), (0.05, 0.035, 0.07))),  # hind paws
    ]
    tail = capsule((0.0, 0.62, -0.4), (0.0, 0.85, -0.62), 0.045, 0.02)
    animal = smooth_union([body, *legs, tail], k=0.05)
    return smooth_union([animal, head], k=0.05)


@dataclass(frozen=True)
class Grid:
    """An axis-aligned sampling box for marching cubes."""

    lower: tuple[float, float, float]
    upper: tuple[float, float, float]
    pitch: float


def mesh_sdf(
    sdf: Field, grid: Grid, faces: int, smooth_iterations: int = 10, relax_iterations: int = 15
) -> trimesh.Trimesh:
    """Marching cubes of ``sdf``'s zero set, Taubin-smoothed, decimated to ``faces`` and relaxed."""
    from skimage.measure import marching_cubes

    # an odd offset keeps grid points off the shapes' exact zero set (which makes stray specks)
    offset = 0.3137 * grid.pitch
    axes = [np.arange(lo - 2 * grid.pitch + offset, hi + 2 * grid.pitch, grid.pitch) for lo, hi in zip(grid.lower, grid.upper)]
    values = np.empty([len(a) for a in axes], dtype=np.float32)
    for i, x in enumerate(axes[0]):
        yy, zz = np.meshgrid(axes[1], axes[2], indexing="ij")
        points = np.stack([np.full(yy.size, x), yy.ravel(), zz.ravel()], axis=1)
        values[i] = sdf(points).reshape(yy.shape)
    if values.min() >= 0 or (values[[0, -1]] <= 0).any():
        raise RuntimeError("the shape does not fit inside its grid")
    vertices, tris, _, _ = marching_cubes(values, level=0.0, spacing=(grid.pitch,) * 3)
    vertices += np.array([a[0] for a in axes])
    mesh = trimesh.Trimesh(vertices, tris, process=True)
    mesh = max(mesh.split(only_watertight=False), key=lambda part: len(part.faces))
    if mesh.volume < 0:
        mesh.invert()
    trimesh.smoothing.filter_taubin(mesh, iterations=smooth_iterations)
    mesh = decimate(mesh, faces)
    if mesh.volume < 0:
        mesh.invert()
    return relax_on_surface(mesh, sdf, relax_iterations)


def decimate(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    import fast_simplification

    vertices, tris = fast_simplification.simplify(
        points=np.asarray(mesh.vertices), triangles=np.asarray(mesh.faces, dtype=np.int64), target_count=faces
    )
    return trimesh.Trimesh(vertices, tris, process=True)


def sdf_gradient(sdf: Field, points: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central-difference gradient [N, 3] of ``sdf`` at ``points`` [N, 3]."""
    return np.stack([(sdf(points + h * e) - sdf(points - h * e)) / (2 * h) for e in np.eye(3)], axis=1)


def project_to_surface(sdf: Field, points: np.ndarray, steps: int = 2) -> np.ndarray:
    """Newton steps moving ``points`` [N, 3] onto the zero set of ``sdf``."""
    for _ in range(steps):
        g = sdf_gradient(sdf, points)
        points = points - (sdf(points) / np.maximum((g * g).sum(1), 1e-12))[:, None] * g
    return points


def surface_alignment(sdf: Field, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Cosine [F] between each face's normal and the surface normal of ``sdf`` at its centre."""
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    normals /= np.maximum(np.linalg.norm(normals, axis=1), 1e-20)[:, None]
    g = sdf_gradient(sdf, vertices[faces].mean(axis=1))
    g /= np.maximum(np.linalg.norm(g, axis=1), 1e-12)[:, None]
    return (normals * g).sum(1)


def relax_on_surface(
    mesh: trimesh.Trimesh, sdf: Field, iterations: int, step: float = 0.5, min_cos: float = 0.5
) -> trimesh.Trimesh:
    """Even out the triangles: tangential Laplacian steps, each followed by a projection onto ``sdf``'s
    zero set (so the shape neither shrinks nor loses detail). Decimation leaves slivers and folded
    triangles that flat shading shows as dark specks; this removes most of them. A vertex move that
    would tilt a face more than acos(min_cos) away from the surface normal (and more than before)
    is undone, so no face turns over."""
    import scipy.sparse

    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64).copy(), np.asarray(mesh.faces)
    edges = mesh.edges_unique
    n = len(vertices)
    rows, cols = np.concatenate([edges[:, 0], edges[:, 1]]), np.concatenate([edges[:, 1], edges[:, 0]])
    adjacency = scipy.sparse.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    valence = np.asarray(adjacency.sum(axis=1)).ravel()
    for _ in range(iterations):
        normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
        move = adjacency @ vertices / valence[:, None] - vertices
        move -= (move * normals).sum(1)[:, None] * normals
        before = surface_alignment(sdf, vertices, faces)
        moved = project_to_surface(sdf, vertices + step * move)
        for _ in range(10):
            after = surface_alignment(sdf, moved, faces)
            bad = (after < min_cos) & (after < before)
            if not bad.any():
                break
            undo = np.unique(faces[bad])
            moved[undo] = vertices[undo]
        vertices = moved
    return trimesh.Trimesh(vertices, faces, process=False)


# ---------------------------------------------------------------------------- simple shapes


def sphere() -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=5, radius=1.0)


def vase(segments: int = 96, samples: int = 80) -> trimesh.Trimesh:
    """A vase turned on a lathe: round belly, narrow neck, flared lip, a wall 0.025 thick."""
    from scipy.interpolate import PchipInterpolator

    height = 1.6
    # (height fraction, outer radius) control points of the profile
    knots = np.array([[0.0, 0.22], [0.15, 0.38], [0.4, 0.46], [0.65, 0.3], [0.8, 0.16], [0.92, 0.17], [1.0, 0.26]])
    t = np.linspace(0.0, 1.0, samples)
    outer_r = PchipInterpolator(knots[:, 0], knots[:, 1])(t)
    outer = np.stack([outer_r, t * height], axis=1)
    wall = 0.025
    inner = np.stack([outer_r[::-1] - wall, t[::-1] * height], axis=1)
    inner = inner[inner[:, 1] > 0.06]
    lip = np.array([[outer_r[-1] - wall / 2, height + wall / 2]])
    profile = np.concatenate([[[0.0, 0.0]], outer, lip, inner, [[0.0, inner[-1, 1]]]])
    # revolve takes (radius, height) and spins about +z; rotate so the axis is +y afterwards
    mesh = trimesh.creation.revolve(profile, sections=segments)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    mesh.merge_vertices()
    if mesh.volume < 0:
        mesh.invert()
    return mesh


# ---------------------------------------------------------------------------- writing


def write_obj(mesh: trimesh.Trimesh, path: Path, decimals: int = 5) -> None:
    """A plain OBJ (positions and triangles only) with few decimals, so the file stays small."""
    header = f"# {path.name}: made by scripts/make_meshes.py; {len(mesh.vertices)} vertices, {len(mesh.faces)} faces\n"
    v = "\n".join(f"v {x:.{decimals}f} {y:.{decimals}f} {z:.{decimals}f}" for x, y, z in np.asarray(mesh.vertices))
    f = "\n".join(f"f {a} {b} {c}" for a, b, c in np.asarray(mesh.faces) + 1)
    path.write_text(header + v + "\n" + f + "\n")


def check(mesh: trimesh.Trimesh, name: str) -> None:
    if not mesh.is_watertight or not mesh.is_winding_consistent or mesh.volume <= 0:
        raise RuntimeError(f"{name}: not closed and outward-facing")


MAKERS: dict[str, Callable[[], trimesh.Trimesh]] = {
    "sphere": sphere,
    "vase": vase,
    "human": lambda: mesh_sdf(human_sdf(), Grid((-0.4, 0.0, -0.2), (0.4, 1.8, 0.22), 0.004), faces=56_000),
    "dog": lambda: mesh_sdf(dog_sdf(), Grid((-0.25, 0.0, -0.7), (0.25, 1.2, 0.85), 0.005), faces=36_000),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "meshes")
    parser.add_argument("--only", nargs="*", choices=sorted(MAKERS), help="make only these meshes")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or MAKERS:
        mesh = MAKERS[name]()
        check(mesh, name)
        path = args.out / f"{name}.obj"
        write_obj(mesh, path)
        print(f"{path}: {len(mesh.faces)} faces, {path.stat().st_size / 1e6:.2f} MB, extents {np.round(mesh.extents, 3)}")


if __name__ == "__main__":
    main()
