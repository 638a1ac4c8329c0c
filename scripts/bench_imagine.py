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

The diffusion generator (``--diffusion``, default the shipped tiny model, at the model's own size)
is timed per sampling step, beside its parts: the UNet's own cost (a forward pass, all an unguided
step needs, and a forward and backward pass, what guidance adds to it) and the guidance's CLIP work
(the cutouts of the predicted picture through CLIP forward and backward); the printed ratio is the
CLIP work over the UNet's forward and backward. Last run (1 thread of a shared 2-core CPU, 16
cutouts, medians of 6): the tiny models (32 px) 43.9 ms a guided step, UNet forward 12.8 ms,
forward+backward 24.4 ms, CLIP guidance 17.3 ms = 0.71x the UNet's forward+backward (a guided step
3.4x an unguided one); with ViT-B-32 (random weights, the real model's cost) the CLIP work is
4.1 s, 166x the tiny UNet's forward+backward and 10.9x that of a random 35.7M-parameter UNet of
google/ddpm-cifar10-32's shape (422 ms; 5.4 s a guided step, 27x an unguided one).
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

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
    parser.add_argument("--diffusion", default="text2mesh-tiny-diffusion", help="model of the diffusion generator")
    parser.add_argument("--diffusion-flags", default=None, help="a guided-diffusion .pt's model flags")
    parser.add_argument("--generators", default="field,pixels,strokes,vqgan,diffusion", help="which to time")
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
    for generator in args.generators.split(","):
        if generator == "diffusion":
            bench_diffusion(args, clip, device)
            continue
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
            clip_work.append(clip_only(partial(seeded_score, session.problem), (args.size, args.size), step, device))
        per_step, clip_step = statistics.median(steps), statistics.median(clip_work)
        print(f"{generator:8s} {per_step * 1000:8.1f} ms/iteration  {per_step / clip_step:5.2f}x the CLIP work "
              f"({clip_step * 1000:.1f} ms)   (setup incl. scene rasterization {setup:.2f} s)")


def seeded_score(problem, picture: torch.Tensor, step: int):
    """``problem``'s CLIP loss of ``picture`` with the cutouts of a generator seeded by ``step``."""
    return problem.score(picture, step, torch.Generator().manual_seed(step))


def clip_only(score, size: tuple[int, int], step: int, device: torch.device) -> float:
    """Seconds of one step's cutouts of a fixed picture through CLIP forward and backward.

    ``score(picture, step) -> (loss, parts)`` for a picture [1, 3, H, W] in [0, 1], ``size`` = (H, W).
    """
    picture = torch.rand(1, 3, *size, device=device, requires_grad=True)
    start = time.perf_counter()
    loss, _ = score(picture, step)
    loss.backward()
    sync(device)
    return time.perf_counter() - start


def unet_only(model, size: tuple[int, int], device: torch.device, *, backward: bool) -> float:
    """Seconds of the UNet on one noisy picture: a forward pass, or a forward and backward pass
    (the gradient with respect to the picture, as guidance takes it)."""
    x = torch.randn(1, 3, *size, device=device, requires_grad=backward)
    t = torch.tensor(500, device=device)
    start = time.perf_counter()
    with torch.set_grad_enabled(backward):
        out = model.unet(x, t).sample
        if backward:
            out.sum().backward()
    sync(device)
    return time.perf_counter() - start


def bench_diffusion(args, clip, device: torch.device) -> None:
    """Per-step time of CLIP-guided sampling, the UNet's own cost and the guidance's CLIP work."""
    from text2mesh.generators.diffusion import sample
    from text2mesh.sampling import _guidance, diffusion_model

    total = args.warmup + args.iters
    overrides = {"imagine": {"generator": "diffusion", "diffusion": args.diffusion, "n_cutouts": args.cutouts,
                             "diffusion_flags": args.diffusion_flags, "steps": total},
                 "optim": {"device": args.device}}
    cfg = _prepare("a red image", load_config(overrides=overrides), (), (), (), None)
    model = diffusion_model(cfg).to(device)
    guidance = _guidance(cfg, clip, total)
    steps = sample(model, guidance, steps=total, generator=torch.Generator().manual_seed(0))
    for _ in range(args.warmup):
        next(steps)
    per_step, forward, both, clip_work = [], [], [], []
    for step in range(args.iters):  # alternated, so all see the same machine load
        start = time.perf_counter()
        next(steps)
        sync(device)
        per_step.append(time.perf_counter() - start)
        forward.append(unet_only(model, model.size, device, backward=False))
        both.append(unet_only(model, model.size, device, backward=True))
        clip_work.append(clip_only(guidance.score, model.size, args.warmup + step, device))
    step_s, forward_s, both_s, clip_s = (statistics.median(v) for v in (per_step, forward, both, clip_work))
    print(f"diffusion {step_s * 1000:7.1f} ms/step ({model.size[0]} px, {args.diffusion}): UNet forward "
          f"{forward_s * 1000:.1f} ms (an unguided step), forward+backward {both_s * 1000:.1f} ms; CLIP guidance "
          f"{clip_s * 1000:.1f} ms = {clip_s / both_s:.2f}x the UNet's forward+backward; guided step = "
          f"{step_s / forward_s:.1f}x an unguided one")


if __name__ == "__main__":
    main()
