"""One stylization iteration as a :class:`~text2mesh.optimize.Problem`.

Per iteration: field(xyz) -> colours and displacements -> displaced vertices, normalized again
to the unit sphere -> sample views -> ONE rasterization shading two colour passes (styled
colours, plain grey) -> augmentations of both -> one batched CLIP call inside the objective ->
one scalar loss: as the reference, one ``-cos`` per augmentation (1 full view, n local crops of
the colour renders, n crops of the grey renders), each term times its weight.

Where we differ from the reference on purpose: the grey pass is drawn from the same cameras as
the colour pass (one rasterization shades both); the reference samples new cameras for it.
Both are unbiased estimates of the same expected loss over the view distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .augment import AugmentSpec, augment
from .config import Config
from .field import StyleField, displace
from .guidance.objective import Objective, Term
from .mesh import Mesh, unit_sphere, vertex_normals
from .views import cameras_from_angles, orbit_views, sample_front_views

GREY = 0.5


@dataclass(frozen=True)
class Styled:
    """The field's output on a mesh.

    Attributes:
        colors: [V, 3] in [0, 1]; displacement: [V] (normalized units, along the base normals);
        vertices: [V, 3] displaced, then normalized again to the base's vertex mean and radius
        (0 and 1 for a prepared mesh; see :func:`renormalized`), so what is rendered and exported
        keeps the base's size.
    """

    colors: Tensor
    displacement: Tensor
    vertices: Tensor


def style_mesh(
    field: StyleField,
    mesh: Mesh,
    normals: Tensor,
    *,
    base_colors: Tensor | None = None,
    progress: float = 1.0,
    features: Tensor | None = None,
) -> Styled:
    """Evaluate the field on a mesh.

    Args:
        field: the style field; mesh: base mesh (normalized frame); normals: [V, 3] its vertex
        normals; base_colors: [V, 3] colours the field's output offsets (None: grey base).
        progress: for the progressive encoding.
        features: ``field.encode(mesh.vertices)`` computed before (None: computed here).
    """
    if features is None:
        features = field.encode(mesh.vertices, progress)
    colors, displacement = field.decode(features)
    if base_colors is not None:
        colors = (base_colors + (colors - GREY)).clamp(0.0, 1.0)
    return Styled(colors, displacement, renormalized(displace(mesh.vertices, normals, displacement), mesh.vertices))


def renormalized(vertices: Tensor, base: Tensor) -> Tensor:
    """The reference's normalization of a displaced mesh, in the base mesh's frame.

    Args:
        vertices: [V, 3] displaced vertices; base: [V, 3] the base mesh's.
    Returns:
        [V, 3] ``vertices`` centred on their mean and scaled to their farthest vertex, then given
        the base's vertex mean and radius. A prepared base has mean 0 and radius 1, so this is
        exactly the reference's unit sphere; bases of runs saved before it was (centred on their
        bounding box) keep their frame, so their exports stay in the input's.
    """
    with torch.no_grad():
        centre = base.mean(dim=0)
        radius = torch.linalg.vector_norm(base - centre, dim=-1).max()
    return unit_sphere(vertices) * radius + centre


def sample_view_angles(cfg: Config, generator: torch.Generator, *, device) -> tuple[Tensor, Tensor]:
    """This iteration's camera angles (azimuth [B], elevation [B]) per ``cfg.views``."""
    v = cfg.views
    if v.mode == "orbit":
        offset = float(torch.rand((), generator=generator, dtype=torch.float64)) * 2 * math.pi / v.n_views
        return orbit_views(v.n_views, v.center_elevation, v.center_azimuth + offset, device=device)
    return sample_front_views(v.n_views, v.center_azimuth, v.center_elevation, v.std, generator=generator, device=device)


class StylizeProblem:
    """Stylize a prepared mesh: the field's parameters against CLIP targets.

    Args:
        mesh: the base mesh in the normalized frame (on ``device``).
        field: the style field (on ``device``).
        renderer: an object with ``render(vertices, faces, cameras, colors, lighting, background)``.
        objective: weighted CLIP targets.
        cfg: the run's config (views, render, guidance, optim.iters for the progressive encoding).
        clip_size: (h, w) the CLIP model's input size (augmentations are produced at it).
    """

    def __init__(
        self,
        mesh: Mesh,
        field: StyleField,
        renderer,
        objective: Objective,
        cfg: Config,
        *,
        clip_size: tuple[int, int],
    ) -> None:
        self.mesh = mesh
        self.field = field
        self.renderer = renderer
        self.objective = objective
        self.cfg = cfg
        self.clip_size = clip_size
        self.device = mesh.vertices.device
        self.normals = vertex_normals(mesh.vertices, mesh.faces).detach()
        base = mesh.colors if (cfg.mesh.use_input_colors and mesh.colors is not None) else None
        self.base_colors = None if base is None else base.to(self.device)
        fill = cfg.render.background if cfg.guidance.fill is None else cfg.guidance.fill
        self.fill = torch.tensor(fill, dtype=torch.float32, device=self.device)
        self._features: Tensor | None = None

    def parameters(self):
        return self.field.parameters()

    def state_dict(self) -> dict:
        return self.field.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.field.load_state_dict(state)
        self._features = None

    def features(self, progress: float) -> Tensor:
        """The field's input features, computed once when they no longer change over training."""
        if not self.field.features_constant_from(progress):
            return self.field.encode(self.mesh.vertices, progress)
        if self._features is None:
            with torch.no_grad():
                self._features = self.field.encode(self.mesh.vertices)
        return self._features

    def styled(self, progress: float = 1.0) -> Styled:
        """Evaluate the field on the base mesh (differentiable)."""
        return style_mesh(
            self.field, self.mesh, self.normals, base_colors=self.base_colors, features=self.features(progress)
        )

    def cameras(self, azimuth: Tensor, elevation: Tensor, resolution: int):
        return cameras_from_angles(
            azimuth,
            elevation,
            radius=self.cfg.views.radius,
            fov_degrees=self.cfg.views.fov_degrees,
            image_size=(resolution, resolution),
        )

    def render_passes(self, styled: Styled, cameras, *, grey: bool) -> Tensor:
        """Colour pass (and grey pass) of the displaced mesh from one shared rasterization.

        Returns:
            [P, B, 3, H, W] with P = 2 (colour, grey) when ``grey`` else P = 1.
        """
        passes = [styled.colors]
        if grey:
            passes.append(torch.full_like(styled.colors, GREY))
        out = self.renderer.render(
            styled.vertices,
            self.mesh.faces,
            cameras,
            colors=torch.stack(passes),
            lighting=self.cfg.render.lighting,
            background=tuple(self.cfg.render.background),
        )
        return out.images

    def terms(self, images: Tensor, generator: torch.Generator) -> list[Term]:
        """Augment the passes into the objective's terms (full views, local crops, geometry).

        Each term's augmentations add up (the reference's balance: with 1 full-view and 4
        local augmentations, full : local : geometry weigh 1 : 4 : 4 before the term weights).
        """
        g = self.cfg.guidance
        n_views = images.shape[1]
        color = images[0]
        common = {"distortion": g.perspective_distortion, "p": g.perspective_p}
        kwargs = {"size": self.clip_size, "fill": self.fill, "generator": generator}
        full = AugmentSpec(g.n_augs, scale=(1.0, 1.0), **common)
        local = AugmentSpec(g.n_local_augs, scale=tuple(g.local_crop), **common)
        terms = [
            Term("full", augment(color, full, **kwargs), n_views, g.full_weight),
            Term("local", augment(color, local, **kwargs), n_views, g.local_weight),
        ]
        if images.shape[0] > 1:
            geometry = AugmentSpec(g.n_local_augs, scale=tuple(g.geometry_crop), **common)
            terms.append(Term("geometry", augment(images[1], geometry, **kwargs), n_views, g.geometry_weight))
        return terms

    @property
    def uses_geometry(self) -> bool:
        g = self.cfg.guidance
        return bool(
            g.geometry_loss and self.cfg.field.displacement and g.geometry_weight != 0 and g.n_local_augs > 0
        )

    def loss(self, step: int, generator: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        progress = min(1.0, step / max(1, self.cfg.optim.iters))
        styled = self.styled(progress)
        azimuth, elevation = sample_view_angles(self.cfg, generator, device=self.device)
        cameras = self.cameras(azimuth, elevation, self.cfg.render.resolution)
        images = self.render_passes(styled, cameras, grey=self.uses_geometry)
        return self.objective(self.terms(images, generator))
