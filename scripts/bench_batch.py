"""How much Ray costs over local worker processes, and what a second worker buys.

Runs the same N small stylize jobs (a shipped mesh, the tiny CLIP, ``--iters`` iterations each)
with the local executor (1 worker, then 2 where 2 fit), and as Ray tasks on a local Ray, into
fresh job stores, and prints wall times and ratios measured in this one run:

    ray_overhead_vs_local <ray wall / local wall, 1 worker each>   (target <= 1.1 for jobs of a minute)
    scaling_2_workers <wall with 1 worker / wall with 2>           (only with >= 2 CPUs per worker or 2 GPUs)

On a GPU machine it also prints jobs_per_hour_per_gpu. Ray starts its workers at nice 15; on a
machine busy with other work they get little CPU, so run this on an otherwise idle machine (or
set RAY_worker_niceness=0 before starting Ray).

    python scripts/bench_batch.py --jobs 4 --iters 60

Last run (2-core CPU, 4 jobs of 60 iterations on meshes/vase.obj, about 10 s each, alternated
twice): local 39.8 / 37.3 s, Ray 46.0 / 37.5 s (the first includes starting Ray's workers),
ray_overhead_vs_local 1.083.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def manifest(jobs: int, iters: int, mesh: Path) -> dict:
    prompts = ["a red object", "a blue object", "a green object", "a yellow object"]
    return {
        "defaults": {"preset": "tiny", "clip_model": "text2mesh-tiny", "set": {"optim.iters": iters}},
        "jobs": [{"mesh": str(mesh), "prompt": prompts[i % len(prompts)], "seed": i, "name": f"job-{i}"}
                 for i in range(jobs)],
    }


def timed_batch(data: dict, root: Path, name: str, **options) -> float:
    from text2mesh.jobs import batch

    out = root / name
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    records = batch(data, out, **options)
    wall = time.perf_counter() - start
    failed = [r for r in records if r.status != "done"]
    if failed:
        raise SystemExit(f"{name}: {len(failed)} jobs failed, first: {failed[0].error}")
    print(f"{name:>10}: {len(records)} jobs in {wall:7.1f} s", flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--iters", type=int, default=60, help="iterations per job (60: about a minute on 2 cores)")
    parser.add_argument("--mesh", type=Path, default=PROJECT / "meshes" / "vase.obj")
    parser.add_argument("--no-ray", action="store_true", help="local executor only")
    parser.add_argument("--repeats", type=int, default=2, help="alternated local/Ray runs (medians are compared)")
    args = parser.parse_args()

    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cpus = os.cpu_count() or 1
    data = manifest(args.jobs, args.iters, args.mesh)
    root = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    try:
        local_runs, ray_runs = [], []
        if not args.no_ray:
            import ray

            ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
        for _ in range(args.repeats):  # alternated, so both see the same machine load
            local_runs.append(timed_batch(data, root, "local", workers=None if gpus else 1))
            if not args.no_ray:
                # one task at a time on all cores, as the one local worker runs
                ray_runs.append(timed_batch(data, root, "ray", executor="ray", executor_options={"cpus_per_task": cpus}))
        local = statistics.median(local_runs)
        if ray_runs:
            ray.shutdown()
            print(f"ray_overhead_vs_local {statistics.median(ray_runs) / local:.3f}")
        if gpus:
            print(f"jobs_per_hour_per_gpu {args.jobs / local * 3600 / gpus:.1f}")
        elif cpus >= 4:
            two = timed_batch(data, root, "local x2", workers=2)
            print(f"scaling_2_workers {local / two:.3f}")
        else:
            print(f"scaling_2_workers: not measured ({cpus} CPUs: two workers would share them)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
