"""Files from a finished (or interrupted) run or from any mesh file: mesh exports and pictures.

The glue between :class:`text2mesh.api.StyleResult` and the format-level functions in
:mod:`.meshes` and :mod:`.pictures`, shared by the ``export`` and ``render`` commands.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..render import Renderer
from . import pictures
from .meshes import export_mesh
from .pictures import PictureSettings
from .texture import SurfaceColorFn, field_color_fn, vertex_color_fn

MeshArrays = tuple  # (vertices [V, 3], faces [F, 3], colors [V, 3] or None)


def style_color_fn(result) -> SurfaceColorFn:
    """The run's colours at any surface point: its style field evaluated on the base surface.

    Matches the run's vertex colours at the vertices (the field is what produced them),
    including runs that started from the input's colours (base colour + field - grey).

    Args:
        result: a StyleResult.
    """
    from ..stylizer import GREY

    mesh = result.prepared.mesh
    faces = mesh.faces.cpu().numpy()
    field_fn = field_color_fn(result.field, mesh.vertices.cpu(), faces)
    if not (result.config.mesh.use_input_colors and mesh.colors is not None):
        return field_fn
    base_fn = vertex_color_fn(mesh.colors.cpu().numpy(), faces)

    def color(face_index: np.ndarray, bary: np.ndarray) -> np.ndarray:
        return np.clip(base_fn(face_index, bary) + field_fn(face_index, bary) - GREY, 0.0, 1.0)

    return color


def export_name(source: str | Path, fmt: str, *, texture: int = 0, displacement: bool = True) -> str:
    """The file name ``text2mesh export`` gives a run's mesh by default:
    ``<mesh>_stylized[_base_shape][_texture<N>].<fmt>`` (``source``: the input mesh's path)."""
    suffix = ("" if displacement else "_base_shape") + (f"_texture{texture}" if texture else "")
    return f"{Path(source).stem or 'mesh'}_stylized{suffix}.{fmt}"


def export_run(
    result,
    path: str | Path,
    fmt: str | None = None,
    texture: int | None = None,
    displacement: bool = True,
) -> list[Path]:
    """Write a run's stylized mesh in the input file's frame.

    Args:
        result: a StyleResult (see :func:`text2mesh.api.load_run`).
        path: output file (suffix picks the format unless ``fmt`` is given).
        texture: bake a ``texture``² texture from the style field (obj/glb).
        displacement: False writes the base shape with the style's colours only.
    Returns:
        The files written.
    """
    if displacement:
        vertices = result.vertices_input_frame()
    else:
        vertices = torch.as_tensor(result.prepared.transform.to_input(result.prepared.mesh.vertices.double())).float()
    color_fn = style_color_fn(result) if texture is not None else None
    return export_mesh(vertices, result.faces, result.colors, path, fmt=fmt, texture=texture, color_fn=color_fn)


def run_meshes(result) -> tuple[MeshArrays, MeshArrays]:
    """(before, after) meshes of a run in the normalized frame, for :func:`write_pictures`."""
    mesh = result.prepared.mesh
    base_colors = mesh.colors if result.config.mesh.use_input_colors else None
    return (mesh.vertices, mesh.faces, base_colors), (result.vertices, mesh.faces, result.colors)


def write_pictures(
    out_dir: str | Path,
    after: MeshArrays,
    before: MeshArrays | None = None,
    losses: Sequence[float] = (),
    settings: PictureSettings | None = None,
    n_frames: int = 32,
    fps: float = 16.0,
    n_views: int = 8,
    mp4: bool | None = None,
    labels: tuple[str, str] = ("before", "after"),
    gif_size: int | None = None,
    renderer: Renderer | None = None,
    progress: bool = False,
) -> list[Path]:
    """The standard pictures of a mesh, written into ``out_dir`` (the one place that writes them,
    for runs and for ``render``).

    Writes ``before_after.png`` when ``before`` is given, ``turntable.gif`` of ``n_frames``
    frames (none when 0; + ``turntable.mp4`` when ``mp4`` is True, or None and an encoder is
    installed), ``views.png`` (``n_views`` views, 4 per row; none when 0), and ``loss.png``
    when there are losses. One renderer draws them all, so the mesh's topology is found once.

    Args:
        after: the mesh to show (normalized frame). before: the mesh before stylization.
        settings: framing, drawing and the size of the pictures; ``gif_size`` the turntable's
            (default: the same).
        renderer: e.g. the optimization's, sharing its topology (see ``Renderer.with_options``).
        progress: a bar on stderr over the pictures (a large mesh's turntable takes a while).
    Returns:
        The files written, most useful first.
    """
    out_dir = Path(out_dir)
    settings = settings or PictureSettings()
    renderer = renderer or Renderer()
    small = settings if gif_size in (None, settings.size) else dataclasses.replace(settings, size=gif_size)
    written = []
    steps = (before is not None) + (n_frames > 0) + (n_views > 0) + (len(losses) > 0)
    bar = tqdm(total=steps, desc="pictures", unit="file", disable=not progress, leave=False, dynamic_ncols=True)
    if before is not None:
        picture = pictures.before_after(before, after, n_views=2, settings=settings, labels=labels, renderer=renderer)
        written.append(pictures.save_png(picture, out_dir / "before_after.png"))
        bar.update(1)
    frames = pictures.turntable(*after, n_frames=n_frames, settings=small, renderer=renderer) if n_frames > 0 else []
    if frames:
        written.append(pictures.save_gif(frames, out_dir / "turntable.gif", fps=fps))
        bar.update(1)
    if frames and (mp4 or (mp4 is None and pictures.video_encoder_available())):
        written.append(pictures.save_mp4(frames, out_dir / "turntable.mp4", fps=fps))
    if n_views > 0:
        # the turntable's frames are views too: reuse them when they are the same angles and size
        if frames and small is settings and n_frames % n_views == 0:
            grid = pictures.tile(frames[:: n_frames // n_views], min(4, n_views), settings)
        else:
            grid = pictures.view_grid(*after, n_views=n_views, columns=min(4, n_views), settings=settings,
                                      renderer=renderer)
        written.append(pictures.save_png(grid, out_dir / "views.png"))
        bar.update(1)
    if len(losses) > 0:
        written.append(pictures.save_png(pictures.loss_plot(losses), out_dir / "loss.png"))
        bar.update(1)
    bar.close()
    return written


def mesh_file_meshes(path: str | Path) -> tuple[MeshArrays, MeshArrays | None]:
    """(shown, before) for any mesh file: normalized like a run's input, nothing remeshed.

    A file with vertex colours is shown coloured, with its plain grey shape as "before";
    a file without colours is shown grey and has no "before".
    """
    from ..config import MeshConfig
    from ..mesh import prepare_mesh

    prepared = prepare_mesh(path, MeshConfig(max_edge=None, max_faces=None))
    mesh = prepared.mesh
    shown = (mesh.vertices, mesh.faces, mesh.colors)
    before = (mesh.vertices, mesh.faces, None) if mesh.colors is not None else None
    return shown, before


@dataclass(frozen=True)
class Shown:
    """What ``render`` and ``view`` show for a run folder or a mesh file.

    Attributes:
        after: the mesh to show (normalized frame); before: the base mesh, or None.
        losses: the run's loss per iteration (empty for a mesh file).
        name: a short name (the input mesh's stem).
        run_dir: the run folder, or None for a mesh file.
    """

    after: MeshArrays
    before: MeshArrays | None
    losses: list[float]
    name: str
    run_dir: Path | None


def load_shown(target: str | Path) -> Shown:
    """A run folder (via :func:`text2mesh.api.load_run`) or any mesh file, ready to show.

    Raises:
        RunFolderError: ``target`` is a folder but not a run folder.
        MeshError: ``target`` is not a readable mesh file.
    """
    target = Path(target)
    if target.is_dir():
        from ..api import load_run

        result = load_run(target)
        before, after = run_meshes(result)
        name = Path(result.prepared.source).stem or "mesh"
        return Shown(after, before, list(result.losses), name, result.run_dir)
    after, before = mesh_file_meshes(target)
    return Shown(after, before, [], target.stem, None)
