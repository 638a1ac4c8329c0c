"""Benchmark of the renderer against the cost of CLIP (and Mitsuba 3 as a peer).

Renders the 50k-face person mesh from ../shared/meshes (falls back to a mesh in meshes/) from 5
views at 224x224, forward and forward+backward (median of alternating runs), times open_clip
ViT-B-32 (random weights, frozen, gradient wrt the images as in the stylize loop) on those 5
images with the same thread count, and prints one ``name value`` line per figure:

    render_fwd_s, render_fwd_bwd_s, clip_fwd_bwd_s, render_fwd_bwd_vs_clip,
    render_fwd_bwd_one_thread_s, render_fwd_bwd_one_thread_vs_clip (the Renderer with
    threads=1, i.e. its kernels forced to one thread; only when --threads != 1),
    mitsuba_fwd_bwd_s, render_fwd_bwd_vs_mitsuba, largest_faces_within_2gib

A ratio is the median of per-round ratios (both sides timed in the same round); each is
followed by ``<name>_q1`` and ``<name>_q3``, the quartiles of those ratios, so that the spread
between rounds (large on a shared machine) is on record next to the figure.

Mitsuba (``pip install -e ".[bench]"``, Debian's libllvm19) renders the same views of the same
vertex-coloured mesh with its ``prb`` integrator at 1 sample per pixel (vertex colours as an
area emitter's radiance, max depth 1), forward+backward wrt colours and positions.

Usage: python scripts/bench_render.py [--threads 2] [--repeats 11] [--device cpu] [--mesh PATH]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_MESH = ROOT.parent / "shared" / "meshes" / "person.obj"
LLVM = "/usr/lib/x86_64-linux-gnu/libLLVM-19.so"


def load_mesh(path: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """Vertices normalized to the unit sphere (as Text2Mesh does), faces, and the mesh's name."""
    import trimesh

    candidates = [path] if path else [SHARED_MESH, *sorted((ROOT / "meshes").glob("*.obj"))]
    for candidate in candidates:
        if candidate and candidate.exists():
            mesh = trimesh.load(candidate, force="mesh", process=False)
            vertices = np.asarray(mesh.vertices, dtype=np.float64)
            vertices = vertices - vertices.mean(0)
            vertices /= np.linalg.norm(vertices, axis=1).max()
            faces = np.asarray(mesh.faces, dtype=np.int64)
            return vertices.astype(np.float32), faces, candidate.name
    raise SystemExit("no mesh found: pass --mesh PATH")


def bench_cameras(device: str, size: int = 224):
    from text2mesh.views import cameras_from_angles, sample_front_views

    gen = torch.Generator().manual_seed(0)
    azimuth, elevation = sample_front_views(5, math.pi / 2, 0.0, 4.0, generator=gen)
    return cameras_from_angles(azimuth, elevation, image_size=(size, size)).to(device)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def make_render_step(vertices, faces, cameras, device, threads=None):
    from text2mesh.render import Renderer

    renderer = Renderer(threads=threads)
    v = torch.tensor(vertices, device=device)
    f = torch.tensor(faces, device=device)
    gen = torch.Generator().manual_seed(0)
    colors = torch.rand(v.shape[0], 3, generator=gen).to(device)
    offset = torch.zeros_like(v, requires_grad=True)
    colors.requires_grad_(True)
    # a dense gradient on the images, like the one CLIP's backward hands the renderer (why
    # not ``images.mean().backward()``: that would also time filling its expanded gradient
    # in, a cost of the toy loss that a real loss does not have)
    height, width = cameras.image_size
    upstream = torch.rand(len(cameras), 3, height, width, generator=gen).to(device)

    def forward():
        with torch.no_grad():
            out = renderer.render(v + offset, f, cameras, colors)
        sync(device)
        return out

    def forward_backward():
        out = renderer.render(v + offset, f, cameras, colors)
        out.images.backward(upstream)
        sync(device)
        offset.grad = None
        colors.grad = None
        return out

    return forward, forward_backward


def make_clip_step(device):
    import open_clip

    model = open_clip.create_model("ViT-B-32", pretrained=None).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 224, 224, generator=gen).to(device).requires_grad_(True)

    def forward_backward():
        features = model.encode_image(images)
        features = features / features.norm(dim=-1, keepdim=True)
        features.mean().backward()
        sync(device)
        images.grad = None

    return forward_backward


def write_colored_ply(path: Path, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray):
    """Binary PLY with float vertex colours (read by Mitsuba as the ``vertex_color`` attribute)."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(vertices)}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float r\nproperty float g\nproperty float b\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    vertex_data = np.concatenate([vertices, colors], axis=1).astype("<f4")
    face_data = np.empty(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_data["n"] = 3
    face_data["v"] = faces
    path.write_bytes(header.encode() + vertex_data.tobytes() + face_data.tobytes())


def make_mitsuba_step(vertices, faces, cameras, threads):
    """Mitsuba prb forward+backward, or a string saying why it cannot run."""
    os.environ.setdefault("DRJIT_LIBLLVM_PATH", LLVM)
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError:
        return 'mitsuba not installed (pip install -e ".[bench]")'
    try:
        mi.set_variant("llvm_ad_rgb")
    except Exception as exc:  # noqa: BLE001 - report why the peer cannot run
        reason = f"{type(exc).__name__}: {exc}"
        return f"mitsuba's LLVM backend is unavailable ({reason}); install Debian's libllvm19"
    dr.set_thread_count(threads)
    gen = np.random.default_rng(0)
    colors = gen.random((len(vertices), 3)).astype(np.float32)
    scene = {"type": "scene", "integrator": {"type": "prb", "max_depth": 1}}
    eye = cameras.eye.cpu().double().numpy()
    height, width = cameras.image_size
    for i, position in enumerate(eye):
        scene[f"sensor{i}"] = {
            "type": "perspective",
            "fov": 60.0,
            "fov_axis": "y",
            "near_clip": 0.05,
            "to_world": mi.ScalarTransform4f().look_at(
                origin=position.tolist(), target=[0, 0, 0], up=[0, 1, 0]
            ),
            "film": {
                "type": "hdrfilm",
                "width": width,
                "height": height,
                "rfilter": {"type": "box"},
                "pixel_format": "rgb",
            },
            "sampler": {"type": "independent", "sample_count": 1},
        }
    with tempfile.TemporaryDirectory(prefix="bench_render_") as folder:
        ply = Path(folder) / "mesh.ply"
        write_colored_ply(ply, vertices, faces, colors)
        scene["mesh"] = {
            "type": "ply",
            "filename": str(ply),
            "bsdf": {"type": "diffuse"},
            "emitter": {
                "type": "area",
                "radiance": {"type": "mesh_attribute", "name": "vertex_color"},
            },
        }
        scene = mi.load_dict(scene)  # reads the file now; the folder can go afterwards
    params = mi.traverse(scene)
    names = params.keys()  # iterating SceneParameters itself yields (key, value) pairs
    keys = [k for k in names if k.endswith(("vertex_positions", "vertex_color"))]
    if len(keys) != 2:
        return f"mitsuba scene parameters not found (got {list(params.keys())})"

    def forward_backward():
        for key in keys:
            dr.enable_grad(params[key])
        params.update()
        loss = 0
        for i in range(len(eye)):
            image = mi.render(scene, params, sensor=i, spp=1, seed=i)
            loss = loss + dr.mean(image, axis=None)
        dr.backward(loss)
        grads = [dr.grad(params[key]) for key in keys]
        dr.eval(*grads)
        dr.sync_thread()
        for key in keys:
            dr.disable_grad(params[key])

    return forward_backward


def print_ratio(name: str, numerators: list[float], denominators: list[float]) -> None:
    """Print the median of the per-round ratios and their quartiles (``name_q1``, ``name_q3``)."""
    ratios = [a / b for a, b in zip(numerators, denominators)]
    print(f"{name} {statistics.median(ratios):.4f}")
    if len(ratios) >= 2:
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"{name}_q1 {q1:.4f}")
        print(f"{name}_q3 {q3:.4f}")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def largest_mesh_within(budget_bytes: int, device: str, threads: int) -> int:
    """Largest face count (of sphere meshes) whose 5-view 224^2 render+backward fits the budget."""
    best = 0
    for faces in (
        250_000,
        500_000,
        1_000_000,
        2_000_000,
        4_000_000,
        6_000_000,
        8_000_000,
        12_000_000,
        16_000_000,
    ):
        try:
            used = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--memory-probe",
                    str(faces),
                    "--device",
                    device,
                    "--threads",
                    str(threads),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                timeout=600,
                check=False,
            )
        except subprocess.TimeoutExpired:
            break
        if used.returncode != 0:
            break
        extra = int(used.stdout.split()[-1])
        if extra > budget_bytes:
            break
        best = faces
    return best


def sphere_mesh(num_faces: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A UV sphere with about ``num_faces`` triangles (radius 0.9)."""
    rings = max(4, int(math.sqrt(num_faces / 4)))
    segments = max(4, num_faces // (2 * rings))
    theta = torch.linspace(0.01, math.pi - 0.01, rings + 1)
    phi = torch.arange(segments) * (2 * math.pi / segments)
    t, p = torch.meshgrid(theta, phi, indexing="ij")
    vertices = 0.9 * torch.stack([t.sin() * p.cos(), t.cos(), t.sin() * p.sin()], -1).reshape(-1, 3)
    r = torch.arange(rings)[:, None]
    s = torch.arange(segments)[None]
    a = r * segments + s
    b = r * segments + (s + 1) % segments
    c = a + segments
    d = b + segments
    faces = torch.cat([torch.stack([a, c, b], -1), torch.stack([b, c, d], -1)]).reshape(-1, 3)
    return vertices, faces


def _proc_status_bytes(field: str) -> int:
    """A memory figure of this process from /proc/self/status (e.g. VmRSS, VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(num_faces: int, device: str, threads: int) -> int:
    """Extra peak memory (bytes) of one 5-view render + backward of a sphere of num_faces.

    On CPU: peak resident memory during the render (VmHWM, reset just before it through
    /proc/self/clear_refs) minus the resident memory before it. On CUDA: peak allocated.
    """
    from text2mesh.render import Renderer

    torch.set_num_threads(threads)
    vertices, faces = sphere_mesh(num_faces)
    vertices, faces = vertices.to(device), faces.to(device)
    colors = torch.full_like(vertices, 0.5, requires_grad=True)
    offset = torch.zeros_like(vertices, requires_grad=True)
    cameras = bench_cameras(device)
    renderer = Renderer()
    renderer.neighbors(faces)  # topology is per mesh, not per render
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _proc_status_bytes("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
    out = renderer.render(vertices + offset, faces, cameras, colors)
    out.images.backward(torch.rand_like(out.images))  # dense, as in the timed step
    if device == "cuda":
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return _proc_status_bytes("VmHWM") - base


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mesh", type=Path, default=None)
    parser.add_argument("--skip-memory", action="store_true", help="skip the 2 GiB figure")
    parser.add_argument("--skip-mitsuba", action="store_true")
    parser.add_argument("--memory-probe", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe is not None:
        print(memory_probe(args.memory_probe, args.device, args.threads))
        return
    torch.set_num_threads(args.threads)
    vertices, faces, name = load_mesh(args.mesh)
    print(
        f"# mesh {name}: {len(faces)} faces, 5 views at 224x224, {args.threads} threads "
        f"(torch.set_num_threads, for the Renderer and CLIP alike unless noted), "
        f"device {args.device}, load average {os.getloadavg()[0]:.1f}"
    )
    cameras = bench_cameras(args.device)
    forward, forward_backward = make_render_step(vertices, faces, cameras, args.device)
    clip_step = make_clip_step(args.device)
    mitsuba_step = (
        "skipped with --skip-mitsuba"
        if args.skip_mitsuba
        else (make_mitsuba_step(vertices, faces, cameras.to("cpu"), args.threads))
    )
    steps = {"render_fwd": forward, "render_fwd_bwd": forward_backward, "clip_fwd_bwd": clip_step}
    if args.threads != 1 and args.device == "cpu":
        # also time the Renderer's opt-in one-thread mode, so both figures are on record
        steps["render_fwd_bwd_one_thread"] = make_render_step(
            vertices, faces, cameras, args.device, threads=1
        )[1]
    if callable(mitsuba_step):
        steps["mitsuba_fwd_bwd"] = mitsuba_step
    for fn in steps.values():  # warm-up (allocations, JIT compilation)
        fn()
        fn()
    times: dict[str, list[float]] = {key: [] for key in steps}
    for _ in range(args.repeats):  # alternate so that load changes hit every step alike
        for key, fn in steps.items():
            times[key].append(timed(fn))
            # let worker threads that spin after their work (Dr.Jit's, OpenMP's) go idle, so
            # that they do not eat into the next step's time
            time.sleep(0.1)
    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"render_fwd_s {median['render_fwd']:.4f}")
    print(f"render_fwd_bwd_s {median['render_fwd_bwd']:.4f}")
    print(f"clip_fwd_bwd_s {median['clip_fwd_bwd']:.4f}")
    print_ratio("render_fwd_bwd_vs_clip", times["render_fwd_bwd"], times["clip_fwd_bwd"])
    if "render_fwd_bwd_one_thread" in times:
        one = times["render_fwd_bwd_one_thread"]
        print(f"render_fwd_bwd_one_thread_s {statistics.median(one):.4f}")
        print_ratio("render_fwd_bwd_one_thread_vs_clip", one, times["clip_fwd_bwd"])
    if "mitsuba_fwd_bwd" in median:
        print(f"mitsuba_fwd_bwd_s {median['mitsuba_fwd_bwd']:.4f}")
        print_ratio("render_fwd_bwd_vs_mitsuba", times["render_fwd_bwd"], times["mitsuba_fwd_bwd"])
    else:
        print(f"# render_fwd_bwd_vs_mitsuba skipped: {mitsuba_step}")
    if args.skip_memory:
        print("# largest_faces_within_2gib skipped with --skip-memory")
    else:
        largest = largest_mesh_within(2 * 1024**3, args.device, args.threads)
        print(f"largest_faces_within_2gib {largest}")


if __name__ == "__main__":
    main()
