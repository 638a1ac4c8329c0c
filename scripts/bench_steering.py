"""Does the geometry path do what a shape word asks? Shape prompts on shipped meshes, measured.

Each shipped mesh is stylized with the offline tiny CLIP at the `draft` settings with
displacement ON (the method's own settings), once per shape prompt, and the displacement that
came out is measured with :mod:`text2mesh.mesh.statistics`:

    roughness        mean |uniform Laplacian of d|: spikes and sharp grooves raise it
    direction_share  share of d's gradient along its main direction (1/3: no direction)
    bumps            isolated compact bumps among the highest detail
    skewness         which way the detail points: > 0 studs standing out, < 0 pits
    size             bounding-box diagonal of the stylized mesh / the base mesh's (normalized frame)

and for the stripe prompt the colour's stripe score (share of colour variance explained by one
axis, and the bands along it). Last lines, the figures to quote:

    spiky_vs_smooth_roughness <ratio, mean over meshes>
    ridged_direction_share <mean>   bumpy_bumps <mean>   spiky_skewness <mean>   stripes_score <mean>

    python scripts/bench_steering.py                  # about 3 minutes on 2 cores
    python scripts/bench_steering.py --keep runs/steer  # keep run folders to look at (grey renders)
    python scripts/bench_steering.py --candidate scripts/tiny-resnet.json /tmp/rn.pt   # a candidate shape model
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import text2mesh
from text2mesh.config import load_config
from text2mesh.guidance.clip import TINY_MODEL, load_clip
from text2mesh.mesh.statistics import (
    bump_count,
    detail_skewness,
    direction_share,
    roughness,
    stripe_score,
)

PROJECT = Path(__file__).resolve().parent.parent
MESHES = ("meshes/sphere.obj", "meshes/vase.obj")
SHAPES = ("smooth", "spiky", "bumpy", "ridged", "wavy")
STRIPES = "blue and white stripes"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="iterations per run (default: the draft preset's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write run folders here (default: none)")
    parser.add_argument("--candidate", type=Path, nargs=2, metavar=("CONFIG", "CHECKPOINT"), default=None,
                        help="measure a candidate tiny CLIP instead of the shipped one: its open_clip config JSON "
                             "and checkpoint (as train_tiny_clip.py --config ... --out ... writes them)")
    return parser.parse_args(argv)


def steering_clip(candidate: tuple[Path, Path] | None):
    """The shipped tiny CLIP ensemble, or the ensemble with a candidate shape model (trained by
    train_tiny_clip.py --model text2mesh-tiny-shape --config ... --out ...) in place of the shipped one."""
    if candidate is None:
        return load_clip(TINY_MODEL)
    from text2mesh.guidance.clip import TINY_SHAPE, import_open_clip, load_ensemble

    config, checkpoint = candidate
    import_open_clip().add_model_config(config)
    return load_ensemble(TINY_MODEL, {TINY_SHAPE: load_clip(config.stem, checkpoint=checkpoint)})


def measure(result: text2mesh.StyleResult) -> dict[str, float]:
    base = result.prepared.mesh
    d = result.displacements
    diagonal = lambda v: float((v.amax(0) - v.amin(0)).norm())
    return {
        "roughness": roughness(d, base.faces),
        "direction_share": direction_share(d, base.vertices, base.faces),
        "bumps": bump_count(d, base.vertices, base.faces),
        "skewness": detail_skewness(d, base.faces),
        "size": diagonal(result.vertices) / diagonal(base.vertices),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = steering_clip(args.candidate)
    overrides = {"guidance": {"clip_model": TINY_MODEL}, "optim": {"seed": args.seed, "device": "cpu"},
                 "output": {"n_final_views": 4, "before_after": False, "turntable": False, "formats": ["ply"]}}
    if args.iters is not None:
        overrides["optim"]["iters"] = args.iters
    cfg = load_config("draft", overrides=overrides)
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for mesh in MESHES:
        for word in (*SHAPES, STRIPES):
            prompt = STRIPES if word == STRIPES else f"a {word} object"
            out = None if args.keep is None else args.keep / f"{Path(mesh).stem}-{prompt.replace(' ', '-')}"
            start = time.time()
            result = text2mesh.stylize(PROJECT / mesh, prompt, cfg, out, clip=clip, overwrite=True)
            row = measure(result)
            if word == STRIPES:
                row["stripes"], row["bands"] = stripe_score(result.colors, result.prepared.mesh.vertices)
            rows[(mesh, word)] = row
            print(f"{Path(mesh).stem:7s} {prompt:24s} " + "  ".join(f"{k} {v:.4g}" for k, v in row.items())
                  + f"  ({time.time() - start:.0f} s)", flush=True)
    mean = lambda word, key: statistics.mean(rows[(m, word)][key] for m in MESHES)
    figures = {
        "spiky_vs_smooth_roughness": statistics.mean(
            rows[(m, "spiky")]["roughness"] / max(rows[(m, "smooth")]["roughness"], 1e-9) for m in MESHES),
        "ridged_direction_share": mean("ridged", "direction_share"),
        "bumpy_bumps": mean("bumpy", "bumps"),
        "smooth_bumps": mean("smooth", "bumps"),
        "spiky_skewness": mean("spiky", "skewness"),
        "size_min": min(r["size"] for r in rows.values()),
        "size_max": max(r["size"] for r in rows.values()),
        "stripes_score": mean(STRIPES, "stripes"),
    }
    for key, value in figures.items():
        print(f"{key} {value:.4g}")
    return figures


if __name__ == "__main__":
    main()
