"""Results people can open: mesh files (OBJ/PLY/GLB, baked textures) and pictures.

The names below are imported on first use, so that modules needing only :mod:`.files` (atomic
writes) do not load torch and trimesh.
"""

_NAMES = {
    "ExportError": "files",
    "export_mesh": "meshes",
    "BakedTexture": "texture",
    "bake_texture": "texture",
    "field_color_fn": "texture",
    "vertex_color_fn": "texture",
}

__all__ = list(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    raise AttributeError(f"module 'text2mesh.export' has no attribute {name!r}")
