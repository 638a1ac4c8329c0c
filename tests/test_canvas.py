"""Canvases: the generators' interface, what they draw, init images, perturbation, and the flat grid scene."""

import typing

import pytest
import torch

from text2mesh.config import FieldConfig, ImagineConfig
from text2mesh.generators import GENERATORS, generator_module, is_sampler
from text2mesh.generators.base import Canvas, plane_points, resize_image
from text2mesh.generators.field import FieldCanvas
from text2mesh.generators.pixels import PixelCanvas
from text2mesh.generators.scene import canvas_scene
from text2mesh.generators.strokes import StrokeCanvas
from text2mesh.render import Renderer

pytestmark = pytest.mark.usefixtures("one_thread")


SMALL_FIELD = FieldConfig(width=32, n_frequencies=16, depth=1, head_depth=1)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def smooth_image(height, width):
    """A colourful but smooth picture (like a photo), [3, H, W] in [0, 1]."""
    y = torch.linspace(0, 1, height)[:, None].expand(height, width)
    x = torch.linspace(0, 1, width)[None, :].expand(height, width)
    return torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x * y)])


def make(kind, init=None, seed=0):
    if kind == "field":
        return FieldCanvas(SMALL_FIELD, init=init, generator=gen(seed))
    if kind == "pixels":
        return PixelCanvas((6, 8), init=init, generator=gen(seed))
    return StrokeCanvas(12, init=init, generator=gen(seed))


def test_each_registered_generator_is_one_module_with_the_interface():
    """A Canvas subclass of the generator's kind, build() and LR (a sampler: sample() instead);
    the config takes exactly the registry's names."""
    for name in GENERATORS:
        module = generator_module(name)
        if is_sampler(name):
            assert callable(module.sample)
            continue
        canvases = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Canvas) and v is not Canvas]
        assert [c.kind for c in canvases] == [name]
        assert callable(module.build) and module.LR > 0
    assert typing.get_args(typing.get_type_hints(ImagineConfig)["generator"]) == GENERATORS


@pytest.mark.parametrize("kind", ["field", "pixels", "strokes"])
def test_canvases_draw_pictures_of_any_size(kind):
    canvas = make(kind)
    for size in [(20, 30), (33, 7)]:
        image = canvas.texture(size)
        assert image.shape == (3, *size)
        assert image.min() >= 0 and image.max() <= 1


def test_field_starts_as_colour_noise_around_grey_or_plain_grey():
    image = make("field").texture((32, 32)).detach()
    assert (image.mean(dim=(1, 2)) - 0.5).abs().max() < 0.05
    assert ((image.std(dim=(1, 2)) - 0.12).abs() < 0.05).all()
    grey = FieldCanvas(SMALL_FIELD, noise=0.0, generator=gen()).texture((16, 16))
    assert torch.allclose(grey, torch.full_like(grey, 0.5))


@pytest.mark.parametrize("kind", ["field", "pixels"])
def test_untouched_canvas_with_init_image_is_that_image(kind):
    init = torch.rand(3, 24, 32, generator=gen(3))
    canvas = make(kind, init=init)
    assert (canvas.texture((24, 32)) - init).abs().max() < 1 / 255


def test_stroke_canvas_paints_over_its_init_image_in_its_colours():
    init = smooth_image(24, 32)
    canvas = make("strokes", init=init)
    assert torch.allclose(canvas.texture((24, 32), n=0), init)  # no stroke: the init image
    painted = canvas.texture((24, 32))
    assert (painted - init).abs().mean() < 0.1  # strokes start with the colours under them


def test_pixel_canvas_is_a_smooth_upsampling_of_its_grid():
    canvas = make("pixels")
    image = canvas.texture((60, 80))
    step = (image[:, :, 1:] - image[:, :, :-1]).abs().max()
    assert step < 0.1  # no blocky 10-pixel steps
    small = resize_image(image, (6, 8))
    assert (small - torch.sigmoid(canvas.grids[0].detach())).abs().mean() < 0.05


def test_pixel_pyramid_sums_grids_from_fine_to_one_colour():
    canvas = PixelCanvas((8, 16), levels=5, generator=gen(0))
    assert [tuple(g.shape[1:]) for g in canvas.grids] == [(8, 16), (4, 8), (2, 4), (1, 2), (1, 1)]
    with torch.no_grad():
        canvas.grids[0].zero_()
        canvas.grids[-1].fill_(2.0)  # the coarsest grid alone sets one colour everywhere
    assert torch.allclose(canvas.texture((10, 20)), torch.sigmoid(torch.tensor(2.0)).expand(3, 10, 20))


@pytest.mark.parametrize("kind", ["field", "pixels", "strokes"])
def test_perturb_zero_is_a_no_op_and_positive_changes_the_picture(kind):
    canvas = make(kind)
    before = canvas.texture((16, 16)).detach()
    canvas.perturb(0.0, gen(1))
    assert torch.equal(canvas.texture((16, 16)).detach(), before)
    canvas.perturb(0.5, gen(1))
    assert (canvas.texture((16, 16)).detach() - before).abs().mean() > 1e-3


def test_plane_points_span_the_picture_with_y_up():
    pts = plane_points((4, 8))
    assert pts.shape == (32, 3)
    assert pts[0, 1] > pts[-1, 1]  # row 0 is the top
    assert torch.allclose(pts[:, 0].max(), torch.tensor(2.0 - 0.25))  # x in [-W/H, W/H]


@pytest.mark.parametrize("size", [(24, 24), (30, 10), (12, 40)])
def test_unlit_render_of_the_grid_scene_reproduces_the_texture(size):
    texture = torch.rand(3, *size, generator=gen(5), requires_grad=True)
    scene = canvas_scene(size)
    image = scene.render(texture)
    assert image.shape == (1, 3, *size) and image.dtype == torch.float32
    assert (image[0] - texture).abs().max() < 0.01
    image.sum().backward()
    assert torch.allclose(texture.grad, torch.ones_like(texture), atol=0.01)


def test_scene_render_is_the_shared_renderers_unlit_picture():
    texture = torch.rand(3, 20, 28, generator=gen(6))
    scene = canvas_scene((20, 28))
    full = Renderer(antialias=False).render(
        scene.vertices, scene.faces, scene.cameras, scene.colors(texture), lighting="unlit"
    )
    assert torch.allclose(scene.render(texture), full.images, atol=1e-6)
