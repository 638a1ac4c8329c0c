"""The triangle mesh as the rest of the pipeline sees it, and its normals.

A :class:`Mesh` is three tensors and nothing else: the renderer, the style field and the
exporters all take plain tensors, so the dataclass is only a labelled bundle that checks its
shapes once when it is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["Mesh", "face_areas", "face_normals", "unit_sphere", "vertex_normals"]


@dataclass(frozen=True)
class Mesh:
    """A triangle mesh.

    Attributes:
        vertices: [V, 3] float32 positions.
        faces: [F, 3] int64 vertex indices, counter-clockwise seen from outside.
        colors: [V, 3] float32 RGB in [0, 1], or None when the mesh has no vertex colours.
    """

    vertices: torch.Tensor
    faces: torch.Tensor
    colors: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"vertices must be [V, 3], got {tuple(self.vertices.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"faces must be [F, 3], got {tuple(self.faces.shape)}")
        if self.faces.dtype != torch.int64:
            raise ValueError(f"faces must be int64, got {self.faces.dtype}")
        if self.colors is not None and self.colors.shape != self.vertices.shape:
            raise ValueError(
                f"colors must be [V, 3] like vertices {tuple(self.vertices.shape)}, "
                f"got {tuple(self.colors.shape)}"
            )

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Mesh:
        """A copy on ``device`` with float tensors cast to ``dtype`` (faces stay int64)."""
        colors = None if self.colors is None else self.colors.to(device=device, dtype=dtype)
        return Mesh(
            vertices=self.vertices.to(device=device, dtype=dtype),
            faces=self.faces.to(device=device),
            colors=colors,
        )

    def normals(self) -> torch.Tensor:
        """[V, 3] unit area-weighted vertex normals."""
        return vertex_normals(self.vertices, self.faces)


def _face_cross(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """[F, 3] cross product of two edges: direction is the normal, length twice the area."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    return torch.linalg.cross(v1 - v0, v2 - v0, dim=-1)


def face_areas(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Triangle areas.

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int64.

    Returns:
        [F] float, same dtype as ``vertices``.
    """
    return 0.5 * torch.linalg.vector_norm(_face_cross(vertices, faces), dim=-1)


def face_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Unit face normals (right-hand rule over the face's vertex order).

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int64.
        eps: length below which a degenerate face gets a zero normal instead of NaN.

    Returns:
        [F, 3] float, differentiable wrt ``vertices``.
    """
    cross = _face_cross(vertices, faces)
    length = torch.linalg.vector_norm(cross, dim=-1, keepdim=True)
    return cross / length.clamp_min(eps)


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area-weighted unit vertex normals.

    Each face adds its unnormalized cross product (length = twice its area) to its three
    vertices, so large faces weigh more; the sums are then normalized.

    Args:
        vertices: [V, 3] float.
        faces: [F, 3] int64.
        eps: length below which a vertex (unreferenced, or only on degenerate faces) gets a
            zero normal instead of NaN.

    Returns:
        [V, 3] float, same dtype/device as ``vertices``, differentiable wrt ``vertices``.
    """
    cross = _face_cross(vertices, faces)
    summed = torch.zeros_like(vertices)
    summed = summed.index_add(0, faces.reshape(-1), cross.repeat_interleave(3, dim=0))
    length = torch.linalg.vector_norm(summed, dim=-1, keepdim=True)
    return summed / length.clamp_min(eps)


def unit_sphere(vertices: torch.Tensor) -> torch.Tensor:
    """Centre on the vertex mean and scale the farthest vertex to radius 1 (differentiably).

    The reference's normalization: the base mesh gets it once, and the stylizer applies it
    again to every displaced mesh before rendering, so growing is no way to score.

    Args:
        vertices: [V, 3] float (V >= 1).

    Returns:
        [V, 3] same dtype/device; vertex mean 0, largest distance to the origin 1 (a mesh
        collapsed to one point stays at the origin).
    """
    centred = vertices - vertices.mean(dim=0, keepdim=True)
    radius = torch.linalg.vector_norm(centred, dim=-1).max()
    return centred / radius.clamp_min(torch.finfo(vertices.dtype).tiny)
