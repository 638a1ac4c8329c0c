"""Which files can be meshes: checked from the path alone, before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path

from ..errors import MeshError

__all__ = ["SUPPORTED_SUFFIXES", "check_mesh_path"]

# Suffix -> trimesh file type. Only formats trimesh reads without optional extras.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".obj": "obj",
    ".ply": "ply",
    ".stl": "stl",
    ".off": "off",
    ".glb": "glb",
    ".gltf": "gltf",
}



def check_mesh_path(path: Path) -> str:
    """The trimesh file type for ``path``, or MeshError if it cannot be a mesh file (cheap: the
    file is not parsed)."""
    if not path.exists():
        raise MeshError(f"mesh file not found: {path}; check the path")
    if path.is_dir():
        raise MeshError(f"{path} is a directory; give a mesh file (.obj, .ply, .stl, .off, .glb, .gltf)")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        known = ", ".join(SUPPORTED_SUFFIXES)
        raise MeshError(f"unsupported mesh format {suffix or '(no suffix)'!r} for {path}; use one of {known}")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise MeshError(f"cannot open mesh file {path}: {error.strerror or error}; check its permissions") from error
    if path.stat().st_size == 0:
        raise MeshError(f"mesh file {path} is empty; give a file with triangles")
    return SUPPORTED_SUFFIXES[suffix]
