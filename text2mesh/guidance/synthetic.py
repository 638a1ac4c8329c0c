"""Procedural image/caption pairs about colours and patterns (training data of the tiny CLIP).

Each sample is one object (circle, polygon, star, blob, or a close-up filling the frame) with a
main colour and a pattern (plain, stripes, checkerboard, dots; mottled on request) in a second
colour, seen through a random perspective, on a random background, sometimes shaded like a lit
3D surface on white (the look of a rendered mesh). Everything is generated in batches with torch from an explicit
``torch.Generator``, so a seed fixes the data exactly.

Captions come from several templates and name some of the attributes ("a red object",
"something blue with stripes", "red and white stripes"; "an object" names none and is true of
every image); :func:`caption_matches` says which captions are true of which images, so a
contrastive loss does not punish correct pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "COLOURS",
    "PATTERNS",
    "SURFACES",
    "SyntheticBatch",
    "caption_matches",
    "colour_prompts",
    "make_batch",
    "pattern_prompts",
    "surface_prompts",
]

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.08, 0.08),
    "green": (0.1, 0.65, 0.15),
    "blue": (0.1, 0.2, 0.85),
    "yellow": (0.95, 0.88, 0.1),
    "orange": (1.0, 0.5, 0.05),
    "purple": (0.5, 0.12, 0.65),
    "pink": (1.0, 0.55, 0.75),
    "white": (0.96, 0.96, 0.96),
    "black": (0.05, 0.05, 0.05),
    "gray": (0.5, 0.5, 0.5),
    "brown": (0.45, 0.26, 0.1),
}
COLOUR_NAMES = tuple(COLOURS)
# Colours between the named ones (cyan, teal, light cyan): shown only as plain pictures that
# name no colour (see _blended_twins).
OFF_PALETTE = torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.85, 0.85], [0.05, 0.6, 0.65], [0.3, 0.95, 1.0]])
CHROMATIC = torch.tensor([name not in ("white", "black", "gray") for name in COLOURS])
PATTERNS = ("plain", "stripes", "checkerboard", "dots", "mottled")
# Patterns drawn for every picture; "mottled" (irregular blotches, the look an optimizer reaches
# for "blue and white stripes" when its CLIP cannot tell stripes from blotches) only for a share
# asked for (``mottled`` of make_batch and of synthetic_shapes.render_bank), so models trained
# without it draw the same data as before.
MOTTLED = PATTERNS.index("mottled")
REGULAR_PATTERNS = MOTTLED  # how many patterns come before it
PATTERN_NOUNS = {"stripes": ("stripes",), "checkerboard": ("a checkerboard pattern", "checks", "squares"),
                 "dots": ("dots", "polka dots", "spots"), "mottled": ("blotches", "patches", "camouflage")}
PATTERN_ADJECTIVES = {"plain": ("plain", "solid"), "stripes": ("striped",), "checkerboard": ("checkered", "checkerboard"),
                      "dots": ("dotted", "spotted", "polka dot"), "mottled": ("mottled", "blotchy", "patchy")}
NOUNS = ("object", "thing", "shape", "object", "surface", "sculpture", "image", "picture")
# What the geometry of a rendered 3D surface shows (text2mesh.guidance.synthetic_shapes draws them).
SURFACES = ("smooth", "spiky", "bumpy", "ridged", "wavy")
SURFACE_ADJECTIVES = {"smooth": ("smooth",), "spiky": ("spiky", "spiked"), "bumpy": ("bumpy", "lumpy"),
                      "ridged": ("ridged", "grooved"), "wavy": ("wavy", "undulating")}
SHAPES = ("circle", "polygon", "star", "blob", "closeup")


@dataclass(frozen=True)
class SyntheticBatch:
    """images [B,3,H,W] float32 in [0,1]; colour [B], second [B] (-1 for plain), pattern [B] int64
    indices into COLOUR_NAMES / PATTERNS; surface [B] into SURFACES (-1: a flat 2D picture);
    captions list[str] (one per image) and what each caption mentions: cap_colour [B],
    cap_second [B], cap_pattern [B], cap_surface [B] int64 (-1: not mentioned)."""

    images: torch.Tensor
    colour: torch.Tensor
    second: torch.Tensor
    pattern: torch.Tensor
    captions: list[str]
    cap_colour: torch.Tensor
    cap_second: torch.Tensor
    cap_pattern: torch.Tensor
    surface: torch.Tensor
    cap_surface: torch.Tensor

    @staticmethod
    def cat(batches: list[SyntheticBatch]) -> SyntheticBatch:
        """One batch holding the samples of all ``batches`` in order."""
        fields = {}
        for name in SyntheticBatch.__dataclass_fields__:
            parts = [getattr(b, name) for b in batches]
            fields[name] = [c for part in parts for c in part] if name == "captions" else torch.cat(parts)
        return SyntheticBatch(**fields)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _labels(n: int, g: torch.Generator, plain_fraction: float, bw_second: float = 0.5,
            mottled: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Main colour [n], pattern [n], second colour [n] (-1 when plain, never equal to the main;
    white or black with probability ``bw_second``); ``mottled``: share of the patterned ones
    made mottled (0: no random numbers drawn for it)."""
    k = len(COLOUR_NAMES)
    colour = torch.randint(0, k, (n,), generator=g)
    patterned = torch.rand(n, generator=g) >= plain_fraction
    pattern = torch.where(patterned, torch.randint(1, REGULAR_PATTERNS, (n,), generator=g), torch.zeros_like(colour))
    if mottled > 0:
        pattern = torch.where(patterned & (torch.rand(n, generator=g) < mottled), MOTTLED, pattern)
    bw = torch.tensor([COLOUR_NAMES.index("white"), COLOUR_NAMES.index("black")])
    second = torch.where(torch.rand(n, generator=g) < bw_second, bw[torch.randint(0, 2, (n,), generator=g)],
                         torch.randint(0, k, (n,), generator=g))
    clash = second == colour
    second = torch.where(clash, (colour + torch.randint(1, k, (n,), generator=g)) % k, second)
    return colour, pattern, torch.where(patterned, second, torch.full_like(second, -1))


def _colour_values(index: torch.Tensor, g: torch.Generator, tint: float = 0.0) -> torch.Tensor:
    """Jittered, sometimes washed-out RGB [n,3] for colour indices [n] (-1 -> any value; unused).

    tint: share of the chromatic colours that only tint a mid grey (50-85% of the way to it), so
    that the gradient of a colour word at a grey surface points toward that colour (0: none, and
    no random numbers drawn for it, as the judge was trained)."""
    table = torch.tensor(list(COLOURS.values()), dtype=torch.float32)
    rgb = table[index.clamp(min=0)]
    gain = _uniform(len(index), 0.85, 1.1, g)[:, None]
    noise = (torch.rand(len(index), 3, generator=g) - 0.5) * 0.12
    rgb = (rgb * gain + noise).clamp(0.0, 1.0)
    # half of the colours washed out toward their grey (up to 55%): a little red is still red,
    # so similarity to a colour word rises steadily from grey toward the colour
    washed = (torch.rand(len(index), 1, generator=g) < 0.5) * _uniform(len(index), 0.0, 0.55, g)[:, None]
    rgb = rgb + washed * (rgb.mean(dim=1, keepdim=True) - rgb)
    if tint <= 0:
        return rgb
    tinted = CHROMATIC[index.clamp(min=0)] & (torch.rand(len(index), generator=g) < tint)
    amount = tinted[:, None] * _uniform(len(index), 0.5, 0.85, g)[:, None]
    return rgb + amount * (0.5 - rgb)


def _perspective_grid(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Image coordinates seen through a random homography: x, y [n,H,W] (about [-1,1])."""
    lin = torch.linspace(-1.0, 1.0, size)
    y, x = torch.meshgrid(-lin, lin, indexing="ij")
    ones = torch.ones_like(x)
    pts = torch.stack([x, y, ones], dim=-1).reshape(1, -1, 3)
    mats = torch.eye(3).repeat(n, 1, 1)
    mats[:, 2, :2] = (torch.rand(n, 2, generator=g) - 0.5) * 0.9
    mats[:, :2, :2] += (torch.rand(n, 2, 2, generator=g) - 0.5) * 0.3
    warped = pts @ mats.transpose(1, 2)
    xy = warped[..., :2] / warped[..., 2:].clamp(min=0.2)
    xy = xy.reshape(n, size, size, 2)
    return xy[..., 0], xy[..., 1]


def _local_frame(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Object-local coordinates (unit object radius ~1): u, v [n,H,W], and the object's scale
    [n,1,1] (one local unit in image units, the image spanning [-1, 1])."""
    n = x.shape[0]
    cx, cy = (torch.rand(2, n, 1, 1, generator=g) - 0.5) * 0.6
    scale = _uniform(n, 0.35, 1.1, g)[:, None, None]
    aspect = _uniform(n, 0.7, 1.4, g)[:, None, None]
    angle = _uniform(n, 0.0, 2 * math.pi, g)[:, None, None]
    dx, dy = x - cx, y - cy
    u = (torch.cos(angle) * dx + torch.sin(angle) * dy) / (scale * aspect)
    v = (-torch.sin(angle) * dx + torch.cos(angle) * dy) * aspect / scale
    return u, v, scale


def _radius_function(phi: torch.Tensor, shape: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Boundary radius r(phi) [n,H,W] of star-shaped outlines; shape [n] indexes SHAPES."""
    n = phi.shape[0]
    sides = torch.randint(3, 8, (n, 1, 1), generator=g).float()
    sector = 2 * math.pi / sides
    local = torch.remainder(phi, sector) - sector / 2
    polygon = torch.cos(math.pi / sides) / torch.cos(local)
    star = 1.0 - 0.45 * (0.5 + 0.5 * torch.cos(sides * phi))
    coeff = (torch.rand(n, 4, 1, 1, generator=g) - 0.5) * 0.5
    phase = torch.rand(n, 4, 1, 1, generator=g) * 2 * math.pi
    k = torch.arange(2, 6, dtype=torch.float32).view(1, 4, 1, 1)
    blob = 1.0 + (coeff * torch.cos(k * phi[:, None] + phase)).sum(1)
    circle = torch.ones_like(phi)
    closeup = torch.full_like(phi, 1e3)
    options = torch.stack([circle, polygon, star, blob, closeup], dim=1)
    return options[torch.arange(n), shape]


def _pattern_mask(u: torch.Tensor, v: torch.Tensor, scale: torch.Tensor, pattern: torch.Tensor, size: int,
                  g: torch.Generator) -> torch.Tensor:
    """Second-colour coverage [n,H,W] in [0,1] (0 for plain), antialiased.

    The period is drawn in image units (0.2 to 0.6 of the half-width: 3 to 10 pixels at 32²), so
    patterns stay visible at the tiny model's input size."""
    n = u.shape[0]
    angle = _uniform(n, 0.0, math.pi, g)[:, None, None]
    freq = scale / _uniform(n, 0.2, 0.6, g)[:, None, None]
    a = (torch.cos(angle) * u + torch.sin(angle) * v) * freq
    b = (-torch.sin(angle) * u + torch.cos(angle) * v) * freq
    sharp = 0.6 * size * scale / freq  # about one pixel wide edges
    stripes = torch.sigmoid(sharp * torch.sin(math.pi * a))
    checker = torch.sigmoid(sharp * torch.sin(math.pi * a) * torch.sin(math.pi * b))
    dot_r = _uniform(n, 0.22, 0.38, g)[:, None, None]
    dist = torch.sqrt((torch.remainder(a, 1.0) - 0.5) ** 2 + (torch.remainder(b, 1.0) - 0.5) ** 2)
    dots = torch.sigmoid(4 * sharp * (dot_r - dist))
    options = [torch.zeros_like(u), stripes, checker, dots]
    if bool((pattern == MOTTLED).any()):
        options.append(torch.sigmoid(sharp * _blotches(a, b, g)))
    return torch.stack(options, dim=1)[torch.arange(n), pattern]


def _blotches(a: torch.Tensor, b: torch.Tensor, g: torch.Generator, waves: int = 5) -> torch.Tensor:
    """A smooth random field [n,H,W] over pattern coordinates a, b [n,H,W] (period-1 units), a
    sum of ``waves`` plane waves in directions spread over the half-turn: its sign makes
    irregular blotches about as large as a stripe, with no direction of their own."""
    n = a.shape[0]
    spread = torch.arange(waves, dtype=torch.float32).view(1, waves, 1, 1) * (math.pi / waves)
    jitter = _uniform(n * waves, -0.25, 0.25, g).view(n, waves, 1, 1) * (math.pi / waves)
    angle = _uniform(n, 0.0, math.pi, g).view(n, 1, 1, 1) + spread + jitter
    freq = _uniform(n * waves, 0.6, 1.2, g).view(n, waves, 1, 1) * math.pi
    phase = _uniform(n * waves, 0.0, 2 * math.pi, g).view(n, waves, 1, 1)
    along = torch.cos(angle) * a[:, None] + torch.sin(angle) * b[:, None]
    return torch.sin(freq * along + phase).sum(1) / math.sqrt(waves / 2)


def _shading(u: torch.Tensor, v: torch.Tensor, radius: torch.Tensor, g: torch.Generator,
             shaded: torch.Tensor) -> torch.Tensor:
    """Brightness [n,H,W]: a lit bulging surface where ``shaded`` [n] bool, else flat or a ramp."""
    n = u.shape[0]
    rho = torch.sqrt(u**2 + v**2)
    t = (rho / radius.clamp(max=1.5)).clamp(max=0.999)
    nz = torch.sqrt(1 - t**2)
    scale = t / rho.clamp(min=1e-6)
    normal = torch.stack([u * scale, v * scale, nz], dim=1)
    light = torch.randn(n, 3, generator=g)
    light[:, 2] = light[:, 2].abs() + 0.8
    light = light / light.norm(dim=1, keepdim=True)
    ambient = _uniform(n, 0.25, 0.55, g)[:, None, None]
    lambert = (normal * light[:, :, None, None]).sum(1).clamp(min=0)
    lit = ambient + (1 - ambient) * lambert * _uniform(n, 1.0, 1.25, g)[:, None, None]
    ramp = 1.0 + (torch.rand(n, 1, 1, generator=g) - 0.5) * 0.5 * u.clamp(-1.5, 1.5)
    return torch.where(shaded[:, None, None], lit, ramp).clamp(0.0, 1.3)


def _backgrounds(n: int, size: int, white: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Backgrounds [n,3,H,W]: white where ``white`` [n] bool, else gray, muted colour or a gradient."""
    base = torch.rand(n, 3, generator=g)
    grey = torch.rand(n, 1, generator=g).expand(n, 3)
    muted = 0.5 * base + 0.5 * grey
    kind = torch.randint(0, 3, (n, 1), generator=g)
    first = torch.where(kind == 0, grey, muted)
    other = torch.rand(n, 3, generator=g) * 0.5 + 0.25
    ramp = torch.linspace(0, 1, size).view(1, 1, size, 1)
    gradient = (kind == 2).float().view(n, 1, 1, 1)
    image = first[:, :, None, None] * (1 - gradient * ramp) + other[:, :, None, None] * gradient * ramp
    image = image.expand(n, 3, size, size)
    return torch.where(white.view(n, 1, 1, 1), torch.ones_like(image), image)


def _a(word: str) -> str:
    """``word`` with its indefinite article."""
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _pick(options: tuple[str, ...], r: float) -> str:
    return options[min(int(r * len(options)), len(options) - 1)]


def _surface_caption(colour: int, second: int, pattern: int, surface: int, r: list[float]) -> tuple:
    """One caption naming a 3D sample's surface, and what it mentions (as :func:`_caption`, + surface)."""
    c1 = COLOUR_NAMES[colour]
    word = _pick(SURFACE_ADJECTIVES[SURFACES[surface]], r[3])
    noun = _pick(NOUNS[:6], r[1])
    templates = [
        (_a(f"{word} {noun}"), -1, -1, -1, surface),
        (_a(f"{word} {noun}"), -1, -1, -1, surface),
        (_a(f"{word} {c1} {noun}"), colour, -1, -1, surface),
        (_a(f"{c1} {word} {noun}"), colour, -1, -1, surface),
        (f"something {word}", -1, -1, -1, surface),
        (f"a 3d render of {_a(word)} {noun}", -1, -1, -1, surface),
    ]
    if pattern > 0:
        pnoun = _pick(PATTERN_NOUNS[PATTERNS[pattern]], r[2])
        templates += [
            (f"{_a(word)} {noun} with {pnoun}", -1, -1, pattern, surface),
            (f"{_a(word)} {c1} {noun} with {COLOUR_NAMES[second]} {pnoun}", colour, second, pattern, surface),
        ]
    return templates[min(int(r[0] * len(templates)), len(templates) - 1)]


def _caption(colour: int, second: int, pattern: int, r: list[float], surface: int = -1) -> tuple:
    """One caption for an image and what it mentions (colour, second colour, pattern, surface;
    -1: not). A 3D sample (``surface`` >= 0) gets a caption naming its surface 85% of the time."""
    if surface >= 0 and r[4] < 0.85:
        return _surface_caption(colour, second, pattern, surface, r)
    return (*_caption_2d(colour, second, pattern, r), -1)


def _caption_2d(colour: int, second: int, pattern: int, r: list[float]) -> tuple[str, int, int, int]:
    """A caption naming colours and patterns only (true of any surface)."""
    c1 = COLOUR_NAMES[colour]
    noun = _pick(NOUNS, r[1])
    pname = PATTERNS[pattern]
    if pattern == 0:
        templates = [
            (_a(f"{c1} {noun}"), colour, -1, -1),
            (f"something {c1}", colour, -1, -1),
            (f"a photo of {_a(c1)} {noun}", colour, -1, -1),
            (f"a 3d render of {_a(c1)} {noun}", colour, -1, -1),
            (f"a plain {c1} {noun}", colour, -1, 0),
            (f"{_a(c1)} {noun} with no pattern", colour, -1, 0),
            (c1, colour, -1, -1),
            (_a(f"{_pick(PATTERN_ADJECTIVES['plain'], r[2])} {noun}"), -1, -1, 0),
            (_a(noun), -1, -1, -1),
        ]
    else:
        c2 = COLOUR_NAMES[second]
        pnoun = _pick(PATTERN_NOUNS[pname], r[2])
        adj = _pick(PATTERN_ADJECTIVES[pname], r[2])
        templates = [
            (f"{_a(c1)} {noun} with {c2} {pnoun}", colour, second, pattern),
            (f"something {c1} with {pnoun}", colour, -1, pattern),
            (f"{c1} and {c2} {pnoun}", colour, second, pattern),
            (f"{_a(c1)} and {c2} {adj} {noun}", colour, second, pattern),
            (f"a photo of {_a(adj)} {c1} {noun}", colour, -1, pattern),
            (f"{_a(noun)} with {pnoun}", -1, -1, pattern),
            (_a(f"{adj} {noun}"), -1, -1, pattern),
            (pnoun, -1, -1, pattern),
            (_a(noun), -1, -1, -1),
        ]
    return templates[min(int(r[0] * len(templates)), len(templates) - 1)]


def captions_for(colour: torch.Tensor, second: torch.Tensor, pattern: torch.Tensor, surface: torch.Tensor,
                 g: torch.Generator) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random caption per sample: (texts, cap_colour, cap_second, cap_pattern, cap_surface).

    Flat pictures draw 3 random numbers each (what the shipped text2mesh-tiny was trained on),
    batches with 3D samples 5."""
    rolls = torch.rand(len(colour), 5 if bool((surface >= 0).any()) else 3, generator=g).tolist()
    rows = [_caption(int(c), int(s), int(p), r, int(f)) for c, s, p, f, r in zip(colour, second, pattern, surface, rolls)]
    texts = [row[0] for row in rows]
    mentions = torch.tensor([row[1:] for row in rows], dtype=torch.int64).reshape(-1, 4)
    return texts, mentions[:, 0], mentions[:, 1], mentions[:, 2], mentions[:, 3]


def make_batch(n: int, size: int = 96, generator: torch.Generator | None = None, plain_fraction: float = 0.4,
               white_background: float = 0.4, shaded: float = 0.5, bw_second: float = 0.5,
               tint: float = 0.0, blends: float = 0.0, mottled: float = 0.0) -> SyntheticBatch:
    """Generate ``n`` image/caption pairs of ``size``² pixels (more with ``blends``).

    plain_fraction: share of plain objects; white_background / shaded: shares of white
    backgrounds and of lit 3D-looking surfaces (the look of a rendered mesh); bw_second: share
    of patterns whose second colour is white or black; tint: see :func:`_colour_values`;
    blends: share of the patterned pictures that get a blended twin (see :func:`_blended_twins`),
    appended after the ``n``; mottled: share of the patterned pictures drawn mottled.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    colour, pattern, second = _labels(n, g, plain_fraction, bw_second, mottled)
    x, y = _perspective_grid(n, size, g)
    u, v, scale = _local_frame(x, y, g)
    shape = torch.multinomial(torch.tensor([0.3, 0.2, 0.1, 0.25, 0.15]), n, replacement=True, generator=g)
    radius = _radius_function(torch.atan2(v, u), shape, g)
    rho = torch.sqrt(u**2 + v**2)
    edge = 2.5 / size
    coverage = torch.sigmoid((radius - rho) / edge)
    mask = _pattern_mask(u, v, scale, pattern, size, g)
    c1 = _colour_values(colour, g, tint)[:, :, None, None]
    c2 = _colour_values(second, g, tint)[:, :, None, None]
    albedo = c1 * (1 - mask[:, None]) + c2 * mask[:, None]
    is_shaded = torch.rand(n, generator=g) < shaded
    light = _shading(u, v, radius, g, is_shaded)
    white = (torch.rand(n, generator=g) < white_background) | (is_shaded & (torch.rand(n, generator=g) < 0.7))
    background = _backgrounds(n, size, white, g)
    cov = coverage[:, None]
    shaded_albedo = (albedo * light[:, None]).clamp(0, 1)
    noise = torch.randn(background.shape, generator=g) * _uniform(n, 0.0, 0.03, g).view(n, 1, 1, 1)
    images = (background * (1 - cov) + shaded_albedo * cov + noise).clamp(0.0, 1.0)
    flat = torch.full_like(colour, -1)
    captions, cap_colour, cap_second, cap_pattern, cap_surface = captions_for(colour, second, pattern, flat, g)
    batch = SyntheticBatch(images, colour, second, pattern, captions, cap_colour, cap_second, cap_pattern, flat,
                           cap_surface)
    if blends <= 0:
        return batch
    twins = torch.nonzero((pattern > 0) & (torch.rand(n, generator=g) < blends))[:, 0]
    mean_mask = (mask * coverage)[twins].sum(dim=(1, 2)) / coverage[twins].sum(dim=(1, 2)).clamp(min=1e-6)
    return SyntheticBatch.cat([batch, _blended_twins(c1[twins], c2[twins], mean_mask, light[twins], cov[twins],
                                                     background[twins], noise[twins], g)])


def _blended_twins(c1: torch.Tensor, c2: torch.Tensor, mean_mask: torch.Tensor, light: torch.Tensor,
                   cov: torch.Tensor, background: torch.Tensor, noise: torch.Tensor,
                   g: torch.Generator) -> SyntheticBatch:
    """Patterned pictures drawn again in one flat colour: half in their two colours' mix by
    coverage, half in a hue no colour word names (cyan to teal, see OFF_PALETTE).

    c1, c2: [k,3,1,1]; mean_mask: [k] the second colour's share of the object; light: [k,H,W];
    cov: [k,1,H,W]; background, noise: [k,3,H,W]. The twin is plain and of no named colour, so
    "blue and white stripes" is false of a uniform light blue or cyan: without such hard negatives
    a small CLIP scores a pattern by its mean colour, and an optimizer settles on a flat colour
    (measured: a ResNet tower's stylized sphere went to pure cyan, (0, 1, 1), the corner of the
    colour cube that no training picture showed). Captions name no colour ("a plain object",
    "an object")."""
    k = len(mean_mask)
    mix = c1 * (1 - mean_mask.view(k, 1, 1, 1)) + c2 * mean_mask.view(k, 1, 1, 1)
    hue = OFF_PALETTE[torch.randint(0, len(OFF_PALETTE), (k,), generator=g)]
    hue = (hue + (torch.rand(k, 3, generator=g) - 0.5) * 0.12).clamp(0, 1).view(k, 3, 1, 1)
    mix = torch.where(torch.rand(k, 1, 1, 1, generator=g) < 0.5, hue, mix)
    images = (background * (1 - cov) + (mix * light[:, None]).clamp(0, 1) * cov + noise).clamp(0.0, 1.0)
    none = torch.full((k,), -1, dtype=torch.int64)
    plain = torch.zeros(k, dtype=torch.int64)
    draws = torch.rand(k, 2, generator=g).tolist()
    says_plain = [r < 0.6 for r, _ in draws]
    texts = [_a(f"{_pick(PATTERN_ADJECTIVES['plain'], r)} {_pick(NOUNS, q)}") if plain_word else _a(_pick(NOUNS, q))
             for (r, q), plain_word in zip(draws, says_plain)]
    cap_pattern = torch.tensor([0 if plain_word else -1 for plain_word in says_plain], dtype=torch.int64)
    return SyntheticBatch(images, none, none, plain, texts, none, none, cap_pattern, none, none)


def caption_matches(batch: SyntheticBatch) -> torch.Tensor:
    """[B,B] bool: caption j is true of image i (named colours present in the named roles, up to
    swapping the two colours of stripes/checks; named pattern equal; named surface equal, which
    no flat 2D picture has)."""
    c1, c2, p = batch.colour[:, None], batch.second[:, None], batch.pattern[:, None]
    mc, ms, mp = batch.cap_colour[None], batch.cap_second[None], batch.cap_pattern[None]
    symmetric = (p == 1) | (p == 2) | (p == MOTTLED)
    straight = ((mc < 0) | (mc == c1)) & ((ms < 0) | (ms == c2))
    swapped = symmetric & ((mc < 0) | (mc == c2)) & ((ms < 0) | (ms == c1))
    surface = (batch.cap_surface[None] < 0) | (batch.cap_surface[None] == batch.surface[:, None])
    return (straight | swapped) & ((mp < 0) | (mp == p)) & surface


def colour_prompts() -> list[str]:
    """Zero-shot class prompts, one per colour in COLOUR_NAMES order."""
    return [_a(f"{name} object") for name in COLOUR_NAMES]


def surface_prompts() -> list[str]:
    """Zero-shot class prompts, one per surface in SURFACES order."""
    return [_a(f"{name} object") for name in SURFACES]


def pattern_prompts(count: int = REGULAR_PATTERNS) -> list[str]:
    """Zero-shot class prompts, one per pattern in PATTERNS order, for the first ``count`` patterns
    (by default the regular ones every model saw; len(PATTERNS) with mottled ones)."""
    prompts = ["a plain object", "an object with stripes", "an object with a checkerboard pattern",
               "an object with dots", "an object with blotches"]
    return prompts[:count]
