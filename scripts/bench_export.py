"""Timing of exports and pictures on a reference mesh (not a test; numbers for the README/issue).

    python scripts/bench_export.py [MESH] [--texture 2048] [--size 512]

Reports: xatlas unwrap + texture bake time, GLB/PLY/OBJ write times, and the time per
turntable frame with our renderer on the CPU (and CUDA when available).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from text2mesh.config import MeshConfig
from text2mesh.export import export_mesh
from text2mesh.export.pictures import PictureSettings, turntable
from text2mesh.export.texture import bake_texture
from text2mesh.mesh import prepare_mesh


def timed(label: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    print(f"{label:<40s} {time.perf_counter() - start:8.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_mesh = Path(__file__).resolve().parents[1].parent / "shared/meshes/horse.obj"
    parser.add_argument("mesh", nargs="?", default=str(default_mesh))
    parser.add_argument("--texture", type=int, default=2048)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=4)
    args = parser.parse_args()

    prepared = prepare_mesh(args.mesh, MeshConfig(max_edge=None, max_faces=None))
    vertices = prepared.mesh.vertices.numpy()
    faces = prepared.mesh.faces.numpy()
    colors = 0.5 + 0.5 * np.sin(4.0 * vertices)
    print(f"{args.mesh}: {len(vertices)} vertices, {len(faces)} faces")
    timed(f"bake_texture {args.texture}^2", bake_texture, vertices, faces, colors, args.texture)
    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("obj", "ply", "glb"):
            timed(f"export {fmt}", export_mesh, vertices, faces, colors, Path(folder) / f"m.{fmt}")
        timed(f"export glb + texture {args.texture}^2", export_mesh, vertices, faces, colors,
              Path(folder) / "t.glb", texture=args.texture)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        settings = PictureSettings(size=args.size, device=device)
        turntable(vertices, faces, colors, n_frames=1, settings=settings)  # warm-up
        start = time.perf_counter()
        turntable(vertices, faces, colors, n_frames=args.frames, settings=settings)
        per_frame = (time.perf_counter() - start) / args.frames
        print(f"{'turntable frame ' + str(args.size) + '^2 on ' + device:<40s} {per_frame:8.2f} s")


if __name__ == "__main__":
    main()
