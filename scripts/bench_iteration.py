"""Benchmark: one stylize iteration vs the CLIP work it cannot avoid, and the draft job's wall time.

Runs the ``default`` preset's iteration (5 views, 1 full + 4 local + 4 geometry augmentations,
224 px, 256-wide field) on the ~50k-face person mesh (../shared/meshes/person.obj, falling back
to meshes/human.obj) with open_clip ViT-B-32 with random weights (same cost as the real
weights), then times CLIP forward+backward alone on the same number of images of the same
size. Prints ``iteration_vs_clip_bound <ratio>`` last (target <= 1.15).

Also times the ``draft`` preset's whole job (mesh preparation, optimization, exports,
pictures; CLIP loading excluded) on meshes/human.obj, and with --gpu-reference the reference
preset's 1500 iterations on CUDA.

    python scripts/bench_iteration.py [--device cpu] [--repeats 3] [--skip-draft] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from text2mesh import api
from text2mesh.config import load_config
from text2mesh.guidance import random_clip
from text2mesh.mesh import prepare_mesh


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def person_mesh() -> Path:
    shared = ROOT.parent / "shared" / "meshes" / "person.obj"
    return shared if shared.is_file() else ROOT / "meshes" / "human.obj"


class Timer:
    """Wall and process-CPU seconds of a block (CUDA synchronized)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Timer:  # noqa: PYI034
        _sync(self.device)
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        _sync(self.device)
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def iteration_and_bound(cfg, clip, device: torch.device, repeats: int) -> dict[str, float]:
    """Median wall/CPU seconds of one loop step and of CLIP forward+backward on as many images.

    The two measurements alternate (step, CLIP, step, CLIP, ...) after one warm-up of each, so
    both see the same machine load; the ratio is the median of the per-pair ratios.
    """
    prepared = prepare_mesh(person_mesh(), cfg.mesh)
    session = api._session(cfg, prepared, clip, device)
    print(f"mesh: {person_mesh().name}: {prepared.mesh.n_vertices} vertices, {prepared.mesh.n_faces} faces")
    g = cfg.guidance
    n_images = cfg.views.n_views * (g.n_augs + g.n_local_augs + (g.n_local_augs if session.problem.uses_geometry else 0))
    size = tuple(clip.image_size)
    text = clip.encode_text(["a photo"])

    def clip_pass() -> None:
        images = torch.rand(n_images, 3, *size, device=device, requires_grad=True)
        (-(clip.encode_images(images) @ text.T).mean()).backward()

    session.loop.one_step()
    clip_pass()
    rows = []
    for _ in range(repeats):
        with Timer(device) as step:
            session.loop.one_step()
        with Timer(device) as bound:
            clip_pass()
        rows.append((step.wall, step.cpu, bound.wall, bound.cpu))

    def median(values):
        return sorted(values)[len(values) // 2]

    return {
        "n_images": n_images,
        "size": size,
        "step_wall": median([r[0] for r in rows]),
        "step_cpu": median([r[1] for r in rows]),
        "clip_wall": median([r[2] for r in rows]),
        "clip_cpu": median([r[3] for r in rows]),
        "ratio_wall": median([r[0] / r[2] for r in rows]),
        "ratio_cpu": median([r[1] / r[3] for r in rows]),
    }


def time_job(preset: str, mesh: Path, clip, device: str) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, iterations) of a whole stylize job (CLIP already loaded)."""
    cfg = load_config(preset, overrides={"optim": {"device": device}})
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        result = api.stylize(mesh, "a 3D rendering of a ninja in unreal engine", cfg, Path(tmp) / "run", clip=clip)
        return time.perf_counter() - start, time.process_time() - cpu, len(result.losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--skip-draft", action="store_true")
    parser.add_argument("--draft-clip", default="ViT-B-32", help="architecture for the draft job (random weights)")
    parser.add_argument("--gpu-reference", action="store_true", help="also time the default preset's 1500 iterations")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads")

    clip = random_clip("ViT-B-32", seed=0, device=device)
    if not args.skip_draft:
        draft_clip = clip if args.draft_clip == "ViT-B-32" else random_clip(args.draft_clip, seed=0, device=device)
        seconds, cpu, iters = time_job("draft", ROOT / "meshes" / "human.obj", draft_clip, args.device)
        print(f"draft_wall_seconds {seconds:.1f} (process CPU {cpu:.1f} s; {iters} iterations, "
              f"meshes/human.obj, CLIP {args.draft_clip})")
    if args.gpu_reference and device.type == "cuda":
        seconds, _, iters = time_job("default", person_mesh(), clip, args.device)
        print(f"reference_1500_wall_seconds {seconds:.1f} ({iters} iterations)")

    cfg = api.with_prompts(load_config("default", overrides={"optim": {"device": str(device)}}), "a ninja")
    m = iteration_and_bound(cfg, clip, device, args.repeats)
    print(f"iteration_seconds {m['step_wall']:.3f} (process CPU {m['step_cpu']:.2f} s)")
    print(f"clip_forward_backward_seconds {m['clip_wall']:.3f} (process CPU {m['clip_cpu']:.2f} s; "
          f"{m['n_images']} images of {m['size'][0]}x{m['size'][1]})")
    print(f"iteration_vs_clip_bound_cpu_time {m['ratio_cpu']:.3f}")
    print(f"iteration_vs_clip_bound {m['ratio_wall']:.3f}")


if __name__ == "__main__":
    main()
