"""Pictures of a mesh drawn with our own renderer (headless): turntables, before/after, grids.

Pictures are numpy arrays ``[H, W, 3] uint8`` (row 0 at the top); animations are lists of
them. Drawing and saving are separate: ``turntable(...)`` returns frames, ``save_gif`` /
``save_mp4`` / ``save_png`` write them atomically. Meshes are expected in the normalized frame
(inside the unit sphere, y up, front facing +z), as :mod:`text2mesh.mesh.prepare` makes them.
"""

from __future__ import annotations

import importlib.util
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..render import Renderer
from ..views import cameras_from_angles, orbit_views
from .files import ExportError, atomic_path, write_bytes_atomic

GREY = (0.7, 0.7, 0.7)  # colour of an uncoloured mesh in pictures
FRONT_AZIMUTH = math.pi / 2  # looks at the +z side, the front of a prepared mesh


@dataclass(frozen=True)
class PictureSettings:
    """How pictures are framed and drawn."""

    size: int = 512  # square image size in pixels
    radius: float = 2.7  # camera distance; a unit sphere fills ~80% of the height at fov 45
    fov_degrees: float = 45.0
    elevation: float = math.radians(15.0)  # camera height above the equator
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lighting: str = "sh"  # "sh" (what CLIP saw during stylization) or "unlit"
    batch: int = 4  # views rendered at once (memory vs speed)
    device: str = "cpu"


def _tensor(array, dtype, device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array).to(
        device=device, dtype=dtype
    )


def render_views(
    vertices,
    faces,
    colors,
    azimuth: Sequence[float] | torch.Tensor,
    elevation: Sequence[float] | torch.Tensor,
    settings: PictureSettings = PictureSettings(),
    renderer: Renderer | None = None,
) -> np.ndarray:
    """Draw a mesh from the given angles.

    Args:
        vertices: [V, 3] float (tensor or array), normalized frame.
        faces: [F, 3] int.
        colors: [V, 3] float in [0, 1], None for plain grey, or [P, V, 3] for P colourings
            drawn from one rasterization.
        azimuth, elevation: [B] radians (see :mod:`text2mesh.views`).
        settings: framing and drawing options.
        renderer: reuse one across calls (its topology is found once); default a fresh
            antialiased Renderer.
    Returns:
        [B, H, W, 3] uint8 pictures, or [P * B, H, W, 3] (colouring by colouring) with passes.
    """
    device = torch.device(settings.device)
    v = _tensor(vertices, torch.float32, device)
    f = _tensor(faces, torch.int64, device)
    c = _colors(colors, len(v), device)
    azimuth = torch.as_tensor(azimuth, dtype=torch.float32)
    elevation = torch.as_tensor(elevation, dtype=torch.float32)
    renderer = renderer or Renderer()
    pictures = []
    with torch.no_grad():
        for start in range(0, len(azimuth), settings.batch):
            cameras = cameras_from_angles(
                azimuth[start : start + settings.batch].to(device),
                elevation[start : start + settings.batch].to(device),
                radius=settings.radius,
                fov_degrees=settings.fov_degrees,
                image_size=(settings.size, settings.size),
            )
            out = renderer.render(v, f, cameras, c, lighting=settings.lighting, background=settings.background)
            pictures.append(to_uint8(out.images.movedim(-3, -1)))
    if not pictures:
        return np.zeros((0, settings.size, settings.size, 3), np.uint8)
    return np.concatenate(pictures, axis=-4).reshape(-1, settings.size, settings.size, 3)


def _colors(colors, n_vertices: int, device: torch.device) -> torch.Tensor:
    """[V, 3] or [P, V, 3] colours clamped to [0, 1]; None: plain grey [V, 3]."""
    if colors is None:
        return torch.tensor(GREY, device=device).expand(n_vertices, 3)
    return _tensor(colors, torch.float32, device).clamp(0, 1)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] (any shape) -> uint8 numpy, rounded."""
    return (images.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def turntable(
    vertices,
    faces,
    colors,
    n_frames: int = 30,
    settings: PictureSettings = PictureSettings(),
    renderer: Renderer | None = None,
) -> list[np.ndarray]:
    """Frames of one full turn around the mesh, starting from the front.

    Returns:
        ``n_frames`` pictures [H, W, 3] uint8.
    """
    azimuth, elevation = orbit_views(n_frames, settings.elevation, FRONT_AZIMUTH)
    return list(render_views(vertices, faces, colors, azimuth, elevation, settings, renderer))


def view_grid(
    vertices,
    faces,
    colors,
    n_views: int = 8,
    columns: int = 4,
    settings: PictureSettings = PictureSettings(),
    renderer: Renderer | None = None,
) -> np.ndarray:
    """Evenly spaced views (front first, then turning) tiled ``columns`` per row.

    Returns:
        [rows * size, columns * size, 3] uint8 (unused tiles are background).
    """
    azimuth, elevation = orbit_views(n_views, settings.elevation, FRONT_AZIMUTH)
    views = render_views(vertices, faces, colors, azimuth, elevation, settings, renderer)
    return tile(list(views), columns, settings)


def before_after(
    before: tuple,
    after: tuple,
    n_views: int = 2,
    settings: PictureSettings = PictureSettings(),
    labels: tuple[str, str] = ("before", "after"),
    renderer: Renderer | None = None,
) -> np.ndarray:
    """The base mesh above the stylized one, from the same ``n_views`` angles; when the style
    moved the surface, a middle row shows the new shape plain grey (as the geometry loss sees
    it: spikes, swelling or speckles are judged by shading alone).

    Args:
        before, after: (vertices [V, 3], faces [F, 3], colors [V, 3] or None) each; when
            both have the same vertices (a colour-only style), one rasterization draws both.
        n_views: views per row: the front, then turning 45 degrees each (front, three-quarter, side, ...).
    Returns:
        [rows * size, n_views * size, 3] uint8, each row captioned (2 rows, or 3 when the shape changed).
    """
    azimuth = FRONT_AZIMUTH - torch.arange(n_views, dtype=torch.float32) * (math.pi / 4)
    elevation = torch.full((n_views,), settings.elevation)
    if _same_shape(before, after):
        colors = torch.stack([_colors(mesh[2], len(before[0]), torch.device(settings.device)) for mesh in (before, after)])
        views = render_views(before[0], before[1], colors, azimuth, elevation, settings, renderer)
        shown = [views[:n_views], views[n_views:]]
    else:
        shown = [render_views(*before, azimuth, elevation, settings, renderer)]
        device = torch.device(settings.device)
        colors = torch.stack([_colors(None, len(after[0]), device), _colors(after[2], len(after[0]), device)])
        views = render_views(after[0], after[1], colors, azimuth, elevation, settings, renderer)
        shown += [views[:n_views], views[n_views:]]
        labels = (labels[0], f"{labels[1]}, grey", labels[1])
    rows = [caption(tile(list(views), n_views, settings), label) for views, label in zip(shown, labels)]
    return np.concatenate(rows, axis=0)


def _same_shape(first: tuple, second: tuple, tolerance: float = 1e-5) -> bool:
    """Whether two (vertices, faces, colors) meshes have the same faces and vertices (up to
    ``tolerance``, far below a pixel: float noise from re-normalizing an unmoved surface)."""
    a, b = (_tensor(mesh[0], torch.float32, "cpu") for mesh in (first, second))
    f, g = (_tensor(mesh[1], torch.int64, "cpu") for mesh in (first, second))
    return a.shape == b.shape and f.shape == g.shape and torch.equal(f, g) and bool((a - b).abs().max() <= tolerance)


def tile(pictures: list[np.ndarray], columns: int, settings: PictureSettings = PictureSettings()) -> np.ndarray:
    """Pictures [H, W, 3] (all one size) in a grid, row by row; missing tiles are background."""
    height, width = pictures[0].shape[:2]
    rows = math.ceil(len(pictures) / columns)
    background = np.asarray(settings.background) * 255
    grid = np.empty((rows * height, columns * width, 3), np.uint8)
    grid[:] = np.round(background).astype(np.uint8)
    for index, picture in enumerate(pictures):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = picture
    return grid


def _font(pixels: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=pixels)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def caption(picture: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` in the top-left corner of a picture (dark grey; returns a copy)."""
    image = Image.fromarray(picture)
    draw = ImageDraw.Draw(image)
    pixels = max(12, picture.shape[0] // 20)
    draw.text((pixels // 2, pixels // 3), text, fill=(40, 40, 40), font=_font(pixels))
    return np.asarray(image)


def loss_plot(losses: Sequence[float], size: tuple[int, int] = (640, 360), title: str = "loss") -> np.ndarray:
    """A line chart of the loss per iteration (drawn with PIL; no plotting library needed).

    Args:
        losses: one value per iteration (non-finite values are skipped).
        size: (width, height) in pixels.
    Returns:
        [height, width, 3] uint8 chart with axes, the first/last/min values and the iteration count.
    """
    width, height = size
    values = np.asarray(list(losses), np.float64)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    font = _font(max(10, height // 24))
    left, right, top, bottom = 70, width - 15, 30, height - 35
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0), width=1)
    finite = np.isfinite(values)
    draw.text((left, 6), f"{title} ({len(values)} iterations)", fill=(0, 0, 0), font=font)
    if finite.sum() >= 1:
        low, high = values[finite].min(), values[finite].max()
        span = high - low if high > low else 1.0
        steps = np.arange(len(values))[finite]
        x = left + (steps / max(len(values) - 1, 1)) * (right - left)
        y = bottom - (values[finite] - low) / span * (bottom - top)
        points = list(zip(x.tolist(), y.tolist()))
        if len(points) > 1:
            draw.line(points, fill=(31, 119, 180), width=2)
        else:
            draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=(31, 119, 180))
        draw.text((4, top - 6), f"{high:.4g}", fill=(0, 0, 0), font=font)
        draw.text((4, bottom - 10), f"{low:.4g}", fill=(0, 0, 0), font=font)
        last = values[finite][-1]
        draw.text((left + 8, bottom + 8), f"first {values[finite][0]:.4g}   last {last:.4g}   min {low:.4g}",
                  fill=(0, 0, 0), font=font)
    else:
        draw.text((left + 8, (top + bottom) // 2), "no finite loss values", fill=(0, 0, 0), font=font)
    return np.asarray(image)


def save_png(picture: np.ndarray, path: str | Path) -> Path:
    """Write an [H, W, 3] uint8 picture as PNG (atomically).

    zlib's default level, not PIL's ``optimize``: that searched for files 3-4% smaller at 6x the
    time (0.8 s for a 1152x768 before/after picture on 2 cores, a tenth of a short run).
    """
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(picture, np.uint8)).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())


def save_gif(frames: Sequence[np.ndarray], path: str | Path, fps: float = 15.0) -> Path:
    """Write frames [H, W, 3] uint8 as a looping GIF (atomically).

    Every frame gets its own 256-colour palette; the animation loops forever.
    """
    images = [Image.fromarray(np.asarray(frame, np.uint8)) for frame in frames]
    if not images:
        raise ValueError("save_gif needs at least one frame")
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=round(1000.0 / fps),
        loop=0,
        disposal=1,
        optimize=False,
    )
    return write_bytes_atomic(path, buffer.getvalue())


def video_encoder_available() -> bool:
    """True when MP4s can be written (``pip install imageio-ffmpeg``, the ``video`` extra)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def save_mp4(frames: Sequence[np.ndarray], path: str | Path, fps: float = 30.0) -> Path:
    """Write frames [H, W, 3] uint8 as an H.264 MP4 (atomically; sizes rounded up to even).

    Raises:
        ExportError: no encoder installed.
    """
    if not video_encoder_available():
        raise ExportError("MP4 needs an encoder: pip install imageio-ffmpeg (or use the GIF)")
    import imageio.v2 as imageio

    frames = [_even_size(np.asarray(frame, np.uint8)) for frame in frames]
    with (
        atomic_path(path) as tmp,
        imageio.get_writer(
            tmp,
            format="FFMPEG",
            mode="I",
            fps=fps,
            codec="libx264",
            pixelformat="yuv420p",
            macro_block_size=1,
            quality=8,
        ) as writer,
    ):
        for frame in frames:
            writer.append_data(frame)
    return Path(path)


def _even_size(frame: np.ndarray) -> np.ndarray:
    """Pad a frame by edge replication to even height and width (yuv420p needs it)."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    return np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge") if pad_h or pad_w else frame
