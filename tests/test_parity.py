"""Parity with the reference Text2Mesh (threedle/text2mesh, CVPR 2022) where a real-CLIP user sees it.

Each test states the reference's behaviour on its own (torchvision's transforms, which the
reference calls; a plain re-statement of its loop; the flags of its demo scripts) and checks
ours against it, not against our own output.
"""

from __future__ import annotations

import math
import shlex

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import trimesh
from scipy import stats
from stylize_helpers import (
    INPUT_SCALE,
    RecordingRenderer,
    tiny_clip,
    tiny_config,
    write_tiny_mesh,
)
from torchvision.transforms import (
    InterpolationMode,
    RandomPerspective,
    RandomResizedCrop,
)
from torchvision.transforms import functional as TF

import text2mesh
from text2mesh import api
from text2mesh.augment import (
    homography_from_points,
    sample_crop_boxes,
    sample_perspectives,
    warp,
)
from text2mesh.config import MeshConfig, load_config
from text2mesh.mesh import prepare_mesh, vertex_normals
from text2mesh.stylizer import sample_view_angles

SIZE = 224
RATIO = (3 / 4, 4 / 3)


@pytest.fixture(scope="module")
def clip():
    return tiny_clip()


# --- augmentations: ours against torchvision's RandomResizedCrop + RandomPerspective ----------


def _torchvision_draws(n: int, scale, seed: int = 0):
    """n draws of (crop area fraction, aspect w/h, centre x, centre y) and the 8 inward corner
    shifts (fractions of the half-size) of torchvision's own parameter samplers."""
    image = torch.zeros(1, SIZE, SIZE)
    crops, shifts, warped = [], [], []
    perspective = RandomPerspective(distortion_scale=0.5, p=0.8)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for _ in range(n):
            i, j, h, w = RandomResizedCrop.get_params(image, scale, RATIO)
            crops.append([h * w / SIZE**2, w / h, (j + w / 2) / SIZE * 2 - 1, (i + h / 2) / SIZE * 2 - 1])
            applied = bool(torch.rand(1) < perspective.p)  # RandomPerspective.forward's test
            start, end = RandomPerspective.get_params(SIZE, SIZE, 0.5)
            warped.append(applied)
            if applied:
                shifts += [abs(e - s) / (SIZE // 2) for ps, pe in zip(start, end) for s, e in zip(ps, pe)]
    return np.array(crops), np.array(shifts), np.array(warped)


def _our_draws(n: int, scale, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    boxes = sample_crop_boxes(n, scale, RATIO, generator=generator).double()
    crops = torch.stack([boxes[:, 2] * boxes[:, 3], boxes[:, 2] / boxes[:, 3], boxes[:, 0], boxes[:, 1]], 1)
    homographies = sample_perspectives(n, 0.5, 0.8, generator=generator)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
    # where each source corner lands in the output: the inverse homography of the corner
    points = torch.cat([corners, torch.ones(4, 1, dtype=torch.float64)], 1)
    landed = torch.einsum("nij,pj->npi", torch.linalg.inv(homographies), points)
    landed = landed[..., :2] / landed[..., 2:]
    shift = (landed - corners).abs()  # inward shift in half-sizes (the half-size is 1)
    warped = shift.flatten(1).amax(1) > 0
    return crops.numpy(), shift[warped].flatten().numpy(), warped.numpy()


@pytest.mark.parametrize("scale", [(0.1, 0.1), (0.4, 0.4), (1.0, 1.0), (0.1, 0.4)])
def test_crop_and_perspective_draws_follow_torchvisions_distributions(scale):
    n = 3000
    theirs, their_shifts, their_warped = _torchvision_draws(n, scale)
    ours, our_shifts, our_warped = _our_draws(n, scale)
    for column, name in enumerate(["area", "aspect", "centre x", "centre y"]):
        if np.ptp(theirs[:, column]) < 1e-2 * max(1.0, abs(theirs[:, column]).max()):  # a constant (full view)
            assert np.allclose(ours[:, column], theirs[:, column].mean(), atol=2e-2), name
            continue
        p = stats.ks_2samp(ours[:, column], theirs[:, column]).pvalue
        assert p > 1e-3, f"{name} of crops at scale {scale}: KS p = {p:.2g}"
    # torchvision shifts whole pixels (0..56 of a 112-pixel half-size), ours continuously: same law
    p = stats.ks_2samp(our_shifts, their_shifts).pvalue
    assert p > 1e-3, f"perspective corner shifts: KS p = {p:.2g}"
    assert abs(our_warped.mean() - their_warped.mean()) < 0.04  # both warp with probability 0.8


def _pixel_to_grid(points) -> torch.Tensor:
    """torchvision's pixel-centre coordinates -> grid_sample's (align_corners=False) [-1, 1]."""
    return (torch.as_tensor(points, dtype=torch.float64) + 0.5) / SIZE * 2 - 1


def test_same_crop_and_perspective_give_torchvisions_image():
    ys, xs = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    image = torch.stack([0.5 + 0.4 * torch.sin(xs / 9), 0.5 + 0.4 * torch.cos(ys / 7), 0.5 + 0.4 * torch.sin((xs + ys) / 13)])
    image = image[None]
    white = [1.0, 1.0, 1.0]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for k in range(12):
            scale = [(0.1, 0.1), (0.4, 0.4), (1.0, 1.0)][k % 3]
            i, j, h, w = RandomResizedCrop.get_params(image, scale, RATIO)
            start, end = RandomPerspective.get_params(SIZE, SIZE, 0.5)
            # the reference's augment_transform: RandomResizedCrop then RandomPerspective(fill=1)
            theirs = TF.resized_crop(image, i, j, h, w, [SIZE, SIZE], InterpolationMode.BILINEAR, antialias=True)
            theirs = TF.perspective(theirs, start, end, InterpolationMode.BILINEAR, fill=white)
            box = torch.tensor([[(j + w / 2) / SIZE * 2 - 1, (i + h / 2) / SIZE * 2 - 1, w / SIZE, h / SIZE]])
            # output pixels at the end points show the input at the start points
            homography = homography_from_points(_pixel_to_grid(end)[None], _pixel_to_grid(start)[None])
            ours = warp(image, box, homography, size=(SIZE, SIZE), fill=torch.tensor(white))
            error = (ours - theirs).abs()
            # one resampling (ours) against two (crop, then warp): close everywhere but on the
            # warp's edge, which torchvision blends into the fill and we cut
            assert error.mean() < 0.01, (k, error.mean())
            assert (error > 0.05).float().mean() < 0.03, (k, (error > 0.05).float().mean())


# --- one iteration's loss: ours against a plain re-statement of the reference's loop ----------


def _session(clip, tmp_path, **guidance):
    cfg = api.with_prompts(tiny_config(iters=10), "a red object")
    cfg.guidance.n_augs, cfg.guidance.n_local_augs = 1, 3
    cfg.guidance.local_crop, cfg.guidance.geometry_crop = [0.4, 0.4], [0.1, 0.1]
    for key, value in guidance.items():
        setattr(cfg.guidance, key, value)
    prepared = prepare_mesh(write_tiny_mesh(tmp_path / "blob.obj"), cfg.mesh)
    session = api._session(cfg, prepared, clip, torch.device("cpu"))
    field = session.problem.field
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():  # leave the untrained start: varied colours, displacements mostly outwards
        field.color_head[-1].weight.normal_(0.0, 0.3, generator=generator)
        field.displacement_head[-1].weight.normal_(0.0, 0.02, generator=generator)
        field.displacement_head[-1].bias.fill_(0.8)
    return session


def _reference_loss(problem, generator: torch.Generator):
    """The reference's loop for one iteration, written out (main.py, 'clipavg view', geoloss):

        pred_rgb, pred_normal = mlp(input); vertices = base + normals * pred_normal
        MeshNormalizer: centre on the vertex mean, divide by the largest distance
        loss     = -sum over n_augs of cos(mean over views of CLIP(full-view aug), text)
        normloss = -sum over n_normaugs of cos(mean over views of CLIP(crop at normmaxcrop), text)
        geoloss  = -sum over n_normaugs of cos(mean over views of CLIP(grey crop at normmincrop), text)
        total gradient = that of loss + normloss + geoloss (three backward passes)
    """
    cfg = problem.cfg
    g = cfg.guidance
    mesh = problem.mesh
    colors, displacement = problem.field(mesh.vertices)
    vertices = mesh.vertices + vertex_normals(mesh.vertices, mesh.faces) * displacement[:, None]
    vertices = vertices - vertices.mean(0)
    vertices = vertices / vertices.norm(dim=1).max()
    azimuth, elevation = sample_view_angles(cfg, generator, device="cpu")
    cameras = problem.cameras(azimuth, elevation, cfg.render.resolution)
    both = torch.stack([colors, torch.full_like(colors, 0.5)])
    images = problem.renderer.render(vertices, mesh.faces, cameras, both, lighting="sh", background=(1.0, 1.0, 1.0)).images
    text = F.normalize(problem.objective.clip.encode_text(["a red object"]).float(), dim=-1)[0]
    fill = torch.ones(3)
    size = tuple(problem.clip_size)

    def one_term(renders, n, scale):
        boxes = sample_crop_boxes(n * renders.shape[0], scale, RATIO, generator=generator)
        warps = sample_perspectives(n * renders.shape[0], 0.5, 0.8, generator=generator)
        augmented = warp(renders.repeat(n, 1, 1, 1), boxes, warps, size=size, fill=fill)
        total = 0.0
        for views in augmented.split(renders.shape[0]):  # one augmentation of every view
            mean = problem.objective.clip.encode_images(views).float().mean(0)
            total = total - F.cosine_similarity(mean, text, dim=0)
        return total

    full = one_term(images[0], g.n_augs, (1.0, 1.0))
    local = one_term(images[0], g.n_local_augs, tuple(g.local_crop))
    geometry = one_term(images[1], g.n_local_augs, tuple(g.geometry_crop))
    return full + local + geometry, (full, local, geometry)


def test_one_iteration_loss_and_gradient_equal_the_reference_loop(clip, tmp_path):
    session = _session(clip, tmp_path)
    problem = session.problem
    params = [p for p in problem.parameters() if p.requires_grad]
    ours, parts = problem.loss(9, torch.Generator().manual_seed(3))
    our_grads = torch.autograd.grad(ours, params)
    theirs, (full, local, geometry) = _reference_loss(problem, torch.Generator().manual_seed(3))
    their_grads = torch.autograd.grad(theirs, params)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-4)
    assert parts == pytest.approx({"full": full.item(), "local": local.item(), "geometry": geometry.item()}, abs=1e-4)
    averaged = full + local / 3 + geometry / 3  # what averaging each term would give
    assert abs(ours.item() - averaged.item()) > 1e-3
    # Equal up to float32 sums taken in another order (one backward pass against three), compared
    # as whole tensors: on torch 2.14.1 the weights' gradients differ by 1e-4 to 2.3e-4 of their
    # norm (single near-cancelled elements by up to 1.8e-3 of the largest, which an element-wise
    # test with an absolute 1e-6 no longer allowed); a term weighted 1/3 would differ by ~30%.
    for a, b in zip(our_grads, their_grads):
        assert (a - b).norm() <= 1e-3 * b.norm() + 1e-12, float((a - b).norm() / b.norm())


def test_term_weights_scale_their_terms_on_top(clip, tmp_path):
    base = _session(clip, tmp_path)
    _, parts = base.problem.loss(9, torch.Generator().manual_seed(3))
    (tmp_path / "w").mkdir()
    weighted = _session(clip, tmp_path / "w", full_weight=2.0, local_weight=0.5, geometry_weight=0.0)
    loss, _ = weighted.problem.loss(9, torch.Generator().manual_seed(3))
    assert loss.item() == pytest.approx(2.0 * parts["full"] + 0.5 * parts["local"], abs=1e-4)


# --- normalization after displacement --------------------------------------------------------


def test_every_rendered_mesh_has_zero_vertex_mean_and_unit_radius(clip, tmp_path):
    session = _session(clip, tmp_path)  # displacements start far from zero (~ +0.66 normratio)
    session.problem.renderer = RecordingRenderer()
    for _ in range(3):
        session.loop.one_step()
    assert len(session.problem.renderer.vertices) == 3
    for vertices in session.problem.renderer.vertices:
        assert vertices.mean(0).abs().max() < 1e-5
        assert vertices.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-5)
    assert session.problem.styled().displacement.mean() > 0.4 * session.cfg.field.normratio  # it did inflate


def test_prepared_mesh_is_on_the_unit_sphere_around_its_vertex_mean(tmp_path):
    prepared = prepare_mesh(write_tiny_mesh(tmp_path / "blob.obj"), MeshConfig())
    vertices = prepared.mesh.vertices.double()
    assert vertices.mean(0).abs().max() < 1e-6
    assert vertices.norm(dim=1).max().item() == pytest.approx(1.0, abs=1e-6)


def test_an_inflated_run_exports_at_the_input_size(clip, tmp_path):
    session = _session(clip, tmp_path)
    field = session.problem.field
    with torch.no_grad():  # every vertex pushed out by half the bound: the reference's "growing"
        field.displacement_head[-1].weight.zero_()
        field.displacement_head[-1].bias.fill_(math.atanh(0.5))
    written = api._RunWriter(session, text2mesh.run.RunFolder.create(tmp_path / "run")).export()
    exported = trimesh.load(written[0], process=False)
    source = trimesh.load(tmp_path / "blob.obj", process=False)
    diagonal = np.linalg.norm(np.ptp(exported.vertices, axis=0))
    assert diagonal == pytest.approx(np.linalg.norm(np.ptp(source.vertices, axis=0)), rel=0.01)
    assert diagonal > 1.5 * INPUT_SCALE  # in the input's frame, not the normalized one


# --- demo presets: our resolved settings against the reference's demo scripts ----------------

# The flags of each demo script of threedle/text2mesh (demo/*.sh; the person demo is
# run_ninja.sh), as given there after "python main.py --run branch --obj_path ... --output_dir ...".
REFERENCE_DEMOS = {
    "candle": ("run_candle.sh", "--prompt an image of a candle made of colorful crochet --sigma 5.0 --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --geoloss --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 102 --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --background 1 1 1 --frontview_center 1.96349 0.6283"),
    "horse": ("run_horse.sh", "--prompt an image of a horse in an astronaut suit --sigma 5.0 --geoloss --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 48240889 --save_render --n_iter 1500 --frontview_center 5.4 0.4"),
    "lamp": ("run_lamp.sh", "--prompt an image of a lamp made of brick --sigma 5.0 --geoloss --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 78942387 --save_render --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --frontview_center 1.96349 0.6283"),
    "vase": ("run_vase.sh", "--prompt an image of a vase made of wicker --sigma 5.0 --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --geoloss --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 131 --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --background 1 1 1 --frontview_center 1.96349 0.6283"),
    "shoe": ("run_shoe.sh", "--prompt 'an image of a shoe made of cactus' --sigma 5.0 --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --geoloss --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 11 --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --background 1 1 1 --frontview_center 0.5 0.6283"),
    "alien": ("run_alien_cobble.sh", "--prompt an image of an alien made of cobblestone --sigma 5.0 --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.1 --geoloss --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 41 --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --background 1 1 1 --frontview_center 1.96349 0.6283"),
    "person": ("run_ninja.sh", "--prompt 'a 3D rendering of a ninja in unreal engine' --sigma 12.0 --clamp tanh --n_normaugs 4 --n_augs 1 --normmincrop 0.1 --normmaxcrop 0.4 --geoloss --colordepth 2 --normdepth 2 --frontview --frontview_std 4 --clipavg view --lr_decay 0.9 --clamp tanh --normclamp tanh --maxcrop 1.0 --save_render --seed 29 --n_iter 1500 --learning_rate 0.0005 --normal_learning_rate 0.0005 --standardize --no_pe --symmetry --background 1 1 1"),
}

# main.py's argparse defaults for the flags the scripts leave out
REFERENCE_DEFAULTS = {"n_views": 5, "depth": 4, "width": 256, "normratio": 0.1, "decay_step": 100,
                      "learning_rate": 0.0005, "frontview_center": [0.0, 0.0], "background": None}


def _reference_flags(line: str) -> dict:
    flags: dict = dict(REFERENCE_DEFAULTS)
    name, values = None, []
    for token in shlex.split(line) + ["--end"]:
        if token.startswith("--"):
            if name is not None:
                flags[name] = values if len(values) != 1 else values[0]
            name, values = token[2:], []
        else:
            values.append(token)
    for key in ("sigma", "normmincrop", "normmaxcrop", "lr_decay", "learning_rate"):
        flags[key] = float(flags[key])
    for key in ("n_normaugs", "n_augs", "colordepth", "normdepth", "seed", "n_iter", "frontview_std"):
        flags[key] = int(float(flags[key]))
    return flags


def _same(a, b) -> bool:
    if isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


@pytest.mark.parametrize("preset", sorted(REFERENCE_DEMOS))
def test_demo_presets_resolve_to_the_reference_scripts_flags(preset):
    script, line = REFERENCE_DEMOS[preset]
    ref = _reference_flags(line)
    cfg = load_config(preset)
    azimuth, elevation = (float(x) for x in ref["frontview_center"])
    symmetry_axis = "z"
    if preset == "person":
        # the reference's person.obj faces +x; our frame turns every mesh's front to +z
        # (--front-axis x for that mesh), a quarter turn about y: azimuth + pi/2, z -> x
        azimuth, symmetry_axis = azimuth + math.pi / 2, "x"
    # no --background: kaolin's empty pixels stay black
    background = [0.0, 0.0, 0.0] if ref["background"] is None else [float(x) for x in ref["background"]]
    expected = {
        "prompt": " ".join(ref["prompt"]) if isinstance(ref["prompt"], list) else ref["prompt"],
        "sigma": ref["sigma"], "seed": ref["seed"], "iters": ref["n_iter"], "lr": ref["learning_rate"],
        "lr_decay": ref["lr_decay"], "decay_step": ref["decay_step"], "n_views": ref["n_views"],
        "std": ref["frontview_std"], "azimuth": azimuth, "elevation": elevation,
        "n_augs": ref["n_augs"], "n_local_augs": ref["n_normaugs"],
        # cropforward is off in every demo: colour crops at normmaxcrop, geometry crops at normmincrop
        "local_crop": [ref["normmaxcrop"]] * 2, "geometry_crop": [ref["normmincrop"]] * 2,
        "geometry_loss": "geoloss" in ref, "averaging": "views" if ref["clipavg"] == "view" else "none",
        "head_depth": ref["colordepth"], "depth": ref["depth"], "width": ref["width"],
        "n_frequencies": ref["width"], "normratio": ref["normratio"], "background": background,
        "progressive": "no_pe" not in ref, "symmetry": "symmetry" in ref, "standardize": "standardize" in ref,
        "fill": [1.0, 1.0, 1.0], "weights": [1.0, 1.0, 1.0], "fov": 60.0, "radius": 2.0,
        "resolution": 224, "mode": "front",
    }
    g, f, o, v = cfg.guidance, cfg.field, cfg.optim, cfg.views
    ours = {
        "prompt": cfg.prompts[0], "sigma": f.sigma, "seed": o.seed, "iters": o.iters, "lr": o.lr,
        "lr_decay": o.lr_decay, "decay_step": o.decay_step, "n_views": v.n_views, "std": v.std,
        "azimuth": v.center_azimuth, "elevation": v.center_elevation, "n_augs": g.n_augs,
        "n_local_augs": g.n_local_augs, "local_crop": g.local_crop, "geometry_crop": g.geometry_crop,
        "geometry_loss": g.geometry_loss, "averaging": g.averaging, "head_depth": f.head_depth,
        "depth": f.depth, "width": f.width, "n_frequencies": f.n_frequencies, "normratio": f.normratio,
        "background": cfg.render.background, "progressive": f.progressive, "symmetry": f.symmetry,
        "standardize": f.standardize, "fill": g.fill, "weights": [g.full_weight, g.local_weight, g.geometry_weight],
        "fov": v.fov_degrees, "radius": v.radius, "resolution": cfg.render.resolution, "mode": v.mode,
    }
    differ = {k: (ours[k], expected[k]) for k in expected if not _same(ours[k], expected[k])}
    assert not differ, f"configs/{preset}.yaml against demo/{script}: (ours, reference) {differ}"
    if f.symmetry:
        assert f.symmetry_axis == symmetry_axis
    assert f.displacement and f.colors and ref["clamp"] == ref["normclamp"] == "tanh"


def test_front_axis_turns_a_mesh_facing_x_to_face_the_presets_cameras(tmp_path):
    # a body with a nose on +x, as the reference's person.obj faces +x
    body = trimesh.creation.box(extents=[0.5, 3.0, 0.8])
    nose = trimesh.creation.box(extents=[0.4, 0.2, 0.2])
    nose.apply_translation([0.35, 1.0, 0.0])
    source = trimesh.util.concatenate([body, nose])
    turned = prepare_mesh(source, MeshConfig(front_axis="x", max_edge=None)).mesh.vertices
    assert turned[:, 2].argmax() >= len(body.vertices)  # the nose is now the frontmost (+z) part
    person = load_config("person")
    eye = torch.tensor([math.cos(person.views.center_azimuth), 0.0, math.sin(person.views.center_azimuth)])
    assert (turned @ eye).argmax() >= len(body.vertices)  # and the person preset's front camera sees it
    with pytest.raises(text2mesh.errors.MeshError, match="front axis"):
        prepare_mesh(source, MeshConfig(front_axis="y"))


@pytest.mark.slow
def test_tiny_clip_with_displacement_keeps_the_humans_size_and_does_not_swell():
    """The default preset (displacement on), 60 iterations with the shipped tiny CLIP on the human.

    Swelling is measured as the change of volume and surface area of the rendered mesh (both
    normalized to the unit sphere): thickened limbs raise both. Before the re-normalization and
    with silhouette gradients this run reached volume x3.9, area x2.5 and an export 3.8% larger.
    """
    from pathlib import Path

    from text2mesh.guidance import load_clip

    human = Path(__file__).resolve().parent.parent / "meshes" / "human.obj"
    cfg = load_config("default", overrides={"optim": {"iters": 60, "device": "cpu"}})
    result = text2mesh.stylize(human, "a red object", cfg, None, clip=load_clip("text2mesh-tiny"))
    base = result.prepared.mesh
    before = trimesh.Trimesh(base.vertices.numpy(), base.faces.numpy(), process=False)
    after = trimesh.Trimesh(result.vertices.numpy(), base.faces.numpy(), process=False)
    source = trimesh.load(human, process=False)
    diagonal = np.linalg.norm(np.ptp(result.vertices_input_frame().numpy(), axis=0))
    assert diagonal == pytest.approx(np.linalg.norm(np.ptp(source.vertices, axis=0)), rel=0.01)
    assert after.volume < before.volume and after.area < before.area  # measured: x0.55 and x0.72
    # Displacement was on and moved, a little: a colour word leaves the surface nearly as it was
    # now that the tiny CLIP sees shape (measured: at most 0.012, an eighth of normratio).
    assert result.displacements.abs().max() > 0.05 * cfg.field.normratio


def test_a_run_saved_before_renormalization_still_exports_in_the_input_frame(clip, tmp_path):
    session = _session(clip, tmp_path)
    prepared = session.prepared
    # an old run's base: centred on its bounding box, so off its vertex mean by some offset
    offset = torch.tensor([0.05, -0.03, 0.02])
    old_transform = text2mesh.mesh.Transform(
        prepared.transform.rotation,
        tuple(float(c) for c in np.asarray(prepared.transform.center) - offset.double().numpy() / prepared.transform.scale),
        prepared.transform.scale,
    )
    old_base = text2mesh.mesh.Mesh(prepared.mesh.vertices + offset, prepared.mesh.faces)
    old = text2mesh.mesh.PreparedMesh(old_base, old_transform, prepared.report, prepared.source)
    same_input = old.transform.to_input(old_base.vertices.double())
    assert torch.allclose(same_input, prepared.transform.to_input(prepared.mesh.vertices.double()), atol=1e-5)
    old_session = api._session(session.cfg, old, clip, torch.device("cpu"))
    for s in (session, old_session):  # the same displacement everywhere (+half the bound), whatever the input
        with torch.no_grad():
            s.problem.field.displacement_head[-1].weight.zero_()
            s.problem.field.displacement_head[-1].bias.fill_(math.atanh(0.5))
    with torch.no_grad():
        new_vertices = prepared.transform.to_input(session.problem.styled().vertices.double())
        old_vertices = old.transform.to_input(old_session.problem.styled().vertices.double())
    assert torch.allclose(old_vertices, new_vertices, atol=1e-4 * INPUT_SCALE)
