"""Mesh data, loading and preparation: file -> clean, normalized, well-resolved :class:`Mesh`.

The names below are imported on first use, so that checking a path (:mod:`.files`) loads
neither torch nor trimesh.
"""

_NAMES = {
    "SUPPORTED_SUFFIXES": "files",
    "check_mesh_path": "files",
    "load_trimesh": "io",
    "PreparedMesh": "prepare",
    "Transform": "prepare",
    "prepare_mesh": "prepare",
    "Mesh": "structures",
    "face_areas": "structures",
    "face_normals": "structures",
    "unit_sphere": "structures",
    "vertex_normals": "structures",
}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'text2mesh.mesh' has no attribute {name!r}")
