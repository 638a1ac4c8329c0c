"""Seconds per `imagine` iteration for each canvas generator (the 2D mode's speed).

    python scripts/bench_imagine.py                        # tiny CLIP, 224 px working size, CPU
    python scripts/bench_imagine.py --clip-model ViT-B-32 --random-clip --device cuda

Each generator runs a few warm-up iterations, then ``--iters`` timed ones (wall clock, with a
device synchronization); the first call also reports the one-off cost of rasterizing the
flat canvas scene. The CLIP work an iteration cannot avoid (its cutouts of a fixed picture
through CLIP forward and backward) is timed alternately with the generators' iterations, and
each generator's time is printed as a ratio to it: what the generator itself adds is the ratio
minus 1. The vqgan generator uses ``--vqgan`` (default: the shipped tiny model).

Last run (2-core CPU, 2 threads, 224 px, 16 cutouts, medians of 3): with ViT-B-32 (random weights,
the real model's cost) field 4.10 s = 1.60x the CLIP work, pixels 1.04x, strokes 1.03x, vqgan
(tiny VQ model) 1.22x; with text2mesh-tiny (48 px, about 20 ms of CLIP work) the generators
dominate: field 85x, pixels 2.5x, strokes 9.5x, vqgan 15x.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from text2mesh.config import load_config
from text2mesh.imaging import _prepare, _session


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip-model", default="text2mesh-tiny")
    parser.add_argument("--random-clip", action="store_true", help="random weights (no download needed)")
    parser.add_argument("--size", type=int, default=224, help="working size (imagine.render_size)")
    parser.add_argument("--cutouts", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--vqgan", default="text2mesh-tiny-vqgan", help="model of the vqgan generator")
    return parser.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from text2mesh.guidance.clip import load_clip, random_clip

    clip = random_clip(args.clip_model) if args.random_clip else load_clip(args.clip_model)
    clip = clip.to(device)
    print(f"CLIP {args.clip_model} ({clip.image_size[0]} px), {args.cutouts} cutouts, "
          f"{args.size} px canvas, device {device}, {torch.get_num_threads()} threads")
    for generator in ("field", "pixels", "strokes", "vqgan"):
        overrides = {
            "imagine": {"generator": generator, "size": [args.size, args.size], "render_size": args.size,
                        "n_cutouts": args.cutouts, "vqgan": args.vqgan},
            "optim": {"iters": args.warmup + args.iters, "device": args.device},
        }
        cfg = _prepare("a red image", load_config(overrides=overrides), (), (), (), None)
        start = time.perf_counter()
        session = _session(cfg, clip, device, init=None)
        setup = time.perf_counter() - start
        for _ in range(args.warmup):
            session.loop.one_step()
        sync(device)
        steps, clip_work = [], []
        for step in range(args.iters):  # alternated, so both see the same machine load
            start = time.perf_counter()
            session.loop.one_step()
            sync(device)
            steps.append(time.perf_counter() - start)
            clip_work.append(clip_only(session.problem, args.size, step, device))
        per_step, clip_step = statistics.median(steps), statistics.median(clip_work)
        print(f"{generator:8s} {per_step * 1000:8.1f} ms/iteration  {per_step / clip_step:5.2f}x the CLIP work "
              f"({clip_step * 1000:.1f} ms)   (setup incl. scene rasterization {setup:.2f} s)")


def clip_only(problem, size: int, step: int, device: torch.device) -> float:
    """Seconds of one iteration's cutouts of a fixed picture through CLIP forward and backward."""
    picture = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    start = time.perf_counter()
    loss, _ = problem.score(picture, step, torch.Generator().manual_seed(step))
    loss.backward()
    sync(device)
    return time.perf_counter() - start

if __name__ == "__main__":
    main()
