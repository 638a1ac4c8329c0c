"""Rendered 3D surfaces whose geometry carries a concept (training data of the tiny CLIP's shape half).

A sample is a closed surface (a sphere deformed into an ellipsoid, a rounded box or a blob, or
any mesh given) displaced along its normals by one of :data:`SURFACES` — ``smooth`` (none),
``spiky`` (sharp cones), ``bumpy`` (isolated round bumps), ``ridged`` (parallel sharp grooves)
or ``wavy`` (smooth parallel undulations) — coloured with a colour and a pattern laid out in 3D, or
plain grey as the stylizer's geometry pass draws it, and drawn by the project's own renderer with
the stylizer's lighting on white from random views, framed to fill the picture. One rasterization shades every colour pass
of a view batch. Everything is drawn from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..mesh import unit_sphere, vertex_normals
from ..render import Renderer
from ..views import cameras_from_angles
from .synthetic import (
    COLOUR_NAMES,
    PATTERNS,
    SURFACES,
    SyntheticBatch,
    _colour_values,
    _labels,
    captions_for,
)

__all__ = ["BASE_KINDS", "GREY", "SURFACES", "ShapeBank", "bank_batch", "base_meshes", "close_up", "displacement", "frame_content", "pits", "render_bank", "speckles", "surface_colours"]

GREY = COLOUR_NAMES.index("gray")


@dataclass(frozen=True)
class ShapeBank:
    """Rendered samples: images [N,3,S,S] uint8; colour, second, pattern (as in
    :class:`~text2mesh.guidance.synthetic.SyntheticBatch`) and surface [N] int64 (index into
    :data:`SURFACES`; -1: speckled, named by no surface word)."""

    images: Tensor
    colour: Tensor
    second: Tensor
    pattern: Tensor
    surface: Tensor


def _icosphere(subdivisions: int) -> tuple[Tensor, Tensor]:
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=subdivisions)
    return torch.tensor(sphere.vertices, dtype=torch.float32), torch.tensor(sphere.faces, dtype=torch.int64)


BASE_KINDS = ("ellipsoid", "rounded box", "blob", "compound", "creature", "lathe")


def _turn(g: torch.Generator) -> Tensor:
    """A random rotation [3, 3]."""
    return torch.linalg.qr(torch.randn(3, 3, generator=g)).Q


def _merged(pieces: list[Tensor], faces: Tensor) -> tuple[Tensor, Tensor]:
    """Parts [V, 3] sharing one face list -> one mesh on the unit sphere."""
    offsets = torch.arange(len(pieces)).repeat_interleave(len(faces)) * len(pieces[0])
    return unit_sphere(torch.cat(pieces)), faces.repeat(len(pieces), 1) + offsets[:, None]


def _compound(small: Tensor, small_faces: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """2-8 elongated ellipsoids scattered around the centre (they may not touch)."""
    pieces = []
    for _ in range(int(torch.randint(2, 9, (1,), generator=g))):
        stretch = torch.tensor([1.0, 0.25, 0.25]) + 0.25 * torch.rand(3, generator=g)
        pieces.append((small * stretch) @ _turn(g).T + 0.5 * torch.randn(3, generator=g))
    return _merged(pieces, small_faces)


def _creature(small: Tensor, small_faces: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """A body with limbs, necks and heads attached end to end (a figure, an animal, a lamp): each
    new part starts where an earlier one ends, so the parts form one connected shape."""
    body = torch.tensor([0.9, 0.35, 0.35]) * (0.6 + 0.6 * torch.rand(3, generator=g))
    pieces = [small * body]
    ends = [torch.tensor([body[0], 0, 0]), torch.tensor([-body[0], 0, 0])]
    for _ in range(int(torch.randint(3, 10, (1,), generator=g))):
        start = ends[int(torch.randint(0, len(ends), (1,), generator=g))]
        length = 0.25 + 0.45 * float(torch.rand((), generator=g))
        thickness = 0.06 + 0.16 * float(torch.rand((), generator=g))
        if float(torch.rand((), generator=g)) < 0.25:  # a round part: a head, a hand
            length = thickness = 0.12 + 0.15 * float(torch.rand((), generator=g))
        axis = F.normalize(torch.randn(3, generator=g), dim=0)
        turn = _turn(g)
        turn = turn * torch.sign(torch.det(turn))
        part = (small * torch.tensor([length, thickness, thickness])) @ turn.T
        along = turn[:, 0]
        along = along if float(along @ axis) >= 0 else -along
        centre = start + along * length * 0.85
        pieces.append(part + centre)
        ends.append(centre + along * length * 0.85)
    return _merged(pieces, small_faces)


def _lathe(directions: Tensor, g: torch.Generator) -> Tensor:
    """A surface of revolution (vase, bottle, cup, column): the sphere's radius about its axis
    scaled by a random smooth profile of the height. Returns vertices [V, 3]."""
    y = directions[:, 1]
    k = torch.arange(1, 5, dtype=torch.float32)
    amp = torch.randn(4, generator=g) * torch.tensor([0.25, 0.2, 0.12, 0.08])
    phase = torch.rand(4, generator=g) * 2 * math.pi
    profile = (0.55 + (amp * torch.cos(k * math.pi * y[:, None] + phase)).sum(1)).clamp(0.15, 1.2)
    height = 1.0 + 0.8 * float(torch.rand((), generator=g))
    return torch.stack([directions[:, 0] * profile, y * height, directions[:, 2] * profile], dim=1)


def base_meshes(
    n: int, g: torch.Generator, subdivisions: int = 4, kinds: tuple[str, ...] = BASE_KINDS
) -> list[tuple[Tensor, Tensor]]:
    """``n`` closed surfaces of the given ``kinds`` (BASE_KINDS) on the unit sphere: star-shaped
    ellipsoids, rounded boxes and blobs, compounds of 2-8 scattered elongated ellipsoids,
    creatures (connected bodies with limbs and heads) and lathes (surfaces of revolution).

    Returns:
        list of (vertices [V, 3] float32 with vertex mean 0 and radius 1, faces [F, 3] int64).
    """
    directions, faces = _icosphere(subdivisions)
    small, small_faces = _icosphere(subdivisions - 1)
    out = []
    for _ in range(n):
        axes = 0.55 + 0.45 * torch.rand(3, generator=g)
        kind = kinds[int(torch.randint(0, len(kinds), (1,), generator=g))]
        if kind == "compound":
            out.append(_compound(small, small_faces, g))
            continue
        if kind == "creature":
            out.append(_creature(small, small_faces, g))
            continue
        if kind == "lathe":
            out.append((unit_sphere(_lathe(directions, g)), faces))  # upright, as such objects stand
            continue
        scaled = directions / axes
        if kind == "ellipsoid":
            radius = 1.0 / scaled.norm(dim=1)
        elif kind == "rounded box":  # a superellipsoid
            power = 3.0 + 4.0 * float(torch.rand((), generator=g))
            radius = 1.0 / (scaled.abs() ** power).sum(1) ** (1.0 / power)
        else:  # blob: low-order harmonics
            freq = torch.randn(3, 4, generator=g) * 1.5
            phase = torch.rand(4, generator=g) * 2 * math.pi
            radius = 1.0 + 0.07 * torch.sin(directions @ freq + phase).sum(1)
        out.append((unit_sphere((directions * radius[:, None]) @ _turn(g).T), faces))
    return out


def _surface_points(vertices: Tensor, k: int, g: torch.Generator) -> Tensor:
    return vertices[torch.randint(0, len(vertices), (k,), generator=g)]


def _direction(g: torch.Generator) -> Tensor:
    d = torch.randn(3, generator=g)
    return d / d.norm()


def displacement(vertices: Tensor, surface: int, g: torch.Generator) -> Tensor:
    """Signed offsets [V] along the normals that give the surface its concept.

    Heights stay within what the style field can make (its default ``normratio`` is 0.1), and
    every feature spans a few edges of a level-5 icosphere (edge ~0.04) and of the shipped meshes,
    so that a dome renders round and a spike pointed: the five are told apart by scale and profile
    (spikes narrow and sharp, domes wide and round, grooves at twice the frequency of the waves and
    creased where the waves are smooth), not by height. Heights range from faint to full, so
    that a word's score grows as its feature grows: the slope the optimizer
    climbs from a smooth start (with full heights only, "a spiky object" scored faint spikes as it
    scores a smooth surface, and left the sphere smooth).

    Args:
        vertices: [V, 3] on the unit sphere (radius 1); surface: index into :data:`SURFACES`.
    """
    name = SURFACES[surface]
    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=g))
    if name == "smooth":
        return torch.zeros(len(vertices))
    if name in ("spiky", "bumpy"):
        spiky = name == "spiky"
        centres = _surface_points(vertices, int(u(60, 120) if spiky else u(15, 30)), g)
        dist = torch.cdist(vertices, centres)
        if spiky:  # sharp cones
            width, height = u(0.05, 0.08), u(0.03, 0.1)
            return height * (1 - dist / width).clamp(min=0).amax(1)
        radius, height = u(0.15, 0.22), u(0.03, 0.09)  # round domes, wide enough to look round
        return height * ((1 - (dist / radius) ** 2).clamp(min=0) ** 2).amax(1)
    t = vertices @ _direction(g)
    if name == "ridged":  # parallel grooves: a sharp triangle wave
        phase = u(0, 1) + t * u(7.0, 11.0)
        return u(0.02, 0.05) * (1 - 2 * (phase - torch.floor(phase) - 0.5).abs())
    bend = u(0.0, 0.2) * torch.sin(2 * math.pi * (vertices @ _direction(g)))  # wavy: smooth undulations
    return u(0.025, 0.07) * torch.sin(2 * math.pi * (u(3.5, 5.0) * t + bend) + u(0, 2 * math.pi))


def speckles(vertices: Tensor, g: torch.Generator) -> Tensor:
    """Per-vertex noise [V] along the normals: the speckled surface an optimizer makes when it
    fools a model instead of shaping anything. Rendered as a negative (named by no surface word),
    so that no surface word learns to mean noise."""
    amplitude = 0.01 + 0.03 * float(torch.rand((), generator=g))
    return amplitude * torch.randn(len(vertices), generator=g)


def pits(vertices: Tensor, g: torch.Generator) -> Tensor:
    """Offsets [V] along the normals: spikes turned inward, sharp pits. Rendered as a negative
    (named by no surface word): an optimizer asked for "a spiky object" reached pits as readily as
    spikes, since a model that had only seen outward cones scored both as spiky."""
    return -displacement(vertices, SURFACES.index("spiky"), g)


def surface_colours(vertices: Tensor, colour: int, second: int, pattern: int, g: torch.Generator,
                    tint: float = 0.0) -> Tensor:
    """Per-vertex colours [V, 3]: the main colour with a 3D pattern (PATTERNS) in the second one
    (tint: see :func:`~text2mesh.guidance.synthetic._colour_values`)."""
    c1, c2 = _colour_values(torch.tensor([colour, max(second, 0)]), g, tint)
    period = 0.25 + 0.3 * float(torch.rand((), generator=g))
    a, b = vertices @ _direction(g) / period, vertices @ _direction(g) / period
    name = PATTERNS[pattern]
    if name == "plain":
        mask = torch.zeros(len(vertices))
    elif name == "stripes":
        mask = (torch.sin(math.pi * a) > 0).float()
    elif name == "checkerboard":
        mask = (torch.sin(math.pi * a) * torch.sin(math.pi * b) > 0).float()
    elif name == "dots":  # near the points of a lattice
        cell = torch.remainder(vertices / period, 1.0) - 0.5
        mask = (cell.norm(dim=1) < 0.3).float()
    else:  # mottled
        field, cut = _blotch_field(vertices / period, g), float(torch.rand((), generator=g))
        veins = float(torch.rand((), generator=g)) < 0.5  # winding lines of the second colour, else blobs
        mask = ((field.abs() < 0.4 + 0.5 * cut) if veins else (field > cut)).float()
    return c1 * (1 - mask[:, None]) + c2 * mask[:, None]


def _blotch_field(points: Tensor, g: torch.Generator, waves: int = 6) -> Tensor:
    """A smooth random field [V] over points [V, 3] (period-1 units): a sum of ``waves`` plane
    waves in random directions (standard deviation about 1.7). Its level sets make irregular
    blotches about as wide as a stripe and, near zero, winding veins, running every way: the
    marbling an optimizer paints for "stripes" when its CLIP cannot tell stripes from blotches."""
    directions = F.normalize(torch.randn(waves, 3, generator=g), dim=1)
    freq = math.pi * (0.6 + 0.6 * torch.rand(waves, generator=g))
    phase = 2 * math.pi * torch.rand(waves, generator=g)
    return torch.sin(points @ directions.T * freq + phase).sum(1)


def render_bank(
    meshes: list[tuple[Tensor, Tensor]],
    g: torch.Generator,
    *,
    views: int = 4,
    passes: int = 3,
    size: int = 128,
    grey_fraction: float = 0.35,
    renderer: Renderer | None = None,
    tint: float = 0.0,
    speckled_fraction: float = 0.15,
    close_ups: float = 0.0,
    close_up_crop: tuple[float, float] = (0.07, 0.15),
    pitted_fraction: float = 0.0,
    surfaces: Tensor | None = None,
    mottled: float = 0.0,
) -> ShapeBank:
    """Displace, colour and render every mesh: ``views`` x ``passes`` samples per mesh.

    Each mesh gets a random surface concept; each pass a random colour and pattern, or plain
    grey (share ``grey_fraction``) as the geometry pass draws it; a share ``speckled_fraction``
    of the meshes is speckled instead (:func:`speckles`, surface -1: no word names it); the
    views look at the origin from random azimuths and elevations at the stylizer's distance and
    field of view. ``tint``: see :func:`~text2mesh.guidance.synthetic._colour_values`.
    A share ``close_ups`` of the views are close-ups instead: what the stylizer's geometry pass
    shows CLIP, a crop of ``close_up_crop`` (min, max share of the area) of a render at the
    stylizer's 224 pixels, here centred on a random point of the object, at full sharpness.
    A share ``pitted_fraction`` of the meshes that are not speckled is pitted instead (:func:`pits`,
    surface -1): the spikes turned inward, which "spiky" must not mean.
    ``surfaces`` [len(meshes)] int64 gives each mesh its surface (index into :data:`SURFACES`)
    instead of drawing it (and none is speckled or pitted): a balanced evaluation set.
    ``mottled``: share of the patterned colour passes painted with blotches (see
    :func:`~text2mesh.guidance.synthetic._labels`; 0 draws the same data as before it existed).
    """
    renderer = renderer or Renderer(antialias=False)
    images, colour, second, pattern, surface = [], [], [], [], []
    for i, (vertices, faces) in enumerate(meshes):
        kind = int(torch.randint(0, len(SURFACES), (1,), generator=g))
        if surfaces is not None:
            kind = int(surfaces[i])
        elif float(torch.rand((), generator=g)) < speckled_fraction:
            kind, offsets = -1, speckles(vertices, g)
        elif pitted_fraction and float(torch.rand((), generator=g)) < pitted_fraction:
            kind, offsets = -1, pits(vertices, g)
        if kind >= 0:
            offsets = displacement(vertices, kind, g)
        displaced = unit_sphere(vertices + vertex_normals(vertices, faces) * offsets[:, None])
        c, p, s = _labels(passes, g, plain_fraction=0.45, mottled=mottled)
        grey = torch.rand(passes, generator=g) < grey_fraction
        c, p, s = torch.where(grey, GREY, c), torch.where(grey, 0, p), torch.where(grey, -1, s)
        colours = torch.stack([surface_colours(displaced, int(ci), int(si), int(pi), g, tint)
                               for ci, pi, si in zip(c, p, s)])
        colours = torch.where(grey[:, None, None], torch.full_like(colours, 0.5), colours)
        azimuth = torch.rand(views, generator=g) * 2 * math.pi
        elevation = (torch.randn(views, generator=g) * 0.45).clamp(-1.2, 1.2)
        close = torch.rand(views, generator=g) < close_ups
        out = torch.empty(passes, views, 3, size, size, dtype=torch.uint8)
        kinds = ((~close, size, frame_content),
                 (close, CLOSE_UP_RESOLUTION, lambda pictures: close_up(pictures, size, close_up_crop, g)))
        for which, side, finish in kinds:
            if not which.any():
                continue
            cameras = cameras_from_angles(azimuth[which], elevation[which], radius=2.0, fov_degrees=60.0,
                                          image_size=(side, side))
            with torch.no_grad():
                drawn = renderer.render(displaced, faces, cameras, colours, lighting="sh").images  # [P, b, 3, s, s]
            drawn = finish((drawn.clamp(0, 1) * 255).round().to(torch.uint8).reshape(-1, 3, side, side))
            out[:, which] = drawn.reshape(passes, -1, 3, size, size)
        images.append(out.reshape(-1, 3, size, size))
        colour.append(c.repeat_interleave(views))
        second.append(s.repeat_interleave(views))
        pattern.append(p.repeat_interleave(views))
        surface.append(torch.full((passes * views,), kind))
    return ShapeBank(*(torch.cat(x) for x in (images, colour, second, pattern, surface)))


CLOSE_UP_RESOLUTION = 224  # the stylizer's render size, which its geometry crops cut


def close_up(images: Tensor, size: int, crop: tuple[float, float], g: torch.Generator) -> Tensor:
    """A square crop of each picture, of a random share ``crop`` (min, max) of its area, centred
    on a random pixel of the object (not white), resized to ``size``.

    Args:
        images: [N, 3, S, S] uint8 on white. Returns: [N, 3, size, size] uint8.
    """
    side = images.shape[-1]
    out = torch.empty(len(images), 3, size, size, dtype=torch.uint8)
    for i, mask in enumerate((images < 250).any(1)):
        width = max(2, round(side * math.sqrt(crop[0] + (crop[1] - crop[0]) * float(torch.rand((), generator=g)))))
        inside = mask.flatten().nonzero().flatten()
        centre = inside[int(torch.randint(0, len(inside), (1,), generator=g))] if len(inside) else side * side // 2
        top = min(max(int(centre) // side - width // 2, 0), side - width)
        left = min(max(int(centre) % side - width // 2, 0), side - width)
        crop_ = images[i, :, top : top + width, left : left + width].float()
        resized = F.interpolate(crop_[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return out


def frame_content(images: Tensor, margin: float = 0.06) -> Tensor:
    """Each picture cropped to a square around what is not white background (plus ``margin`` of its
    side on each edge) and resized back, so thin meshes (a standing human) fill the frame and
    their surface is seen at the tiny CLIP's few pixels.

    Args:
        images: [N, 3, S, S] uint8 on white. Returns: [N, 3, S, S] uint8.
    """
    size = images.shape[-1]
    out = images.clone()
    for i, mask in enumerate((images < 250).any(1)):
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        if len(rows) == 0:
            continue
        centre = torch.stack([rows[[0, -1]].float().mean(), cols[[0, -1]].float().mean()])
        half = max(int(rows[-1] - rows[0]), int(cols[-1] - cols[0])) * (0.5 + margin) + 1
        lo = (centre - half).round().long()
        hi = lo + int(2 * half)
        padded = F.pad(images[i].float(), (size, size, size, size), value=255.0)
        crop = padded[:, lo[0] + size : hi[0] + size, lo[1] + size : hi[1] + size]
        resized = F.interpolate(crop[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[i] = resized[0].round().clamp(0, 255).to(torch.uint8)
    return out


def bank_batch(bank: ShapeBank, index: Tensor, images: Tensor, g: torch.Generator) -> SyntheticBatch:
    """Samples ``index`` [n] of a bank as a captioned batch, with ``images`` [n,3,H,W] float
    (the caller's augmentation of ``bank.images[index]``)."""
    colour, second, pattern, surface = (getattr(bank, k)[index] for k in ("colour", "second", "pattern", "surface"))
    captions, cap_colour, cap_second, cap_pattern, cap_surface = captions_for(colour, second, pattern, surface, g)
    return SyntheticBatch(images, colour, second, pattern, captions, cap_colour, cap_second, cap_pattern, surface,
                          cap_surface)
