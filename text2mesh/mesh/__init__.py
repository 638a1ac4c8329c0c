"""Mesh data, loading and preparation: file -> clean, normalized, well-resolved :class:`Mesh`."""

from .io import SUPPORTED_SUFFIXES, load_trimesh
from .prepare import PreparedMesh, Transform, prepare_mesh
from .structures import Mesh, face_areas, face_normals, unit_sphere, vertex_normals

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Mesh",
    "PreparedMesh",
    "Transform",
    "face_areas",
    "face_normals",
    "load_trimesh",
    "prepare_mesh",
    "unit_sphere",
    "vertex_normals",
]
