"""The Renderer: rasterize -> interpolate -> shade -> antialias -> composite, in one call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial

import torch
from torch import Tensor

from text2mesh.render.antialias import (
    blend_pairs,
    face_neighbors,
    mesh_edges,
    unpack_blend,
)
from text2mesh.render.composite import background_color
from text2mesh.render.interpolate import interpolate_packed
from text2mesh.render.rasterize import (
    DEFAULT_MAX_CANDIDATES,
    Fragments,
    camera_centers,
    face_orientation,
    is_closed_and_oriented,
    rasterize,
)
from text2mesh.render.shade import TEXT2MESH_SH, Lighting, pixel_normals, shade
from text2mesh.render.threads import intra_op_threads, scope_backward_threads
from text2mesh.views import Cameras

__all__ = ["RenderOutput", "Renderer", "transform_vertices"]


@dataclass(frozen=True)
class RenderOutput:
    """Images drawn by :meth:`Renderer.render`.

    Attributes:
        images: [B, 3, H, W] float in [0, 1], or [P, B, 3, H, W] when P colour passes were
            given. Premultiplied by ``alpha`` when the background is None (transparent).
        alpha: [B, 1, H, W] coverage in [0, 1] (fractional on antialiased silhouettes),
            differentiable; made on first use (why: most callers only read the images, and
            it costs about 2% of a render).
        fragments: the rasterization shared by all passes.
    """

    images: Tensor
    fragments: Fragments
    make_alpha: Callable[[], Tensor] = field(repr=False, compare=False)

    @cached_property
    def alpha(self) -> Tensor:
        return self.make_alpha()


def transform_vertices(vertices: Tensor, cameras: Cameras) -> Tensor:
    """World-space vertices -> clip space for every camera.

    Args:
        vertices: [V, 3] world positions.
        cameras: B cameras.
    Returns:
        [B, V, 4] clip-space positions in vertices.dtype, laid out as x, y, z, w planes
        (``permute(2, 0, 1)`` is contiguous: the rows :func:`rasterize` works on).
    """
    full = cameras.projection.to(vertices) @ cameras.world_to_camera.to(vertices)  # [B, 4, 4]
    batch = full.shape[0]
    # one matrix product for all views, [4B, 4] rows (coordinate-major) times the [4, V]
    # homogeneous points (why: it makes the planes rasterize reads without a transposed
    # copy, forward or backward)
    rows = full.transpose(0, 1).reshape(4 * batch, 4)
    points = torch.cat([vertices, vertices.new_ones(vertices.shape[0], 1)], dim=1)  # [V, 4]
    planes = (rows @ points.t()).view(4, batch, -1)  # [4, B, V]
    return planes.permute(1, 2, 0)


class _TopologyCache:
    """Face adjacency, edges and closedness of the last faces seen (found once per mesh, not
    per render: they cost more than a small render)."""

    def __init__(self) -> None:
        self._entry: tuple[Tensor, Tensor, Tensor, bool] | None = None

    def get(self, faces: Tensor) -> tuple[Tensor, Tensor, bool]:
        """(face adjacency [F, 3], edges [5, E] (see :func:`mesh_edges`), closed and oriented)."""
        if self._entry is not None:
            cached_faces, *topology = self._entry
            if (
                cached_faces.shape == faces.shape
                and cached_faces.device == faces.device
                and torch.equal(cached_faces, faces)
            ):
                return tuple(topology)
        neighbors = face_neighbors(faces)
        topology = (neighbors, mesh_edges(faces, neighbors), is_closed_and_oriented(faces))
        self._entry = (faces.detach().clone(), *topology)
        return topology


class Renderer:
    """Differentiable mesh renderer (pure PyTorch; CPU and CUDA).

    Gradients reach the colours, and the vertex positions through the barycentric
    interpolation, the shading normals and the silhouette antialiasing (see
    :mod:`text2mesh.render.antialias`).

    Args:
        antialias: blend silhouette edges (needed for silhouette gradients).
        two_sided: light faces seen from behind as if they faced the camera (open meshes).
        sh_coefficients: the 9 spherical-harmonic lighting coefficients used by
            ``lighting="sh"`` (default: Text2Mesh's 1, 1, 1, 1, 0, 0, 0, 0, 0).
        max_candidates: bound on the (view, face, pixel) candidates held at once while
            rasterizing; lower it to use less memory.
        cull_back_faces: skip the faces turned away from the camera where that cannot change
            the picture (closed, consistently oriented meshes seen from outside; see
            :func:`text2mesh.render.rasterize.face_orientation`); about halves the
            rasterization work. Open meshes are always drawn two-sided.
        threads: None (default) runs on the caller's PyTorch thread setting. An int makes
            the renderer's own work on CPU, forward and backward, use that many intra-op
            threads and restores the caller's setting for everything else (see
            :mod:`text2mesh.render.threads`); this changes process-wide state while it runs,
            so do not use it with several threads rendering at once. On this project's
            2-core machine the renderer is faster on 2 threads than on 1 (forward+backward of
            5 views of a 49k-face mesh at 224x224, same run: 0.032 s vs 0.052 s); 1 only paid
            off while the cores were oversubscribed.
    """

    def __init__(
        self,
        *,
        antialias: bool = True,
        two_sided: bool = True,
        sh_coefficients: Sequence[float] = TEXT2MESH_SH,
        max_candidates: int = DEFAULT_MAX_CANDIDATES,
        threads: int | None = None,
        cull_back_faces: bool = True,
    ) -> None:
        if len(sh_coefficients) != 9:
            raise ValueError(f"sh_coefficients needs 9 numbers, got {len(sh_coefficients)}")
        self.antialias = antialias
        self.two_sided = two_sided
        self.sh_coefficients = tuple(float(c) for c in sh_coefficients)
        self.max_candidates = int(max_candidates)
        self.threads = threads
        self.cull_back_faces = cull_back_faces
        self._topology = _TopologyCache()

    def with_options(self, **changes) -> Renderer:
        """A renderer with some constructor options changed that shares this one's cached
        topology (e.g. antialiased pictures of the mesh an optimization rendered without)."""
        options = {name: getattr(self, name) for name in
                   ("antialias", "two_sided", "sh_coefficients", "max_candidates", "threads", "cull_back_faces")}
        other = Renderer(**{**options, **changes})
        other._topology = self._topology
        return other

    def neighbors(self, faces: Tensor) -> Tensor:
        """[F, 3] face adjacency (see :func:`face_neighbors`), cached for the last faces."""
        return self._topology.get(faces)[0]

    def render(
        self,
        vertices: Tensor,
        faces: Tensor,
        cameras: Cameras,
        colors: Tensor,
        lighting: Lighting = "sh",
        background: Sequence[float] | Tensor | None = (1.0, 1.0, 1.0),
    ) -> RenderOutput:
        """Draw a vertex-coloured mesh from every camera.

        Args:
            vertices: [V, 3] float32 (float64 allowed) world positions.
            faces: [F, 3] int64 vertex indices, counter-clockwise seen from outside.
            cameras: B cameras (their ``image_size`` sets H, W); moved to vertices' device.
            colors: [V, 3] per-vertex RGB in [0, 1], or [P, V, 3] for P colour passes that
                share one rasterization (e.g. a coloured pass and a plain grey pass).
            lighting: "sh" (Text2Mesh's spherical-harmonic lighting on camera-space face
                normals, multiplied into the colour, clamped to [0, 1]) or "unlit".
            background: (r, g, b) in [0, 1], or None for a transparent background (images
                are then premultiplied by ``alpha``).
        Returns:
            :class:`RenderOutput`; ``images`` is [B, 3, H, W], or [P, B, 3, H, W] when
            ``colors`` has a pass dimension. Row 0 is the top of the picture.
        """
        vertices, faces, colors = self._check(vertices, faces, colors)
        device_type = vertices.device.type
        threads = self.threads if device_type == "cpu" else None
        made: list[tuple[Fragments, tuple[Tensor, Tensor, Tensor] | None, torch.dtype]] = []

        def run(v: Tensor, c: Tensor) -> tuple[Tensor, ...]:
            images, fragments, pairs = self._render(v, faces, cameras, c, lighting, background)
            made.append((fragments, pairs, images.dtype))
            if threads is None:
                return (images,)
            # made now, so that its backward also runs under the renderer's thread count
            return images, _coverage(fragments, pairs, images.dtype)

        with torch.autocast(device_type, enabled=False), intra_op_threads(threads):
            outputs = scope_backward_threads((vertices, colors), run, threads)
        fragments, pairs, dtype = made[0]
        if threads is None:
            make_alpha = partial(_coverage, fragments, pairs, dtype)
        else:
            alpha = outputs[1]
            make_alpha = lambda: alpha  # (the one made under the thread scope)
        return RenderOutput(images=outputs[0], fragments=fragments, make_alpha=make_alpha)

    def _render(
        self,
        vertices: Tensor,
        faces: Tensor,
        cameras: Cameras,
        colors: Tensor,
        lighting: Lighting,
        background: Sequence[float] | Tensor | None,
    ) -> tuple[Tensor, Fragments, tuple[Tensor, Tensor, Tensor] | None]:
        """(images, fragments, the antialiasing blend pairs or None) of :meth:`render`."""
        passes = colors.shape[0] if colors.dim() == 3 else None
        num_passes = passes or 1
        clip_vertices = transform_vertices(vertices, cameras)
        _, edges, closed = self._topology.get(faces)
        centers = camera_centers(cameras.world_to_camera.to(vertices))
        orientation, back = face_orientation(vertices, faces, centers)
        fragments = rasterize(
            clip_vertices,
            faces,
            cameras.image_size,
            max_candidates=self.max_candidates,
            orientation=orientation,
            cull=back if self.cull_back_faces and closed else None,
        )
        attributes = colors if passes is None else colors.permute(1, 0, 2)
        attributes = attributes.reshape(vertices.shape[0], 3 * num_passes)
        values = interpolate_packed(attributes, faces, fragments)
        normals = None
        if lighting == "sh":
            projection = cameras.projection.to(vertices)
            normals = pixel_normals(fragments, projection, self.two_sided)
        values = shade(values, normals, lighting, self.sh_coefficients)
        pairs = None
        if self.antialias:
            pairs = blend_pairs(fragments, edges=edges, dtype=values.dtype)
        # Compositing over the background before antialiasing (filling uncovered pixels
        # with it) equals compositing after: the blend mixes two pixels convexly.
        fill = (
            None if background is None else background_color(background, values).repeat(num_passes)
        )
        images = unpack_blend(values, fragments, pairs, fill)  # [B, 3P, H, W]
        if passes is not None:
            batch, _, height, width = images.shape
            images = images.view(batch, passes, 3, height, width).transpose(0, 1)
        return images, fragments, pairs

    @staticmethod
    def _check(vertices: Tensor, faces: Tensor, colors: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if vertices.dim() != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be [V, 3], got {tuple(vertices.shape)}")
        if not vertices.is_floating_point():
            raise ValueError("vertices must be a floating-point tensor")
        if vertices.dtype not in (torch.float32, torch.float64):
            vertices = vertices.float()
        shape_ok = colors.dim() in (2, 3) and colors.shape[-1] == 3
        if not shape_ok or colors.shape[-2] != vertices.shape[0]:
            raise ValueError(
                f"colors must be [V, 3] or [P, V, 3] with V={vertices.shape[0]}, "
                f"got {tuple(colors.shape)}"
            )
        faces = faces.to(device=vertices.device, dtype=torch.int64)
        return vertices, faces, colors.to(device=vertices.device, dtype=vertices.dtype)


def _coverage(
    fragments: Fragments, pairs: tuple[Tensor, Tensor, Tensor] | None, dtype: torch.dtype
) -> Tensor:
    """[B, 1, H, W] coverage: 1 on covered pixels, 0 elsewhere, blended like the images."""
    ones = torch.ones(1, fragments.pixel_index.shape[0], dtype=dtype, device=fragments.faces.device)
    return unpack_blend(ones, fragments, pairs)
