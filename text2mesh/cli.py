"""The ``text2mesh`` command line: click commands mapping flags onto config fields."""

from __future__ import annotations

import click

import logging
import sys
from pathlib import Path

import yaml

from . import __version__
from .errors import ConfigError, Interrupted, Text2MeshError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="text2mesh")
def cli() -> None:
    """Text-driven 3D mesh stylization."""


def _stylize_overrides(iters, seed, clip_model, clip_pretrained, clip_checkpoint, device, settings) -> dict:
    """Flag values -> a partial config dict (only the flags that were given)."""
    from .config import dotted_override, merge_dicts

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
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE (e.g. render.resolution=128), got {item!r}")
        out = merge_dicts(out, dotted_override(key.strip(), yaml.safe_load(value)))
    for key, value in flags.items():
        if value is not None:
            out = merge_dicts(out, dotted_override(key, value))
    return out


@cli.command()
@click.argument("mesh", required=False)
@click.argument("prompt", required=False)
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Run folder (default: runs/<mesh>-<prompt>-<time>).")
@click.option("--iters", type=click.IntRange(min=1), help="Iterations (optim.iters).")
@click.option("--seed", type=int, help="Random seed (optim.seed); same seed + config + device -> same result.")
@click.option("--preset", help="A preset in configs/ (default, draft, candle, horse, lamp, vase, person, shoe, alien).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="A YAML config file (instead of --preset).")
@click.option("--clip-model", help="open_clip model name, or text2mesh-tiny (shipped, offline).")
@click.option("--clip-pretrained", help="open_clip pretrained tag (default openai) or a weights file.")
@click.option("--clip-checkpoint", type=click.Path(dir_okay=False), help="Local CLIP weights file for --clip-model.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda", "mps"]), help="Where to run (default auto).")
@click.option("--prompt", "prompts", multiple=True, metavar="TEXT[:W]", help="Another text target with weight W (default 1).")
@click.option("--image-prompt", "image_prompts", multiple=True, metavar="FILE[:W]", help="An image target with weight W.")
@click.option("--negative", "negatives", multiple=True, metavar="TEXT", help="A text to move away from (weight -1).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE", help="Override any config field, e.g. render.resolution=128.")
@click.option("--overwrite", is_flag=True, help="Reuse a non-empty output folder.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), help="Continue the run in this folder.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary.")
def stylize(mesh, prompt, output, iters, seed, preset, config_file, clip_model, clip_pretrained, clip_checkpoint,
            device, prompts, image_prompts, negatives, settings, overwrite, resume_dir, quiet) -> None:
    """Stylize MESH so it looks like PROMPT; writes a run folder (mesh files, renders, losses)."""
    from . import api
    from .config import load_config
    from .run import default_run_dir

    if resume_dir is not None:
        if mesh or prompt or prompts or image_prompts or negatives or preset or config_file or settings:
            raise ConfigError("--resume continues a run with its saved settings; give only --resume DIR (and --iters/--device/--quiet)")
        result = api.resume(resume_dir, progress=not quiet, iters=iters, device=device)
    else:
        overrides = _stylize_overrides(iters, seed, clip_model, clip_pretrained, clip_checkpoint, device, settings)
        cfg = load_config(preset=preset or (None if config_file else "default"), path=config_file, overrides=overrides)
        mesh = mesh or cfg.mesh_path
        if not mesh:
            raise ConfigError("give a MESH file, e.g. text2mesh stylize meshes/human.obj \"a red vase\"")
        cfg = api.with_prompts(cfg, prompt, prompts, image_prompts, negatives)
        api.check_targets(cfg)
        out_dir = output or default_run_dir(Path(mesh).stem, api.main_prompt(cfg))
        result = api.stylize(mesh, None, cfg, out_dir, overwrite=overwrite, progress=not quiet)
    if not quiet:
        files = sorted(p.name for p in result.run_dir.iterdir() if p.is_file())
        click.echo(f"wrote {result.run_dir}: {', '.join(files)}, renders/")


def main(argv: list[str] | None = None) -> None:
    """Console entry point; ``argv`` lets tests call it in-process."""
    logging.basicConfig(level=logging.WARNING, format="text2mesh: %(levelname)s: %(message)s")
    try:
        cli.main(args=argv, prog_name="text2mesh")
    except Text2MeshError as exc:
        click.echo(f"text2mesh: {'stopped' if isinstance(exc, Interrupted) else 'error'}: {exc}", err=True)
        sys.exit(130 if isinstance(exc, Interrupted) else 1)
