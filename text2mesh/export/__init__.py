"""Results people can open: mesh files (OBJ/PLY/GLB, baked textures) and pictures."""

from .files import ExportError
from .meshes import export_mesh
from .texture import BakedTexture, bake_texture, field_color_fn, vertex_color_fn

__all__ = ["BakedTexture", "ExportError", "bake_texture", "export_mesh", "field_color_fn", "vertex_color_fn"]
