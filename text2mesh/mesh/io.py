"""Reading mesh files of any common format into one ``trimesh.Trimesh``.

Everything a user can get wrong with a file (missing, a directory, an unknown suffix, not a
mesh, a point cloud, unreadable bytes) becomes a one-line :class:`~text2mesh.errors.MeshError`
here, so no trimesh/numpy exception reaches the user. Multi-part files and scenes are
flattened into one mesh with their node transforms applied; vertex colours (per-vertex,
per-face, or sampled from a texture) are carried over when the file has any.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh

from ..errors import MeshError
from .files import SUPPORTED_SUFFIXES, check_mesh_path

__all__ = ["SUPPORTED_SUFFIXES", "flatten_geometry", "load_trimesh"]

log = logging.getLogger(__name__)

def load_trimesh(path: str | Path) -> trimesh.Trimesh:
    """Load a mesh file as one triangle mesh, unprocessed (no merging or cleaning yet).

    Args:
        path: an OBJ, PLY, STL, OFF, GLB or GLTF file.

    Returns:
        A ``trimesh.Trimesh`` with at least one face. ``visual.kind == "vertex"`` when the
        file had colours (then ``visual.vertex_colors`` holds them), otherwise no colours;
        ``metadata["file_path"]`` is ``path``.

    Raises:
        MeshError: the file is missing, a directory, has an unsupported suffix, cannot be
            parsed, or holds no triangles (e.g. a point cloud).
    """
    path = Path(path)
    file_type = check_mesh_path(path)
    try:
        loaded = trimesh.load(str(path), file_type=file_type, process=False)
    except MeshError:
        raise
    except Exception as error:  # trimesh raises anything from ValueError to struct.error
        reason = _one_line(error)
        raise MeshError(f"cannot read mesh file {path}: {reason}; is it a valid {file_type.upper()} file?") from error
    mesh = flatten_geometry(loaded, name=str(path))
    mesh.metadata["file_path"] = str(path)  # so a mesh loaded early (the CLI's check) keeps its name
    return mesh


def flatten_geometry(loaded: object, name: str = "input") -> trimesh.Trimesh:
    """Turn whatever trimesh loaded (mesh, scene, point cloud, list) into one triangle mesh.

    Args:
        loaded: a ``trimesh.Trimesh``, ``trimesh.Scene``, or anything else trimesh returns.
        name: how the input is called in error messages.

    Returns:
        One ``trimesh.Trimesh`` (transforms applied, parts concatenated, colours as vertex
        colours if any part had them).

    Raises:
        MeshError: there are no triangles.
    """
    try:
        return _flatten(loaded, name)
    except MeshError:
        raise
    except Exception as error:  # parser output can be inconsistent in any way for a broken file
        raise MeshError(f"cannot read {name}: malformed geometry ({_one_line(error)}); re-export the mesh") from error


def _flatten(loaded: object, name: str) -> trimesh.Trimesh:
    parts = _triangle_parts(loaded)
    if not parts:
        kind = type(loaded).__name__
        if isinstance(loaded, trimesh.PointCloud) or _has_only_points(loaded):
            raise MeshError(f"{name} is a point cloud (no faces); give a triangle mesh")
        raise MeshError(f"{name} contains no triangles (found an empty {kind}); is it a mesh file?")
    has_colors = any(_has_colors(part) for part in parts)
    vertices = []
    faces = []
    colors = []
    offset = 0
    for part in parts:
        part_vertices = np.asarray(part.vertices, dtype=np.float64)
        part_faces = np.asarray(part.faces, dtype=np.int64)
        if part_vertices.ndim != 2 or part_vertices.shape[1] != 3 or part_faces.ndim != 2 or part_faces.shape[1] != 3:
            raise MeshError(f"cannot read {name}: vertices or faces are malformed; re-export the mesh")
        vertices.append(part_vertices)
        faces.append(part_faces + offset)
        offset += len(part_vertices)
        if has_colors:
            colors.append(_vertex_colors(part, len(part_vertices)))
    mesh = trimesh.Trimesh(vertices=np.concatenate(vertices), faces=np.concatenate(faces), process=False, validate=False)
    if has_colors:
        mesh.visual = trimesh.visual.ColorVisuals(mesh=mesh, vertex_colors=np.concatenate(colors))
    return mesh


def _one_line(error: Exception) -> str:
    """A short single-line description of a parser's exception."""
    text = " ".join(str(error).split())[:120]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _triangle_parts(loaded: object) -> list[trimesh.Trimesh]:
    """The non-empty triangle meshes inside ``loaded``, in world coordinates."""
    if isinstance(loaded, trimesh.Trimesh):
        return [loaded] if len(loaded.faces) else []
    if isinstance(loaded, trimesh.Scene):
        return [g for g in loaded.dump(concatenate=False) if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if isinstance(loaded, (list, tuple)):
        return [p for item in loaded for p in _triangle_parts(item)]
    return []


def _has_only_points(loaded: object) -> bool:
    if isinstance(loaded, trimesh.Scene):
        return any(isinstance(g, trimesh.PointCloud) for g in loaded.geometry.values())
    if isinstance(loaded, trimesh.Trimesh):
        return len(loaded.vertices) > 0 and len(loaded.faces) == 0
    return False


def _has_colors(part: trimesh.Trimesh) -> bool:
    """True for per-vertex or per-face colours, or a texture that has an image to sample."""
    kind = getattr(part.visual, "kind", None)
    if kind == "texture":
        material = getattr(part.visual, "material", None)
        image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
        return image is not None
    return kind in ("vertex", "face")


def _vertex_colors(part: trimesh.Trimesh, n_vertices: int) -> np.ndarray:
    """[V, 4] uint8 vertex colours of one part; neutral grey where it has none or they fail."""
    grey = np.full((n_vertices, 4), [128, 128, 128, 255], dtype=np.uint8)
    if not _has_colors(part):
        return grey
    try:
        visual = part.visual.to_color() if part.visual.kind == "texture" else part.visual
        colors = np.asarray(visual.vertex_colors, dtype=np.uint8)
    except Exception as error:  # noqa: BLE001 - a broken texture must not stop the load; colours are optional
        log.warning("could not read colours of a part (%s); using grey", error)
        return grey
    if colors.shape != (n_vertices, 4):
        return grey
    return colors
