"""Seconds per `imagine` iteration for each canvas generator (the 2D mode's speed).

    python scripts/bench_imagine.py                        # tiny CLIP, 224 px working size, CPU
    python scripts/bench_imagine.py --clip-model ViT-B-32 --random-clip --device cuda

Each generator runs a few warm-up iterations, then ``--iters`` timed ones (wall clock, with a
device synchronization); the first call also reports the one-off cost of rasterizing the
flat canvas scene.
"""

from __future__ import annotations

import argparse
import time

import torch

from text2mesh.config import load_config
from text2mesh.imagine import _prepare, _session


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
    for generator in ("field", "pixels", "strokes"):
        overrides = {
            "imagine": {"generator": generator, "size": [args.size, args.size], "render_size": args.size,
                        "n_cutouts": args.cutouts},
            "optim": {"iters": args.warmup + args.iters, "device": args.device},
        }
        cfg = _prepare("a red image", load_config(overrides=overrides), (), (), (), None)
        start = time.perf_counter()
        session = _session(cfg, clip, device, init=None)
        setup = time.perf_counter() - start
        for _ in range(args.warmup):
            session.loop.one_step()
        sync(device)
        start = time.perf_counter()
        for _ in range(args.iters):
            session.loop.one_step()
        sync(device)
        per_step = (time.perf_counter() - start) / args.iters
        print(f"{generator:8s} {per_step * 1000:8.1f} ms/iteration   (setup incl. scene rasterization {setup:.2f} s)")


if __name__ == "__main__":
    main()
