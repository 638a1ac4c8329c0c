"""Benchmark: the fixed cost of a short run, against the floor no Python tool on torch can beat.

Alternates, in one run, ``python -c "import torch"`` with the README's offline command cut to 1
iteration (``text2mesh stylize meshes/human.obj "a red object" --clip-model text2mesh-tiny
--preset tiny --iters 1``), ``--rounds`` times each, both with the same thread count, and prints
the medians. Also:

- ``help_seconds``: ``text2mesh --help`` (median of the same rounds);
- ``error_seconds``: a stylize command with a missing mesh file (answered before torch loads);
- ``strokes_gif_vs_run``: writing ``strokes.gif`` over the strokes run's optimization time (the
  README's strokes example: 120 iterations at 256x256 with the tiny CLIP), in this process;
- ``optimizer_floor_seconds``: ``import torch`` and one ``torch.optim.Adam``: in torch 2.14 an
  optimizer's first ``add_param_group`` imports ``torch._dynamo`` (``torch._compile._disable_dynamo``;
  1.1-1.5 s on 2 cores), so no tool that optimizes with torch.optim starts faster;
- ``library_floor_seconds``: that, plus importing the libraries a run stands on (open_clip, which
  brings torchvision and timm, and trimesh). ``short_run_vs_library_floor`` is what the project's
  own code adds (its modules, loading the mesh and the models, one iteration, the files).

Prints ``short_run_vs_torch_import <ratio of medians>`` last (target <= 2).

    python scripts/bench_overhead.py [--rounds 5] [--threads 2] [--skip-strokes]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADAM = "torch.optim.Adam([torch.zeros(1, requires_grad=True)])"
OPTIMIZER_FLOOR = f"import torch; {ADAM}"
LIBRARY_FLOOR = f"import torch, open_clip, trimesh; {ADAM}"
SHORT_RUN = ["stylize", str(ROOT / "meshes" / "human.obj"), "a red object", "--clip-model", "text2mesh-tiny",
             "--preset", "tiny", "--iters", "1", "--quiet"]


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of a command (which must succeed, unless it is meant to fail: see callers)."""
    start = time.perf_counter()
    subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def text2mesh_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "text2mesh", *args]


def strokes_gif_vs_run(threads: int) -> float:
    """Seconds writing strokes.gif over seconds of the strokes run's optimization."""
    import torch

    from text2mesh.config import load_config
    from text2mesh.export.pictures import save_gif
    from text2mesh.imaging import imagine, stroke_frames

    torch.set_num_threads(threads)
    overrides = {"guidance": {"clip_model": "text2mesh-tiny"}, "optim": {"iters": 120, "device": "cpu"},
                 "imagine": {"generator": "strokes", "size": [256, 256]}}
    cfg = load_config(overrides=overrides)
    start = time.perf_counter()
    result = imagine("a green and yellow image", cfg)
    run_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        save_gif(stroke_frames(result.canvas, cfg), Path(tmp) / "strokes.gif", fps=12)
        gif_seconds = time.perf_counter() - start
    print(f"strokes run {run_seconds:.2f} s, strokes.gif {gif_seconds:.2f} s")
    return gif_seconds / run_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-strokes", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads), "CI": "true"}
    # A user's Python caches the package's bytecode after its first run; with this set (as on the
    # project's sandboxes) every round would compile text2mesh's modules again (~0.2 s).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    torch_import, optimizer, library, short_run, help_, error = [], [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.rounds):
            torch_import.append(timed([sys.executable, "-c", "import torch"], env))
            optimizer.append(timed([sys.executable, "-c", OPTIMIZER_FLOOR], env))
            library.append(timed([sys.executable, "-c", LIBRARY_FLOOR], env))
            short_run.append(timed(text2mesh_command(*SHORT_RUN, "-o", str(Path(tmp) / f"run{index}")), env))
            help_.append(timed(text2mesh_command("--help"), env))
            error.append(timed(text2mesh_command("stylize", str(Path(tmp) / "missing.obj"), "a red object"), env))
            print(f"round {index}: import torch {torch_import[-1]:.2f} s, + Adam {optimizer[-1]:.2f} s, + libraries "
                  f"{library[-1]:.2f} s, short run {short_run[-1]:.2f} s, "
                  f"help {help_[-1]:.2f} s, input error {error[-1]:.2f} s", flush=True)
        if not (Path(tmp) / "run0" / "renders" / "turntable.gif").exists():
            sys.exit("the short run wrote no turntable.gif; run it by hand to see why")
    torch_median, run_median = statistics.median(torch_import), statistics.median(short_run)
    print(f"import_torch_seconds {torch_median:.2f}")
    library_median = statistics.median(library)
    print(f"optimizer_floor_seconds {statistics.median(optimizer):.2f}")
    print(f"library_floor_seconds {library_median:.2f}")
    print(f"short_run_seconds {run_median:.2f}")
    print(f"short_run_vs_library_floor {run_median / library_median:.2f}")
    print(f"help_seconds {statistics.median(help_):.2f}")
    print(f"error_seconds {statistics.median(error):.2f}")
    if not args.skip_strokes:
        print(f"strokes_gif_vs_run {strokes_gif_vs_run(args.threads):.3f}")
    print(f"short_run_vs_torch_import {run_median / torch_median:.2f}")


if __name__ == "__main__":
    main()
