"""How good are results? Stylize shipped meshes with the tiny CLIP, score them with the judge.

A fixed set of shipped meshes x prompts (colour, pattern and shape words) is stylized with the
offline tiny CLIP at the `draft` settings (displacement on: the method's own settings), then
scored by the independent judge (`text2mesh-tiny-judge`, never used to optimize) with X-Mesh's
multi-view expert score (`text2mesh score`). The last two lines are the figures to quote before
and after a change to the method:

    judge_score_mean <mean score x100 over the runs>
    iterations_to_score_mean <mean iterations to score; a run that never gets there counts as
                              twice its iterations, as X-Mesh counts 2000 for its 1200>

    python scripts/bench_quality.py            # about 3 minutes on 2 cores
    python scripts/bench_quality.py --keep runs/bench   # keep the run folders to look at
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

import text2mesh
from text2mesh.config import load_config
from text2mesh.guidance.clip import TINY_JUDGE, TINY_MODEL, load_clip
from text2mesh.score import score_targets, table

PROJECT = Path(__file__).resolve().parent.parent
MESHES = ("meshes/sphere.obj", "meshes/vase.obj")
PROMPTS = ("a red object", "blue and white stripes", "a spiky object", "a smooth green object")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=None, help="iterations per run (default: the draft preset's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, default=None, help="write the run folders here (default: a temporary folder)")
    return parser.parse_args(argv)


def run_all(args: argparse.Namespace, root: Path) -> list[Path]:
    clip = load_clip(TINY_MODEL)
    overrides = {
        "guidance": {"clip_model": TINY_MODEL},
        "optim": {"seed": args.seed, "device": "cpu"},
        "output": {"turntable": False, "n_final_views": 0, "before_after": False, "formats": ["ply"]},
    }
    if args.iters is not None:
        overrides["optim"]["iters"] = args.iters
    runs = []
    for mesh in MESHES:
        for prompt in PROMPTS:
            out = root / f"{Path(mesh).stem}-{prompt.replace(' ', '-')}"
            start = time.time()
            text2mesh.stylize(PROJECT / mesh, prompt, load_config("draft", overrides=overrides), out, clip=clip,
                              overwrite=True)
            print(f"stylized {mesh} '{prompt}' in {time.time() - start:.1f}s", flush=True)
            runs.append(out)
    return runs


def main(argv: list[str] | None = None) -> tuple[float, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        runs = run_all(args, root)
        scores = score_targets(runs, [], load_clip(TINY_JUDGE), iterations=True)
        iters = load_config(path=runs[0] / "config.yaml").optim.iters
    print(table(scores), end="")
    its = [s.iterations if s.iterations is not None else 2 * iters for s in scores]
    score_mean = statistics.mean(s.score for s in scores)
    its_mean = statistics.mean(its)
    print(f"judge_score_mean {score_mean:.3f}")
    print(f"iterations_to_score_mean {its_mean:.1f}")
    return score_mean, its_mean


if __name__ == "__main__":
    main()
