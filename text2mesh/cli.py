"""The ``text2mesh`` command line: click commands mapping flags onto config fields."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import click

from . import __version__
from .errors import ConfigError, Interrupted, Text2MeshError
from .generators import GENERATORS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="text2mesh")
def cli() -> None:
    """Text-driven 3D mesh stylization."""


def _stylize_overrides(iters, seed, clip_model, clip_pretrained, clip_checkpoint, device, settings) -> dict:
    """Flag values -> a partial config dict (only the flags that were given)."""
    from .config import dotted_override, merge_dicts, parse_setting

    flags = {
        "optim.iters": iters,
        "optim.seed": seed,
        "guidance.clip_model": clip_model,
        "guidance.clip_pretrained": clip_pretrained,
        "guidance.clip_checkpoint": clip_checkpoint,
        "optim.device": device,
    }
    out: dict = {}
    for item in settings:
        out = merge_dicts(out, dotted_override(*parse_setting(item)))
    for key, value in flags.items():
        if value is not None:
            out = merge_dicts(out, dotted_override(key, value))
    return out


def _preset_mesh(path: str | None) -> str | None:
    """A preset's mesh: relative to the working folder, else to the project folder."""
    from .config import CONFIG_DIR

    if not path or Path(path).exists():
        return path
    in_project = CONFIG_DIR.parent / path
    return str(in_project) if in_project.exists() else path


def _stacked(*options):
    """One decorator applying several click options, in the order given (for shared flag groups)."""

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


_clip_options = _stacked(
    click.option("--clip-model", help="open_clip model name, or text2mesh-tiny (shipped, offline)."),
    click.option("--clip-pretrained", help="open_clip pretrained tag (default openai) or a weights file."),
    click.option("--clip-checkpoint", type=click.Path(dir_okay=False), help="Local CLIP weights file for --clip-model."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where to run (default auto)."),
)

_target_options = _stacked(
    click.option("--prompt", "prompts", multiple=True, metavar="TEXT[:W]",
                 help="Another text target with weight W (default 1; negative pushes away)."),
    click.option("--image-prompt", "image_prompts", multiple=True, metavar="FILE[:W]", help="An image target with weight W."),
    click.option("--negative", "negatives", multiple=True, metavar="TEXT", help="A text to move away from (weight -1)."),
)


# the mesh-preparation flags (MeshConfig fields), shared by commands that prepare a mesh
_mesh_options = _stacked(
    click.option("--up-axis", type=click.Choice(["x", "y", "z", "-x", "-y", "-z"]),
                 help="Axis of the input that points up (default y; Blender exports: z)."),
    click.option("--front-axis", type=click.Choice(["x", "y", "z", "-x", "-y", "-z"]),
                 help="Axis of the input that the object faces, turned to where the presets look (default: +z)."),
    click.option("--max-edge", type=click.FloatRange(min=0), metavar="L",
                 help="Split edges longer than L (unit-sphere units; 0: off). Sets the style's resolution."),
    click.option("--max-faces", type=click.IntRange(min=0), metavar="N",
                 help="Decimate meshes above N faces (0: off)."),
    click.option("--no-clean", "no_clean", is_flag=True, default=None,
                 help="Keep the mesh as loaded (no merging of duplicate vertices, no dropped faces)."),
)


def _mesh_overrides(up_axis, front_axis, max_edge, max_faces, no_clean) -> dict:
    """Mesh flags -> a partial config dict; 0 turns a limit off."""
    out: dict = {}
    if up_axis is not None:
        out["up_axis"] = up_axis
    if front_axis is not None:
        out["front_axis"] = front_axis
    if max_edge is not None:
        out["max_edge"] = max_edge or None
    if max_faces is not None:
        out["max_faces"] = max_faces or None
    if no_clean:
        out["clean"] = False
    return {"mesh": out} if out else {}


@cli.command()
@click.argument("mesh", required=False)
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Run folder (default: runs/<mesh>-<prompt>-<time>).")
@click.option("--iters", type=click.IntRange(min=1), help="Iterations (optim.iters).")
@click.option("--seed", type=int, help="Random seed (optim.seed); same seed + config + device -> same result.")
@click.option("--preset", help="A preset in configs/ (default, draft, tiny, candle, horse, lamp, vase, person, shoe, alien).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A YAML config file (instead of --preset).")
@_clip_options
@_target_options
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. render.resolution=128.")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty output folder.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
@_mesh_options
def stylize(mesh, prompt, output, iters, seed, preset, config_file, clip_model, clip_pretrained, clip_checkpoint,
            device, prompts, image_prompts, negatives, settings, overwrite, resume_dir, quiet,
            up_axis, front_axis, max_edge, max_faces, no_clean) -> None:
    """Stylize MESH so it looks like PROMPT; writes a run folder (mesh files, renders, losses)."""
    from .config import load_config, merge_dicts
    from .mesh.files import check_mesh_path
    from .run import RunFolder, default_run_dir
    from .targets import check_targets, main_prompt, with_prompts

    mesh_flags = _mesh_overrides(up_axis, front_axis, max_edge, max_faces, no_clean)
    if resume_dir is not None:
        if mesh or prompt or prompts or image_prompts or negatives or preset or config_file or settings or mesh_flags:
            raise ConfigError("--resume continues a run with its saved settings; give only --resume DIR (and --iters/--device/--quiet)")
        from . import api

        result = api.resume(resume_dir, progress=not quiet, iters=iters, device=device)
    else:
        # every check that needs no torch comes first: a mistake is answered in about a second
        overrides = merge_dicts(
            _stylize_overrides(iters, seed, clip_model, clip_pretrained, clip_checkpoint, device, settings),
            mesh_flags,
        )
        cfg = load_config(preset=preset or (None if config_file else "default"), path=config_file, overrides=overrides)
        mesh = mesh or _preset_mesh(cfg.mesh_path)
        if not mesh:
            raise ConfigError("give a MESH file, e.g. text2mesh stylize meshes/human.obj \"a red vase\"")
        cfg = with_prompts(cfg, prompt, prompts, image_prompts, negatives)
        check_targets(cfg)
        out_dir = output or default_run_dir(Path(mesh).stem, main_prompt(cfg))
        RunFolder.check_new(out_dir, overwrite=overwrite)
        check_mesh_path(Path(mesh))  # before trimesh is imported
        from .mesh.io import load_trimesh

        base = load_trimesh(mesh)  # read once, here: an unreadable file is answered before torch loads
        from . import api

        result = api.stylize(base, None, cfg, out_dir, overwrite=overwrite, progress=not quiet)
    if not quiet:
        _echo_first_files(result.run_dir)


def _echo_first_files(run_dir: Path) -> None:
    """Print the run folder and the files a user will want to open first."""
    first = [*sorted(run_dir.glob("*_stylized.*")), *(run_dir / "renders" / n for n in ("before_after.png", "turntable.gif"))]
    click.echo(f"wrote {run_dir}; open first:")
    for path in first:
        if path.is_file():
            click.echo(f"  {path}")


@cli.command("export")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["obj", "ply", "glb"]), help="Mesh format (default: from -o's suffix, else glb).")
@click.option("--texture", type=click.IntRange(16, 16384), metavar="N", help="Bake an NxN UV texture from the style field (obj, glb).")
@click.option("--no-displacement", is_flag=True, help="Keep the base shape; export the style's colours only.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Output file (default: in RUN_DIR).")
def export_command(run_dir, fmt, texture, no_displacement, output) -> None:
    """Re-export a finished or interrupted run's mesh, without re-optimizing."""
    from .api import load_run
    from .export.runs import export_name, export_run

    fmt = _export_format(fmt, output)
    result = load_run(run_dir)
    if texture:
        faces = len(result.faces)
        click.echo(f"baking a {texture}x{texture} texture for {faces} faces (UV unwrapping takes ~20 s per 50k faces)", err=True)
    if output is None:
        output = Path(run_dir) / export_name(result.prepared.source, fmt, texture=texture,
                                             displacement=not no_displacement)
    for path in export_run(result, output, fmt=fmt, texture=texture, displacement=not no_displacement):
        click.echo(str(path))


def _export_format(fmt: str | None, output: str | None) -> str:
    """The format from --format and/or -o's suffix; they must agree."""
    suffix = Path(output).suffix.lstrip(".").lower() if output else ""
    if fmt and suffix and suffix != fmt:
        raise ConfigError(f"-o {output} does not end in .{fmt}; change the suffix or --format")
    if not fmt and suffix and suffix not in ("obj", "ply", "glb"):
        raise ConfigError(f"cannot export to .{suffix}; use a .obj, .ply or .glb file name or --format")
    return fmt or suffix or "glb"


@cli.command("render")
@click.argument("target", type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the pictures (default: RUN_DIR/renders, or <mesh>_renders next to the mesh).")
@click.option("--size", type=click.IntRange(16, 4096), default=512, show_default=True, help="Picture width and height.")
@click.option("--frames", type=click.IntRange(1, 720), default=32, show_default=True, help="Turntable frames.")
@click.option("--fps", type=click.FloatRange(1, 60), default=16.0, show_default=True, help="Turntable frames per second.")
@click.option("--views", type=click.IntRange(0, 64), default=8, show_default=True, help="Views in the grid (0: no grid).")
@click.option("--mp4/--no-mp4", default=None, help="Also write turntable.mp4 (default: when imageio-ffmpeg is installed).")
@click.option("--lighting", type=click.Choice(["sh", "unlit"]), default="sh", show_default=True, help="Shaded as CLIP saw it, or flat colours.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", show_default=True, help="Where to render.")
def render_command(target, output, size, frames, fps, views, mp4, lighting, device) -> None:
    """Write pictures of a run folder or a mesh file (no display needed).

    TARGET is a run folder written by `stylize` or any mesh file. Writes turntable.gif
    (and .mp4), views.png, and before_after.png and loss.png for runs.
    """
    from .api import resolve_device
    from .export.pictures import PictureSettings
    from .export.runs import load_shown, write_pictures

    shown = load_shown(target)
    if output is None:
        output = shown.run_dir / "renders" if shown.run_dir else Path(target).parent / f"{shown.name}_renders"
    settings = PictureSettings(size=size, lighting=lighting, device=str(resolve_device(device)))
    labels = ("before", "after") if shown.run_dir else ("shape", "colours")
    written = write_pictures(output, shown.after, shown.before, shown.losses, settings,
                             n_frames=frames, fps=fps, n_views=views, mp4=mp4, labels=labels, progress=True)
    for path in written:
        click.echo(str(path))


@cli.command("view")
@click.argument("target", type=click.Path(exists=True))
@click.option("--before-after", is_flag=True, help="Show the base mesh (left) beside the stylized one (right).")
def view_command(target, before_after) -> None:
    """Open an interactive window (orbit: drag, zoom: scroll) on a run folder or a mesh file."""
    from .export.runs import load_shown
    from .viewer import show

    shown = load_shown(target)
    if before_after and shown.before is None:
        raise ConfigError(f"{target} has no 'before' mesh to compare with; drop --before-after")
    show([shown.before, shown.after] if before_after else [shown.after], title=f"text2mesh: {shown.name}")


@cli.command("imagine")
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Run folder (default: runs/imagine-<prompt>-<time>).")
@click.option("--iters", type=click.IntRange(min=1), help="Iterations (optim.iters).")
@click.option("--size", type=(int, int), metavar="W H", help="Picture width and height in pixels (default 512 512).")
@click.option("--generator", type=click.Choice(GENERATORS), help="What paints the picture (default field).")
@click.option("--vqgan", metavar="MODEL", help="For --generator vqgan: text2mesh-tiny-vqgan, a taming model.ckpt (+ its .yaml), a diffusers VQModel folder or hub id.")
@click.option("--diffusion", metavar="MODEL", help="For --generator diffusion: text2mesh-tiny-diffusion, a diffusers UNet2DModel folder or hub id, or a guided-diffusion .pt.")
@click.option("--diffusion-flags", metavar="FLAGS", help="A guided-diffusion .pt's model flags, e.g. \"--image_size 256 --num_channels 256 ...\" (published ones are known).")
@click.option("--steps", type=click.IntRange(min=1), help="Diffusion: DDIM steps (default 50).")
@click.option("--guidance-scale", type=click.FloatRange(min=0), metavar="X", help="Diffusion: strength of the CLIP guidance (0: unguided).")
@click.option("--skip-steps", type=click.IntRange(min=0), metavar="K", help="Diffusion: start K steps in, from the --init-image noised to that step.")
@click.option("--seed", type=int, help="Random seed (optim.seed); with --variations N, seeds SEED..SEED+N-1.")
@click.option("--preset", help="A preset in configs/.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A YAML config file (instead of --preset).")
@_clip_options
@_target_options
@click.option("--init-image", type=click.Path(dir_okay=False), help="Start from this picture.")
@click.option("--prompt-schedule", metavar="A^B^C", help="Story mode: the main prompt becomes A, then B, then C, ... (see --change-every).")
@click.option("--change-every", type=click.IntRange(min=1), metavar="N", help="Iterations per prompt of --prompt-schedule (default 50).")
@click.option("--variations", type=click.IntRange(min=1), default=1, show_default=True, help="N runs with consecutive seeds and a contact sheet.")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. imagine.n_strokes=128.")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty output folder.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def imagine_command(prompt, output, iters, size, generator, vqgan, diffusion, diffusion_flags, steps, guidance_scale,
                    skip_steps, seed, preset, config_file, clip_model, clip_pretrained, clip_checkpoint, device, prompts,
                    image_prompts, negatives, init_image, prompt_schedule, change_every, variations, settings,
                    overwrite, resume_dir, quiet) -> None:
    """Paint a picture that looks like PROMPT (the 2D mode); writes image.png and progress.gif."""
    from .config import dotted_override, load_config, merge_dicts
    from .generators import check_generator
    from .run import RunFolder, default_run_dir
    from .targets import check_targets, with_prompts

    flags = {"imagine.size": list(size) if size else None, "imagine.generator": generator, "imagine.vqgan": vqgan,
             "imagine.diffusion": diffusion, "imagine.diffusion_flags": diffusion_flags, "imagine.steps": steps,
             "imagine.guidance_scale": guidance_scale, "imagine.skip_steps": skip_steps,
             "imagine.change_every": change_every}
    if resume_dir is not None:
        given = [k for k, v in flags.items() if v is not None and k != "imagine.size"]
        if (prompt or prompts or image_prompts or negatives or preset or config_file or settings or init_image
                or prompt_schedule or given):
            raise ConfigError("--resume continues a run with its saved settings; give only --resume DIR (and --quiet)")
        from . import imaging as im

        results = [im.imagine(None, output_dir=resume_dir, resume=True, progress=not quiet)]
    else:
        overrides = _stylize_overrides(iters, seed, clip_model, clip_pretrained, clip_checkpoint, device, settings)
        if prompt_schedule is not None:
            flags["imagine.prompt_schedule"] = prompt_schedule.split("^")
            prompt = prompt or flags["imagine.prompt_schedule"][0].strip() or None
        for key, value in flags.items():
            if value is not None:
                overrides = merge_dicts(overrides, dotted_override(key, value))
        cfg = load_config(preset=preset, path=config_file, overrides=overrides)
        if prompt is None and not (cfg.prompts or prompts or image_prompts):
            raise ConfigError("give a PROMPT, e.g. text2mesh imagine \"a watercolor of a lighthouse\"")
        check_targets(with_prompts(cfg, prompt, prompts, image_prompts, negatives))  # before torch loads
        check_generator(cfg)
        name = prompt or (prompts[0] if prompts else "image")
        out_dir = output or default_run_dir("imagine", name)
        if variations == 1:
            RunFolder.check_new(out_dir, overwrite=overwrite)
        from . import imaging as im

        kwargs = {
            "prompts": prompts,
            "image_prompts": image_prompts,
            "negatives": negatives,
            "init_image": init_image,
            "overwrite": overwrite,
            "progress": not quiet,
        }
        if variations > 1:
            results = im.imagine_variations(prompt, variations, cfg, out_dir, **kwargs)
        else:
            results = [im.imagine(prompt, cfg, out_dir, **kwargs)]
    if not quiet:
        for result in results:
            click.echo(f"wrote {result.run_dir}: {', '.join(p.name for p in result.files)}")
        if len(results) > 1:
            click.echo(f"contact sheet: {Path(results[0].run_dir).parent / im.CONTACT_SHEET}")


@cli.command("vary")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--strength", type=click.FloatRange(min=0), default=0.3, show_default=True, help="How far from the parent (0: the parent itself).")
@click.option("-n", "n", type=click.IntRange(min=1), default=4, show_default=True, help="Number of variations.")
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the variations (default: RUN_DIR/variations).")
@click.option("--iters", type=click.IntRange(min=0), help="Iterations after the perturbation (default: strength x a quarter of the parent's; a diffusion run: its last steps sampled again, default strength x its steps).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the perturbations.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where to run (default: the parent's).")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty output folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def vary_command(run_dir, strength, n, output, iters, seed, device, overwrite, quiet) -> None:
    """Explore the neighbours of an `imagine` run: perturb its parameters, continue, compare."""
    from . import imaging as im

    results = im.vary(run_dir, strength, n, output, iters=iters, seed=seed, device=device, overwrite=overwrite,
                      progress=not quiet)
    if not quiet:
        click.echo(f"wrote {len(results)} variations and {Path(results[0].run_dir).parent / im.CONTACT_SHEET}")


@cli.command("batch")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False),
              help="Folder of the jobs: a run folder each, jobs.jsonl and index.html.")
@click.option("--workers", type=click.IntRange(min=1), help="Local CPU worker processes (default 1; with CUDA: one per GPU).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run the jobs as Ray tasks: --ray starts Ray here, --ray auto joins a running cluster.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True, help="Attempts after a job fails.")
@click.option("--quiet", is_flag=True, help="No progress bar or job lines.")
def batch_command(manifest, output, workers, ray_address, retries, quiet) -> None:
    """Run every job of MANIFEST (YAML or CSV); the same command again continues what is left."""
    from .jobs import batch, load_manifest

    load_manifest(manifest)  # a bad manifest is refused before any worker starts
    executor = "local" if ray_address is None else "ray"
    records = batch(manifest, output, executor=executor, workers=workers, ray_address=ray_address or None,
                    retries=retries, progress=not quiet)
    failed = [r for r in records if r.status == "failed"]
    if not quiet:
        click.echo(f"{len(records) - len(failed)} of {len(records)} jobs done; gallery: {Path(output) / 'index.html'}")
    if failed:
        raise Text2MeshError(f"{len(failed)} jobs failed (first: {failed[0].id}: {failed[0].error}); see {Path(output) / 'jobs.jsonl'}")


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (another than localhost needs --token).")
@click.option("--port", type=click.IntRange(0, 65535), default=7860, show_default=True, help="Port.")
@click.option("--jobs", "jobs_dir", type=click.Path(file_okay=False), default="serve-jobs", show_default=True,
              help="Job folder (a run folder per job, jobs.jsonl); a restarted server continues it.")
@click.option("--workers", type=click.IntRange(min=1), help="Local worker processes (default 1; with CUDA: one per GPU).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run jobs as Ray tasks (--ray: a local Ray, --ray auto: a running cluster).")
@click.option("--preset", help="Preset of jobs that do not name one (e.g. tiny for an offline demo).")
@click.option("--clip-model", help="CLIP of every job (e.g. text2mesh-tiny offline).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Config field for every job, e.g. optim.iters=60.")
@click.option("--token", envvar="TEXT2MESH_TOKEN", help="Secret every request must carry (required off localhost).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), default=200, show_default=True, help="Largest mesh upload.")
def serve_command(host, port, jobs_dir, workers, ray_address, preset, clip_model, settings, token, max_upload_mb) -> None:
    """A web page and HTTP API: submit jobs, follow them, look at and download results."""
    if host not in LOCAL_HOSTS and not token:
        raise ConfigError(f"--host {host} opens the server to other machines; give --token SECRET (or TEXT2MESH_TOKEN)")
    try:
        import uvicorn

        from .serve.app import ServeSettings, create_app, serve_defaults
    except ImportError as exc:
        raise ConfigError(f'text2mesh serve needs FastAPI and uvicorn ({exc.name} is missing): pip install -e ".[serve]"') from None
    from .jobs.service import JobService
    from .jobs.spec import JobSpec

    defaults = ServeSettings(preset=preset, clip_model=clip_model, set=serve_defaults(settings),
                             token=token, max_upload_mb=max_upload_mb)
    JobSpec(name="check", prompt="check", preset=preset, clip_model=clip_model, set=tuple(defaults.set.items())).config()
    service = JobService(jobs_dir, executor="local" if ray_address is None else "ray", workers=workers,
                         ray_address=ray_address or None).start()
    where = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    click.echo(f"text2mesh serve: {where} (API docs: {where}docs; jobs in {jobs_dir}); Ctrl-C stops")
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)  # uvicorn re-raises it after shutting down
    try:
        uvicorn.Server(uvicorn.Config(create_app(service, defaults), host=host, port=port, log_level="warning")).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        click.echo("text2mesh serve: stopping; running jobs checkpoint and continue at the next start", err=True)
        service.stop()


@cli.command("fetch-weights")
@click.option("--clip-model", default="ViT-B-32", show_default=True, help="open_clip model name.")
@click.option("--clip-pretrained", default="openai", show_default=True, help="open_clip pretrained tag.")
def fetch_weights_command(clip_model, clip_pretrained) -> None:
    """Download CLIP weights into this machine's open_clip cache (once per machine or cluster node)."""
    from .guidance.clip import load_clip

    clip = load_clip(clip_model, clip_pretrained)
    click.echo(f"{clip_model}: ready ({clip.source})")


@cli.command("score")
@click.argument("args", nargs=-1, required=True, metavar="RUN_DIR|MESH... [PROMPT...]")
@click.option("--clip-model", help="open_clip model that judges (default ViT-B-32), or text2mesh-tiny-judge (offline).")
@click.option("--clip-pretrained", help="open_clip pretrained tag (default laion400m_e31) or a weights file.")
@click.option("--clip-checkpoint", type=click.Path(dir_okay=False), help="Local CLIP weights file for --clip-model.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), default="auto", help="Where to run.")
@click.option("--iterations", is_flag=True, help="Also report each run's iterations to score (from its loss.csv).")
@click.option("--threshold", type=float, help="Similarity for --iterations (default 0.22; 0.4 for tiny-CLIP runs).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Also write the table as CSV.")
def score_command(args, clip_model, clip_pretrained, clip_checkpoint, device, iterations, threshold, csv_path) -> None:
    """Score run folders or meshes: 100 x mean CLIP similarity of 24 views to the prompt (X-Mesh's MES).

    Leading arguments that exist are run folders or mesh files; the rest are prompts (default:
    each run's own). Writes score.json into each run folder and prints one table.
    """
    from .score import DEFAULT_CLIP, check_targets, score_targets, table

    targets = [args[0]]
    for arg in args[1:]:
        if not Path(arg).exists():
            break
        targets.append(arg)
    prompts = list(args[len(targets):])
    check_targets(targets, prompts)  # before the CLIP loads (seconds, or a download)
    from .api import resolve_device
    from .guidance.clip import load_clip

    name = clip_model or DEFAULT_CLIP[0]
    pretrained = clip_pretrained or (DEFAULT_CLIP[1] if clip_model is None else "openai")
    clip = load_clip(name, pretrained, clip_checkpoint, device=resolve_device(device))
    scores = score_targets(targets, prompts, clip, iterations=iterations, threshold=threshold)
    click.echo(table(scores), nl=False)
    if csv_path:
        from .export.files import write_bytes_atomic

        write_bytes_atomic(csv_path, table(scores, "csv").encode())


def _exit(code: int, argv: list[str] | None) -> None:
    """Leave with ``code``; from the console (``argv`` None), without the interpreter's last sweep.

    At exit CPython collects every object still alive; after torch, open_clip and their imports
    (torch._dynamo, sympy) that is over a second of a short run's wall time spent freeing memory
    the OS takes back anyway. Freezing them (``gc.freeze``) leaves them out of that sweep; atexit
    handlers and buffered files still run and flush. In-process callers (tests) keep a normal GC.
    """
    if argv is None:
        import gc

        gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` lets tests call it in-process."""
    logging.basicConfig(level=logging.WARNING, format="text2mesh: %(levelname)s: %(message)s")
    try:
        # not standalone: click would answer an interrupt with its own "Aborted!"
        cli.main(args=argv, prog_name="text2mesh", standalone_mode=False)
    except click.exceptions.Exit as exc:
        _exit(exc.exit_code, argv)
    except click.ClickException as exc:
        exc.show()
        _exit(exc.exit_code, argv)
    except (click.Abort, KeyboardInterrupt):
        click.echo("text2mesh: stopped: interrupted by SIGINT", err=True)
        _exit(130, argv)
    except Text2MeshError as exc:
        click.echo(f"text2mesh: {'stopped' if isinstance(exc, Interrupted) else 'error'}: {exc}", err=True)
        _exit(130 if isinstance(exc, Interrupted) else 1, argv)
    _exit(0, argv)  # as click's standalone mode does
