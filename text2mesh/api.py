"""The Python API: ``stylize`` a mesh, ``resume`` a run, ``load_run`` a finished one.

The command line is a thin layer over these functions::

    import text2mesh
    result = text2mesh.stylize("meshes/human.obj", "a red object with white stripes",
                               text2mesh.load_config("draft", overrides={"guidance": {"clip_model": "text2mesh-tiny"}}),
                               output_dir="runs/demo")
    result.colors, result.displacements, result.vertices_input_frame(), result.losses
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from torch import Tensor

from .config import Config, load_config, save_config
from .errors import ConfigError, Interrupted, RunFolderError
from .field import StyleField
from .guidance.objective import Objective
from .mesh import Mesh, PreparedMesh, Transform, prepare_mesh, vertex_normals
from .optimize import Callback, Every, Loop, ProgressBar
from .run import RunFolder, read_losses
from .stylizer import StylizeProblem, style_mesh
from .targets import check_targets, with_prompts

log = logging.getLogger(__name__)

FIELD_SEED_OFFSET = 0
LOOP_SEED_OFFSET = 1_000_003
CPU_ITERS_HINT = 300  # above this many CPU iterations, suggest the draft preset
TURNTABLE_FRAMES = 24  # of a run's turntable.gif
TURNTABLE_SIZE = 256  # its largest side


@dataclass
class StyleResult:
    """A stylized mesh.

    Attributes:
        config: the resolved config of the run.
        prepared: the base mesh (normalized frame) and its transform to the input frame.
        field: the trained style field (eval mode, on the CPU).
        colors: [V, 3] float32 in [0, 1].
        displacements: [V] float32 along the base normals, normalized units.
        vertices: [V, 3] float32 displaced vertices, normalized frame.
        losses: total loss per iteration.
        run_dir: the run folder, or None when nothing was written.
        renders: picture files written in the run folder.
    """

    config: Config
    prepared: PreparedMesh
    field: StyleField
    colors: Tensor
    displacements: Tensor
    vertices: Tensor
    losses: list[float]
    run_dir: Path | None = None
    renders: list[Path] = dataclasses.field(default_factory=list)

    @property
    def faces(self) -> Tensor:
        """[F, 3] int64 faces (unchanged by stylization)."""
        return self.prepared.mesh.faces

    def vertices_input_frame(self) -> Tensor:
        """[V, 3] the displaced mesh in the input file's own coordinate frame."""
        return torch.as_tensor(self.prepared.transform.to_input(self.vertices.double())).float()

    def to_trimesh(self) -> trimesh.Trimesh:
        """The stylized mesh (input frame, vertex colours) as a trimesh object."""
        rgba = np.concatenate([self.colors.numpy(), np.ones((len(self.colors), 1), np.float32)], axis=1)
        return trimesh.Trimesh(
            self.vertices_input_frame().numpy(),
            self.faces.numpy(),
            vertex_colors=(rgba * 255).round().astype(np.uint8),
            process=False,
        )


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; an unavailable device is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use cpu, cuda or mps") from None


def _load_clip(cfg: Config, device: torch.device):
    from .guidance.clip import load_clip

    g = cfg.guidance
    return load_clip(g.clip_model, g.clip_pretrained, g.clip_checkpoint, device=device)


def _renderer(cfg: Config):
    from .render import Renderer

    return Renderer(antialias=cfg.render.antialias)


def build_field(cfg: Config, base_vertices: Tensor) -> StyleField:
    """The run's style field, initialized from ``cfg.optim.seed`` (CPU)."""
    generator = torch.Generator().manual_seed(cfg.optim.seed + FIELD_SEED_OFFSET)
    return StyleField(cfg.field, points=base_vertices.cpu(), generator=generator)


@dataclass
class _Session:
    cfg: Config
    prepared: PreparedMesh
    problem: StylizeProblem
    loop: Loop
    device: torch.device


def _session(cfg: Config, prepared: PreparedMesh, clip, device: torch.device) -> _Session:
    mesh = prepared.mesh.to(device)
    field = build_field(cfg, prepared.mesh.vertices).to(device)
    objective = Objective(clip, check_targets(cfg), averaging=cfg.guidance.averaging, chunk_size=cfg.guidance.clip_batch)
    problem = StylizeProblem(mesh, field, _renderer(cfg), objective, cfg, clip_size=tuple(clip.image_size))
    loop = Loop(problem, cfg.optim, generator=torch.Generator().manual_seed(cfg.optim.seed + LOOP_SEED_OFFSET))
    return _Session(cfg, prepared, problem, loop, device)


def _mesh_state(prepared: PreparedMesh) -> dict[str, Any]:
    m = prepared.mesh
    return {
        "vertices": m.vertices.cpu(),
        "faces": m.faces.cpu(),
        "colors": None if m.colors is None else m.colors.cpu(),
        "transform": prepared.transform.to_dict(),
        "source": prepared.source,
        "report": list(prepared.report),
    }


def _stylize_checkpoint(run: RunFolder) -> dict[str, Any]:
    """The run's checkpoint; RunFolderError when it is not a stylize run's (e.g. an imagine run)."""
    state = run.load_checkpoint()
    if "mesh" not in state:
        raise RunFolderError(f"{run.path} holds no stylized mesh (a picture from imagine?); give a folder written by text2mesh stylize")
    return state


def _prepared_from_state(state: dict[str, Any]) -> PreparedMesh:
    mesh = Mesh(vertices=state["vertices"], faces=state["faces"], colors=state["colors"])
    return PreparedMesh(mesh, Transform.from_dict(state["transform"]), list(state["report"]), state["source"])


def _stem(prepared: PreparedMesh) -> str:
    name = Path(prepared.source).stem if prepared.source else "mesh"
    return name or "mesh"


def _result(session: _Session, run: RunFolder | None, renders: list[Path]) -> StyleResult:
    problem = session.problem
    problem.field.eval()
    with torch.no_grad():
        styled = problem.styled(1.0)
    return StyleResult(
        config=session.cfg,
        prepared=session.prepared,
        field=problem.field.cpu(),
        colors=styled.colors.detach().cpu(),
        displacements=styled.displacement.detach().cpu(),
        vertices=styled.vertices.detach().cpu(),
        losses=list(session.loop.losses),
        run_dir=None if run is None else run.path,
        renders=renders,
    )


class _RunWriter(Callback):
    """Writes checkpoints, loss.csv, progress pictures and exports into the run folder."""

    def __init__(self, session: _Session, run: RunFolder) -> None:
        self.session = session
        self.run = run

    def checkpoint(self, loop: Loop) -> None:
        self.run.save_checkpoint({"loop": loop.state_dict(), "mesh": _mesh_state(self.session.prepared)})
        self.run.write_losses(loop.losses, loop.parts)

    def snapshot(self, loop: Loop) -> None:
        from .export import pictures

        with torch.no_grad():
            styled = self.session.problem.styled(1.0)
        settings = pictures.PictureSettings(size=256, device=str(self.session.device))
        grid = pictures.view_grid(styled.vertices, self.session.problem.mesh.faces, styled.colors,
                                  n_views=4, columns=4, settings=settings)
        pictures.save_png(pictures.caption(grid, f"iteration {loop.step}"),
                          self.run.renders / f"progress_{loop.step:05d}.png")

    def export(self, loop: Loop | None = None) -> list[Path]:
        from .export import export_mesh

        problem = self.session.problem
        with torch.no_grad():
            styled = problem.styled(1.0)
        vertices = self.session.prepared.transform.to_input(styled.vertices.detach().cpu().double()).float()
        written = []
        for fmt in self.session.cfg.output.formats:
            path = self.run.output(f"{_stem(self.session.prepared)}_stylized.{fmt}")
            written += export_mesh(vertices, problem.mesh.faces.cpu(), styled.colors.detach().cpu(), path)
        return written

    def callbacks(self) -> list[Callback]:
        o = self.session.cfg.optim
        return [
            Every(o.snapshot_every, self.snapshot, at_end=False),
            Every(o.checkpoint_every, self.checkpoint, on_interrupt=True),
            self,
        ]

    def on_interrupt(self, loop: Loop) -> None:
        self.export(loop)


def _final_pictures(session: _Session, run: RunFolder, *, progress: bool = False) -> list[Path]:
    """before_after.png, views.png, turntable.gif and loss.png in ``renders/``, drawn with the
    optimization's renderer (antialiased) so that the mesh's topology is not found again."""
    from .export.pictures import PictureSettings
    from .export.runs import write_pictures

    out = session.cfg.output
    problem = session.problem
    with torch.no_grad():
        styled = problem.styled(1.0)
    faces = problem.mesh.faces
    before = (problem.mesh.vertices, faces, problem.base_colors) if out.before_after else None
    return write_pictures(
        run.renders,
        (styled.vertices, faces, styled.colors),
        before,
        session.loop.losses,
        PictureSettings(size=out.final_resolution, device=str(session.device)),
        n_frames=TURNTABLE_FRAMES if out.turntable else 0,
        fps=12,
        n_views=out.n_final_views,
        mp4=False,
        gif_size=min(TURNTABLE_SIZE, out.final_resolution),
        renderer=_picture_renderer(problem.renderer),
        progress=progress,
    )


def _picture_renderer(renderer):
    """An antialiased renderer sharing the optimization's topology (a fresh one for others)."""
    from .render import Renderer

    return renderer.with_options(antialias=True) if isinstance(renderer, Renderer) else Renderer()


def _execute(session: _Session, run: RunFolder | None, *, progress: bool,
             callbacks: Sequence[Callback] = ()) -> StyleResult:
    callbacks = [ProgressBar(disable=not progress), *callbacks]
    writer = None
    if run is not None:
        writer = _RunWriter(session, run)
        callbacks += writer.callbacks()
    try:
        session.loop.run(callbacks)
    except Interrupted as exc:
        where = f"; state saved in {run.path}; continue with: text2mesh stylize --resume {run.path}" if run else ""
        raise Interrupted(f"{exc}{where}") from None
    renders: list[Path] = []
    if run is not None and writer is not None:
        writer.export()
        renders = _final_pictures(session, run, progress=progress)
    return _result(session, run, renders)


def stylize(
    mesh: str | Path | trimesh.Trimesh | Mesh | PreparedMesh,
    prompt: str | None,
    config: Config | None = None,
    output_dir: str | Path | None = None,
    *,
    prompts: tuple[str, ...] | list[str] = (),
    image_prompts: tuple[str, ...] | list[str] = (),
    negatives: tuple[str, ...] | list[str] = (),
    clip=None,
    overwrite: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callback] = (),
) -> StyleResult:
    """Stylize a mesh so its renders match the prompt(s).

    Args:
        mesh: a mesh file, a trimesh, a :class:`Mesh`, or an already prepared mesh.
        prompt: the main text prompt (weight 1); None: the config's prompts.
        config: the run's settings (default: the ``default`` preset).
        output_dir: run folder to write (config, checkpoints, exports, renders); None: write nothing.
        prompts: extra ``"text:weight"`` targets; image_prompts: ``"file[:weight]"``;
        negatives: texts to move away from (weight -1).
        clip: a loaded ClipModel (default: load ``config.guidance``'s model on the run's device).
        overwrite: allow a non-empty ``output_dir``.
        progress: show a progress bar on stderr.
        callbacks: more :class:`~text2mesh.optimize.Callback` hooks on the loop (e.g. a job's progress).
    Returns:
        The :class:`StyleResult`.
    Raises:
        Text2MeshError subclasses for user errors; Interrupted after saving on SIGINT/SIGTERM.
    """
    cfg = with_prompts(config if config is not None else load_config("default"), prompt, prompts, image_prompts, negatives)
    check_targets(cfg)  # cheap checks first: prompts, device, output folder, the mesh, then CLIP
    device = resolve_device(cfg.optim.device)
    if output_dir is not None:
        RunFolder.check_new(output_dir, overwrite=overwrite)
    source = mesh.metadata.get("file_path") if isinstance(mesh, trimesh.Trimesh) else mesh  # see load_trimesh
    if isinstance(source, (str, Path)):
        cfg.mesh_path = str(Path(source).resolve())
    prepared = mesh if isinstance(mesh, PreparedMesh) else prepare_mesh(mesh, cfg.mesh)
    if clip is None:
        clip = _load_clip(cfg, device)
    if device.type == "cpu" and cfg.optim.iters > CPU_ITERS_HINT:
        log.warning("%d iterations on the CPU take a long time; --preset draft is sized for CPUs", cfg.optim.iters)
    run = None
    if output_dir is not None:
        protect = [cfg.mesh_path] if cfg.mesh_path else []
        run = RunFolder.create(output_dir, overwrite=overwrite, protect=protect)
        save_config(cfg, run.config)
    session = _session(cfg, prepared, clip.to(device), device)
    return _execute(session, run, progress=progress, callbacks=callbacks)


def resume(
    run_dir: str | Path,
    *,
    clip=None,
    progress: bool = False,
    iters: int | None = None,
    device: str | None = None,
    callbacks: Sequence[Callback] = (),
) -> StyleResult:
    """Continue an interrupted (or finished) run to its configured iteration count.

    Args:
        run_dir: a folder written by :func:`stylize`.
        clip: a loaded ClipModel (default: the run's configured model).
        iters: a new total iteration count (default: the run's).
        device: run on this device instead of the saved one ("cpu", "cuda", ...).
        callbacks: more loop hooks, as for :func:`stylize`.
    """
    run = RunFolder.open(run_dir)
    cfg = load_config(path=run.config)
    if iters is not None or device is not None:
        cfg.optim.iters = iters if iters is not None else cfg.optim.iters
        cfg.optim.device = device if device is not None else cfg.optim.device
        save_config(cfg, run.config)
    if cfg.mesh_path:
        run.protected = [Path(cfg.mesh_path).resolve()]
    state = _stylize_checkpoint(run)
    device = resolve_device(cfg.optim.device)
    if clip is None:
        clip = _load_clip(cfg, device)
    session = _session(cfg, _prepared_from_state(state["mesh"]), clip.to(device), device)
    session.loop.load_state_dict(state["loop"])
    log.info("resuming %s at iteration %d of %d", run.path, session.loop.step, cfg.optim.iters)
    return _execute(session, run, progress=progress, callbacks=callbacks)


def load_run(run_dir: str | Path) -> StyleResult:
    """Reload a run folder's latest checkpoint on the CPU (no CLIP needed)."""
    run = RunFolder.open(run_dir)
    cfg = load_config(path=run.config)
    state = _stylize_checkpoint(run)
    prepared = _prepared_from_state(state["mesh"])
    field = build_field(cfg, prepared.mesh.vertices)
    field.load_state_dict(state["loop"]["problem"])
    field.eval()

    mesh = prepared.mesh
    base = mesh.colors if (cfg.mesh.use_input_colors and mesh.colors is not None) else None
    with torch.no_grad():
        styled = style_mesh(field, mesh, vertex_normals(mesh.vertices, mesh.faces), base_colors=base)
    losses = list(state["loop"]["losses"])
    if run.losses.is_file():
        losses = read_losses(run.losses) or losses
    renders = sorted(run.renders.glob("*.png")) + sorted(run.renders.glob("*.gif"))
    return StyleResult(cfg, prepared, field, styled.colors, styled.displacement, styled.vertices, losses, run.path, renders)
