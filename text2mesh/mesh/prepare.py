"""Turning whatever mesh a user brings into the mesh the stylization runs on.

``prepare_mesh`` runs these steps in order, each adding one line to ``PreparedMesh.report``:

1. load: any supported file (or a ``trimesh.Trimesh`` / :class:`Mesh` given directly);
2. clean: drop NaN/inf vertices and their faces, merge duplicate vertices (so normals are
   smooth across seams), drop degenerate and duplicate faces and unreferenced vertices;
3. orient: rotate so the chosen up axis becomes +y, then the extra Euler rotation;
4. normalize: centre the bounding box at the origin and scale the farthest vertex to radius 1;
5. decimate: quadric simplification down to ``max_faces`` (with a logged warning);
6. subdivide: split edges longer than ``max_edge`` (normalized units);
7. unit sphere: centre on the vertex mean, farthest vertex at radius 1 (the reference's
   normalization, which the stylizer repeats on every displaced mesh, so the undisplaced mesh
   renders exactly as prepared);
8. colours: keep the file's vertex colours, if any.

The :class:`Transform` from steps 3, 4 and 7 is kept exactly (float64), so results can be
written back in the input's own frame.

Defaults (``MeshConfig``): the renderer's cameras sit at distance 2 with a 60° field of view,
so a 224-pixel view spans about 2.3 normalized units, ~0.01 units per pixel. ``max_edge=0.045``
caps vertex spacing at ~4.5 pixels (bisection leaves edges between half and all of it, ~3 px
on average): colour and displacement detail, which live on the vertices, stay several times
finer than CLIP's 32-pixel patches, while the shipped meshes keep their 20k-60k faces (a
unit icosphere of 20480 faces is left as is; 0.03 would quadruple it to 82k for no visible
gain). ``max_faces=200_000`` keeps the rasterizer and the style field (one MLP evaluation
per vertex per step) fast on a CPU and a small GPU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh

from ..config import MeshConfig
from ..errors import MeshError
from .io import flatten_geometry, load_trimesh
from .structures import Mesh

__all__ = ["PreparedMesh", "Transform", "euler_rotation", "front_axis_rotation", "prepare_mesh", "up_axis_rotation"]

log = logging.getLogger(__name__)

# Vertices closer than this fraction of the mesh's largest extent are merged.
MERGE_TOLERANCE = 1e-6
# Faces whose area is below this fraction of (largest extent)^2 count as degenerate.
DEGENERATE_AREA = 1e-14

# Inputs beyond these bounds cannot be normalized safely in float64 (squares would overflow).
MAX_COORDINATE = 1e30
MIN_EXTENT = 1e-30

_AXES = {"x": 0, "y": 1, "z": 2}


@dataclass(frozen=True)
class Transform:
    """A similarity transform between the input's frame and the normalized frame.

    ``normalized = scale * (rotation @ input - center)`` and exactly back:
    ``input = rotation.T @ (normalized / scale + center)``.

    A length ``L`` in normalized units is ``L / scale`` in input units (so displacements,
    which are lengths along the normal, map back by dividing by ``scale``).

    Attributes:
        rotation: 3x3 orthonormal matrix (row-major nested tuples), applied first.
        center: the rotated input's point that becomes the origin (the prepared mesh's vertex
            mean), in rotated input units.
        scale: normalized units per input unit.
    """

    rotation: tuple[tuple[float, float, float], ...] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0

    def __post_init__(self) -> None:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        if rotation.shape != (3, 3) or not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6):
            raise ValueError("Transform.rotation must be an orthonormal 3x3 matrix")
        if len(self.center) != 3 or not np.all(np.isfinite(self.center)):
            raise ValueError("Transform.center must be 3 finite numbers")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError("Transform.scale must be a finite positive number")

    @property
    def matrix(self) -> np.ndarray:
        """[4, 4] float64 homogeneous matrix input -> normalized."""
        out = np.eye(4)
        out[:3, :3] = self.scale * np.asarray(self.rotation)
        out[:3, 3] = -self.scale * np.asarray(self.center)
        return out

    def to_normalized(self, points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Map points from the input frame to the normalized frame.

        Args:
            points: [N, 3] numpy array or tensor (any float dtype/device).

        Returns:
            [N, 3], same type, dtype and device as ``points``.
        """
        rotation, center = self._arrays_like(points)
        return self.scale * (points @ rotation.T - center)

    def to_input(self, points: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Map points from the normalized frame back to the input frame (exact inverse).

        Args:
            points: [N, 3] numpy array or tensor (any float dtype/device).

        Returns:
            [N, 3], same type, dtype and device as ``points``.
        """
        rotation, center = self._arrays_like(points)
        return (points / self.scale + center) @ rotation

    def lengths_to_input(self, lengths: np.ndarray | torch.Tensor | float) -> np.ndarray | torch.Tensor | float:
        """Convert lengths (e.g. displacements) from normalized to input units."""
        return lengths / self.scale

    def directions_to_input(self, directions: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Rotate direction vectors (e.g. normals) [N, 3] from the normalized to the input frame."""
        rotation, _ = self._arrays_like(directions)
        return directions @ rotation

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and floats, for YAML/JSON/``torch.save``."""
        return {
            "rotation": [list(map(float, row)) for row in self.rotation],
            "center": [float(c) for c in self.center],
            "scale": float(self.scale),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transform:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rotation=tuple(tuple(float(x) for x in row) for row in data["rotation"]),
            center=tuple(float(c) for c in data["center"]),
            scale=float(data["scale"]),
        )

    def _arrays_like(self, points: np.ndarray | torch.Tensor) -> tuple[Any, Any]:
        rotation = np.asarray(self.rotation, dtype=np.float64)
        center = np.asarray(self.center, dtype=np.float64)
        if isinstance(points, torch.Tensor):
            return (
                torch.as_tensor(rotation, dtype=points.dtype, device=points.device),
                torch.as_tensor(center, dtype=points.dtype, device=points.device),
            )
        return rotation, center


@dataclass(frozen=True)
class PreparedMesh:
    """A mesh ready for stylization, in the normalized frame.

    Attributes:
        mesh: vertices [V, 3] float32 inside the unit sphere (farthest vertex at radius ~1),
            faces [F, 3] int64, colors [V, 3] float32 in [0, 1] when the input had vertex
            colours, else None. Whether they seed the stylization is ``MeshConfig.use_input_colors``.
        transform: maps between the input's frame and ``mesh``'s frame.
        report: one human-readable line per preparation step, in order.
        source: the input file path, or a short description of an in-memory input.
    """

    mesh: Mesh
    transform: Transform
    report: list[str] = field(default_factory=list)
    source: str = ""


def up_axis_rotation(up_axis: str) -> np.ndarray:
    """[3, 3] float64 rotation taking ``up_axis`` ("x", "-z", ...) to +y.

    For "z" (Blender, most CAD) the input's -y (Blender's front) lands on +z, our front.
    """
    if not isinstance(up_axis, str):
        raise MeshError(f"unknown up axis {up_axis!r}; use one of x, y, z, -x, -y, -z")
    axis = up_axis.strip().lower()
    sign = -1.0 if axis.startswith("-") else 1.0
    name = axis.lstrip("+-")
    if name not in _AXES:
        raise MeshError(f"unknown up axis {up_axis!r}; use one of x, y, z, -x, -y, -z")
    if name == "y":
        return np.eye(3) if sign > 0 else _rotation_x(math.pi)
    if name == "z":
        return _rotation_x(-sign * math.pi / 2)
    return _rotation_z(sign * math.pi / 2)


def front_axis_rotation(front_axis: str | None, up: np.ndarray) -> np.ndarray:
    """[3, 3] float64 rotation about +y taking ``front_axis`` (an input axis, after ``up``) to +z.

    Args:
        front_axis: "x", "-z", ... the input's axis that the object faces; None: no rotation.
        up: the up-axis rotation applied before (from :func:`up_axis_rotation`).
    Raises:
        MeshError: an unknown axis, or one along the up axis.
    """
    if front_axis is None:
        return np.eye(3)
    axis = str(front_axis).strip().lower()
    name = axis.lstrip("+-")
    if name not in _AXES:
        raise MeshError(f"unknown front axis {front_axis!r}; use one of x, y, z, -x, -y, -z")
    direction = np.zeros(3)
    direction[_AXES[name]] = -1.0 if axis.startswith("-") else 1.0
    x, y, z = up @ direction
    if abs(y) > 0.5:
        raise MeshError(f"front axis {front_axis} is the up axis (or its opposite); name a horizontal axis")
    return _rotation_y(math.atan2(-x, z))


def euler_rotation(degrees: list[float] | tuple[float, ...]) -> np.ndarray:
    """[3, 3] float64 rotation about x, then y, then z (fixed axes) by the given degrees."""
    try:
        angles = [float(d) for d in degrees]
    except (TypeError, ValueError):
        angles = []
    if len(angles) != 3 or not all(math.isfinite(a) for a in angles):
        raise MeshError(f"rotation must be three finite angles in degrees (x, y, z), got {degrees!r}")
    rx, ry, rz = (math.radians(a) for a in angles)
    return _rotation_z(rz) @ _rotation_y(ry) @ _rotation_x(rx)


def _rotation_x(angle: float) -> np.ndarray:
    c, s = _cos_sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = _cos_sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_z(angle: float) -> np.ndarray:
    c, s = _cos_sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _cos_sin(angle: float) -> tuple[float, float]:
    """cos/sin with exact zeros and ones at multiples of 90°, so axis swaps stay exact."""
    c, s = math.cos(angle), math.sin(angle)
    return round(c) if abs(c - round(c)) < 1e-15 else c, round(s) if abs(s - round(s)) < 1e-15 else s


@dataclass
class _Arrays:
    """The mesh while it is being prepared: float64 vertices [V,3], int64 faces [F,3], colours [V,3] or None."""

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None


def prepare_mesh(
    source: str | Path | trimesh.Trimesh | Mesh,
    cfg: MeshConfig | None = None,
) -> PreparedMesh:
    """Load (if needed), clean, orient, normalize, decimate and subdivide a mesh.

    Args:
        source: a mesh file path, a ``trimesh.Trimesh`` (or Scene), or a :class:`Mesh`.
        cfg: preparation options; defaults to ``MeshConfig()``.

    Returns:
        The prepared mesh with its transform and a report of what was done.

    Raises:
        MeshError: the input cannot be used (see :func:`load_trimesh`), has no finite
            vertices, zero extent, no non-degenerate faces, or face indices out of range.
    """
    cfg = cfg or MeshConfig()
    up = up_axis_rotation(cfg.up_axis)
    rotation = euler_rotation(cfg.rotate_degrees) @ front_axis_rotation(cfg.front_axis, up) @ up
    _check_limits(cfg)
    arrays, name = _read_source(source)
    colours = "with" if arrays.colors is not None else "no"
    report = [f"load: {name}: {len(arrays.vertices)} vertices, {len(arrays.faces)} faces, {colours} vertex colours"]
    _check_arrays(arrays, name)
    if cfg.clean:
        arrays, line = _clean(arrays, name)
    else:
        arrays, n_unreferenced = _drop_unreferenced(arrays)
        _check_finite(arrays, name)
        line = f"clean: off (only {n_unreferenced} unreferenced vertices dropped)"
    report.append(line)
    front = f", front axis {cfg.front_axis} -> +z" if cfg.front_axis else ""
    report.append(
        f"orient: up axis {cfg.up_axis} -> +y{front}, then rotate xyz {list(map(float, cfg.rotate_degrees))} degrees"
    )
    transform = _normalizing_transform(arrays.vertices, arrays.faces, rotation, name)
    arrays = _Arrays(transform.to_normalized(arrays.vertices), arrays.faces, arrays.colors)
    report.append(
        f"normalize: centre {_fmt(transform.center)} (rotated input units), "
        f"scale {transform.scale:.6g} (1 normalized unit = {1 / transform.scale:.6g} input units)"
    )
    arrays, line = _decimate(arrays, cfg.max_faces)
    report.append(line)
    arrays, line = _subdivide(arrays, cfg.max_edge, cfg.max_faces)
    report.append(line)
    arrays, transform = _unit_sphere(arrays, transform)
    report.append(f"unit sphere: centred on the vertex mean, farthest vertex at radius 1 (scale {transform.scale:.6g})")
    report.append(_colors_line(arrays, cfg))
    for entry in report:
        log.info("%s", entry)
    mesh = Mesh(
        vertices=torch.as_tensor(arrays.vertices, dtype=torch.float32),
        faces=torch.as_tensor(arrays.faces, dtype=torch.int64),
        colors=None if arrays.colors is None else torch.as_tensor(arrays.colors, dtype=torch.float32),
    )
    return PreparedMesh(mesh=mesh, transform=transform, report=report, source=name)


def _check_limits(cfg: MeshConfig) -> None:
    if cfg.max_edge is not None and not (isinstance(cfg.max_edge, (int, float)) and 0 < cfg.max_edge < math.inf):
        raise MeshError(f"mesh.max_edge must be a positive number or null, got {cfg.max_edge!r}")
    if cfg.max_faces is not None and not (isinstance(cfg.max_faces, int) and cfg.max_faces >= 4):
        raise MeshError(f"mesh.max_faces must be an integer of at least 4 or null, got {cfg.max_faces!r}")


def _read_source(source: str | Path | trimesh.Trimesh | Mesh) -> tuple[_Arrays, str]:
    if isinstance(source, Mesh):
        colors = None if source.colors is None else source.colors.detach().cpu().double().numpy()
        arrays = _Arrays(
            source.vertices.detach().cpu().double().numpy(), source.faces.detach().cpu().numpy(), colors
        )
        return arrays, "<Mesh>"
    if isinstance(source, (str, Path)):
        name = str(source)
        tm = load_trimesh(source)
    elif isinstance(source, (trimesh.Trimesh, trimesh.Scene)):
        name = source.metadata.get("file_path", f"<{type(source).__name__}>")
        tm = flatten_geometry(source, name=name)
    else:
        raise MeshError(f"cannot prepare a {type(source).__name__}; give a mesh file path, trimesh.Trimesh or Mesh")
    colors = None
    if getattr(tm.visual, "kind", None) is not None:
        colors = np.asarray(tm.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
    vertices = np.asarray(tm.vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(tm.faces).reshape(-1, 3)
    return _Arrays(vertices, faces, colors), name


def _check_arrays(arrays: _Arrays, name: str) -> None:
    """Raise MeshError for missing or out-of-range faces; clamp colours to [0, 1] (NaN -> grey)."""
    if arrays.colors is not None:
        if arrays.colors.shape == arrays.vertices.shape:
            arrays.colors = np.nan_to_num(np.clip(arrays.colors, 0.0, 1.0), nan=0.5)
        else:
            arrays.colors = None
    if len(arrays.faces) == 0:
        raise MeshError(f"{name} has no faces; give a triangle mesh, not a point cloud")
    if not np.issubdtype(arrays.faces.dtype, np.integer):
        raise MeshError(f"{name} has non-integer face indices; the file is malformed")
    arrays.faces = arrays.faces.astype(np.int64)
    if arrays.faces.min() < 0 or arrays.faces.max() >= len(arrays.vertices):
        raise MeshError(
            f"{name} has face indices outside 0..{len(arrays.vertices) - 1}; the file is malformed, re-export it"
        )


def _check_finite(arrays: _Arrays, name: str) -> None:
    if not np.isfinite(arrays.vertices[arrays.faces]).all():
        raise MeshError(f"{name} has NaN/inf vertices; turn mesh cleaning on (mesh.clean=true) to drop them")


def _clean(arrays: _Arrays, name: str) -> tuple[_Arrays, str]:
    """Drop non-finite vertices, merge duplicates, drop degenerate/duplicate faces and unused vertices."""
    vertices, faces, colors = arrays.vertices, arrays.faces, arrays.colors
    finite = np.isfinite(vertices).all(axis=1)
    n_nonfinite = int((~finite).sum())
    faces = faces[finite[faces].all(axis=1)]
    if len(faces) == 0:
        raise MeshError(f"{name} has no faces with finite (non-NaN/inf) vertices; the geometry is unusable")
    used = _used_vertices(faces, len(vertices))
    extent = _checked_extent(vertices[used], name)

    n_before = len(used)
    vertices, faces, colors = _merge_vertices(vertices, faces, colors, used, extent * MERGE_TOLERANCE)
    n_merged = n_before - len(vertices)

    area = 0.5 * np.linalg.norm(
        np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]]),
        axis=1,
    )
    repeated = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (faces[:, 0] == faces[:, 2])
    degenerate = repeated | ~(area > DEGENERATE_AREA * extent**2)
    faces = faces[~degenerate]
    if len(faces) == 0:
        raise MeshError(f"{name} has only degenerate (zero-area) faces; give a mesh with a surface")
    _, first = np.unique(_row_keys(np.sort(faces, axis=1), len(vertices)), axis=0, return_index=True)
    n_duplicate = len(faces) - len(first)
    faces = faces[np.sort(first)]

    cleaned, n_unreferenced = _drop_unreferenced(_Arrays(vertices, faces, colors))
    vertices, faces = cleaned.vertices, cleaned.faces
    line = (
        f"clean: dropped {n_nonfinite} NaN/inf vertices, {int(degenerate.sum())} degenerate and "
        f"{n_duplicate} duplicate faces, {n_unreferenced} unreferenced vertices; merged {n_merged} duplicate "
        f"vertices -> {len(vertices)} vertices, {len(faces)} faces"
    )
    return cleaned, line


def _drop_unreferenced(arrays: _Arrays) -> tuple[_Arrays, int]:
    """The mesh without vertices that no face uses, and how many were dropped."""
    used = _used_vertices(arrays.faces, len(arrays.vertices))
    if len(used) == len(arrays.vertices):
        return arrays, 0
    remap = np.full(len(arrays.vertices), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    colors = None if arrays.colors is None else arrays.colors[used]
    return _Arrays(arrays.vertices[used], remap[arrays.faces], colors), len(arrays.vertices) - len(used)


def _used_vertices(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Sorted indices [U] of the vertices that faces [F, 3] use."""
    mask = np.zeros(n_vertices, dtype=bool)
    mask[faces.reshape(-1)] = True
    return np.flatnonzero(mask)


def _row_keys(rows: np.ndarray, bound: int) -> np.ndarray:
    """One int64 per row of non-negative ints [N, 3] below ``bound``, equal iff the rows are.

    Packing into one integer makes ``np.unique`` a fast 1-D sort; rows that do not fit in
    63 bits are returned as they are (``np.unique(axis=0)`` handles both).
    """
    bits = max(int(bound - 1).bit_length(), 1)
    if 3 * bits > 63:
        return rows
    return (rows[:, 0] << (2 * bits)) | (rows[:, 1] << bits) | rows[:, 2]


def _merge_vertices(
    vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None, used: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Merge the used vertices that fall in the same ``tolerance``-sized grid cell.

    Returns the merged vertices [V', 3] (first of each group), faces reindexed, and colours
    averaged over each group. Unused vertices are dropped here.
    """
    origin = vertices[used].min(axis=0)
    cells = np.floor((vertices[used] - origin) / tolerance + 0.5).astype(np.int64)
    _, first, inverse = np.unique(_row_keys(cells, int(cells.max()) + 1), axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    remap = np.full(len(vertices), -1, dtype=np.int64)
    remap[used] = inverse
    merged = vertices[used][first]
    if colors is not None:
        sums = np.zeros((len(first), 3))
        np.add.at(sums, inverse, colors[used])
        colors = sums / np.bincount(inverse, minlength=len(first))[:, None]
    return merged, remap[faces], colors


def _normalizing_transform(vertices: np.ndarray, faces: np.ndarray, rotation: np.ndarray, name: str) -> Transform:
    """The transform that rotates, centres the bounding box and puts the farthest vertex at radius 1."""
    used = vertices[_used_vertices(faces, len(vertices))]
    if not np.isfinite(used).all():
        raise MeshError(f"{name} has NaN/inf vertices; turn mesh cleaning on (mesh.clean=true) to drop them")
    _checked_extent(used, name)
    rotated = used @ rotation.T
    center = 0.5 * (rotated.min(axis=0) + rotated.max(axis=0))
    radius = float(np.sqrt(np.max(np.sum((rotated - center) ** 2, axis=1))))
    return Transform(
        rotation=tuple(tuple(float(x) for x in row) for row in rotation),
        center=tuple(float(c) for c in center),
        scale=1.0 / radius,
    )


def _checked_extent(vertices: np.ndarray, name: str) -> float:
    """The largest bounding-box side of finite ``vertices`` [N, 3], or MeshError if unusable.

    Coordinates are limited to +-MAX_COORDINATE and extents to at least MIN_EXTENT so that
    squared lengths and areas never overflow or underflow in float64.
    """
    largest = float(np.max(np.abs(vertices)))
    if largest > MAX_COORDINATE:
        raise MeshError(f"{name} has coordinates up to {largest:.3g}, beyond {MAX_COORDINATE:g}; rescale the mesh")
    extent = float(np.max(vertices.max(axis=0) - vertices.min(axis=0)))
    if extent < MIN_EXTENT:
        raise MeshError(f"{name} has zero extent (all vertices at one point); give a mesh with a surface")
    return extent


def _decimate(arrays: _Arrays, max_faces: int | None) -> tuple[_Arrays, str]:
    """Quadric-error decimation to ``max_faces`` with fast-simplification.

    fast-simplification (a maintained PyPI wheel wrapping Fast-Quadric-Mesh-Simplification,
    also what ``trimesh.Trimesh.simplify_quadric_decimation`` calls) is fast, dependency-free and
    preserves shape well. It does not carry vertex attributes, so colours are copied from the
    nearest original vertex.
    """
    n_faces = len(arrays.faces)
    if max_faces is None:
        return arrays, "decimate: off"
    if n_faces <= max_faces:
        return arrays, f"decimate: not needed ({n_faces} <= max_faces {max_faces})"
    import fast_simplification

    log.warning("mesh has %d faces, above max_faces=%d; decimating (this changes its topology)", n_faces, max_faces)
    vertices, faces = fast_simplification.simplify(
        points=np.ascontiguousarray(arrays.vertices, dtype=np.float64),
        triangles=np.ascontiguousarray(arrays.faces, dtype=np.int64),
        target_count=int(max_faces),
    )
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        raise MeshError(f"decimating to max_faces={max_faces} left no faces; raise mesh.max_faces")
    colors = None
    if arrays.colors is not None:
        from scipy.spatial import cKDTree

        _, nearest = cKDTree(arrays.vertices).query(vertices)
        colors = arrays.colors[nearest]
    decimated, _ = _drop_unreferenced(_Arrays(vertices, faces, colors))
    line = f"decimate: {n_faces} -> {len(faces)} faces (above max_faces {max_faces}; warning logged)"
    return decimated, line


def _subdivide(arrays: _Arrays, max_edge: float | None, max_faces: int | None) -> tuple[_Arrays, str]:
    """Split edges longer than ``max_edge`` (normalized units) at their midpoints.

    Uses ``trimesh.remesh.subdivide_to_size``: maintained, pure numpy, bisects each long edge at
    one shared midpoint (no T-junctions, so watertight inputs stay watertight and displacement
    opens no cracks), and keeps all original vertices, so the input's shape is unchanged.
    Isotropic remeshing (pymeshlab) would give rounder triangles but pulls in a ~60 MB
    native wheel and moves the input's vertices. If the split mesh would exceed ``max_faces``,
    the edge target is raised until the estimate fits.
    """
    if max_edge is None:
        return arrays, "subdivide: off"
    lengths = _edge_lengths(arrays.vertices, arrays.faces)
    longest = float(lengths.max())
    if longest <= max_edge:
        return arrays, f"subdivide: not needed (longest edge {longest:.4g} <= max_edge {max_edge:g})"
    target = max_edge
    if max_faces is not None:
        while _estimated_faces(lengths, target) > max_faces and target < longest:
            target *= 1.1
    max_iter = math.ceil(math.log2(longest / target)) + 8
    values = arrays.vertices if arrays.colors is None else np.hstack([arrays.vertices, arrays.colors])
    try:
        values, faces = trimesh.remesh.subdivide_to_size(values, arrays.faces, max_edge=target, max_iter=max_iter)
    except ValueError as error:
        raise MeshError(f"could not subdivide the mesh to max_edge={target:g} ({error}); raise mesh.max_edge") from error
    colors = None if arrays.colors is None else values[:, 3:6]
    result = _Arrays(np.ascontiguousarray(values[:, :3]), np.asarray(faces, dtype=np.int64), colors)
    raised = f", raised from {max_edge:g} to fit max_faces {max_faces}" if target > max_edge else ""
    line = (
        f"subdivide: {len(arrays.faces)} -> {len(result.faces)} faces, longest edge {longest:.4g} -> "
        f"{float(_edge_lengths(result.vertices, result.faces).max()):.4g} (max_edge {target:.4g}{raised})"
    )
    return result, line


def _edge_lengths(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F, 3] lengths of each face's edges (v0v1, v1v2, v2v0)."""
    corners = vertices[faces]
    return np.linalg.norm(corners - np.roll(corners, -1, axis=1), axis=2)


def _estimated_faces(lengths: np.ndarray, max_edge: float) -> float:
    """Rough face count after bisecting every edge down to ``max_edge``: each face becomes ~n^2."""
    splits = np.exp2(np.ceil(np.log2(np.maximum(lengths.max(axis=1) / max_edge, 1.0))))
    return float(np.sum(splits**2))


def _unit_sphere(arrays: _Arrays, transform: Transform) -> tuple[_Arrays, Transform]:
    """Centre on the vertex mean and scale the farthest vertex to radius 1, updating the transform.

    Same result as :func:`text2mesh.mesh.structures.unit_sphere` (which the stylizer applies to
    displaced meshes), in float64 and with the transform kept exact.
    """
    mean = arrays.vertices.mean(axis=0)
    centred = arrays.vertices - mean
    radius = float(np.sqrt(np.max(np.sum(centred**2, axis=1))))
    fixed = Transform(
        rotation=transform.rotation,
        center=tuple(float(c) for c in np.asarray(transform.center) + mean / transform.scale),
        scale=transform.scale / radius,
    )
    return _Arrays(centred / radius, arrays.faces, arrays.colors), fixed


def _colors_line(arrays: _Arrays, cfg: MeshConfig) -> str:
    if arrays.colors is None:
        return "colours: none in the input" + (" (use_input_colors has no effect)" if cfg.use_input_colors else "")
    use = "used as the starting colours" if cfg.use_input_colors else "kept, not used (use_input_colors off)"
    return f"colours: read from the input, {use}"


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.6g}" for v in values) + ")"
