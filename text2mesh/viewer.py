"""An interactive window on one or more coloured meshes (pyrender + pyglet).

Drag to orbit, scroll to zoom, ``r`` to spin, ``i`` to save a screenshot, ``q`` or closing the
window to quit (pyrender's controls). Several meshes are shown side by side along x, in the
order given (``view --before-after`` passes the base mesh first, so it appears on the left).

Needs a display (an X server, or Xvfb for tests); without one :func:`show` raises
:class:`ViewerError` pointing to ``text2mesh render``, which needs none.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence

import numpy as np
import torch
import trimesh

from .errors import Text2MeshError
from .export.pictures import GREY
from .views import look_at

FrameCallback = Callable[[np.ndarray], bool]
"""Called after each drawn frame with its colour buffer [H, W, 3] uint8 (row 0 at the top);
returning True closes the window."""


class ViewerError(Text2MeshError):
    """The interactive window cannot be opened (no display, no OpenGL 3.3)."""


def _pyrender():
    """Import pyrender (and pyglet) with the workarounds its pinned version needs."""
    if not hasattr(np, "infty"):
        # pyrender 0.1.45's Mesh.bounds uses np.infty, which NumPy 2 removed; without this
        # alias the viewer crashes as soon as a mesh is added to the scene.
        np.infty = np.inf
    import pyrender

    return pyrender


def has_display() -> bool:
    """Whether a window can be opened here (always assumed on macOS and Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY"))


def _mesh_node(pyrender, vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray | None):
    """A smooth-shaded, opaque, vertex-coloured pyrender mesh."""
    normals = trimesh.Trimesh(vertices, faces, process=False).vertex_normals
    rgb = np.broadcast_to(np.asarray(GREY, np.float32), vertices.shape) if colors is None else colors
    rgba = np.concatenate([rgb, np.ones((len(vertices), 1), np.float32)], axis=1)
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.9, alphaMode="OPAQUE",
        doubleSided=True,
    )
    primitive = pyrender.Primitive(
        positions=vertices, normals=normals, color_0=rgba, indices=faces, material=material
    )
    return pyrender.Mesh([primitive])


def side_by_side(meshes: Sequence[tuple], gap: float = 0.2) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Numpy copies of the meshes, moved so they stand in a row along x, centred on the origin.

    Args:
        meshes: (vertices [V, 3], faces [F, 3], colors [V, 3] or None) each, tensors or arrays.
        gap: space between neighbouring bounding boxes, relative to the largest width.
    Returns:
        The moved meshes as (float32, int64 or uint32, float32 or None) arrays.
    """
    arrays = []
    for vertices, faces, colors in meshes:
        arrays.append((
            np.asarray(_numpy(vertices), np.float32),
            np.asarray(_numpy(faces), np.int64),
            None if colors is None else np.clip(np.asarray(_numpy(colors), np.float32), 0, 1),
        ))
    widths = [v[:, 0].max() - v[:, 0].min() for v, _, _ in arrays]
    spacing = max(widths) * gap
    total = sum(widths) + spacing * (len(arrays) - 1)
    left = -total / 2
    placed = []
    for (vertices, faces, colors), width in zip(arrays, widths):
        shift = np.array([left - vertices[:, 0].min(), 0.0, 0.0], np.float32)
        placed.append((vertices + shift, faces, colors))
        left += width + spacing
    return placed


def _numpy(array):
    return array.detach().cpu().numpy() if hasattr(array, "detach") else array


def front_camera_pose(
    vertices: np.ndarray, fov_y: float, aspect: float, elevation: float = math.radians(15)
) -> np.ndarray:
    """[4, 4] camera-to-world pose looking at the origin from the front (+z), slightly above,
    far enough that all ``vertices`` [N, 3] fit in a ``fov_y`` x ``aspect`` view."""
    radius_x = np.abs(vertices[:, 0]).max()
    radius_y = np.abs(vertices[:, 1]).max()
    depth = np.abs(vertices[:, 2]).max()
    distance = 1.1 * max(radius_y / math.tan(fov_y / 2), radius_x / (aspect * math.tan(fov_y / 2))) + depth
    eye = torch.tensor([[0.0, math.sin(elevation), math.cos(elevation)]], dtype=torch.float64) * distance
    world_to_camera = look_at(eye, torch.zeros(3, dtype=torch.float64))
    return torch.linalg.inv(world_to_camera)[0].numpy()


def build_scene(meshes: Sequence[tuple], aspect: float = 4 / 3):
    """A pyrender Scene with the meshes side by side (see :func:`side_by_side`), a white
    background and a camera in front of them (y up, as prepared meshes are)."""
    pyrender = _pyrender()
    scene = pyrender.Scene(bg_color=[1.0, 1.0, 1.0, 1.0], ambient_light=[0.3, 0.3, 0.3])
    placed = side_by_side(meshes)
    for vertices, faces, colors in placed:
        scene.add(_mesh_node(pyrender, vertices, faces, colors))
    fov_y = math.radians(45)
    pose = front_camera_pose(np.concatenate([v for v, _, _ in placed]), fov_y, aspect)
    scene.add(pyrender.PerspectiveCamera(yfov=fov_y, aspectRatio=aspect, znear=0.05, zfar=100.0), pose=pose)
    return scene


def _viewer_class(pyrender):
    """pyrender's Viewer, reporting each drawn frame to a callback."""
    from OpenGL import GL

    class Viewer(pyrender.Viewer):
        def __init__(self, *args, on_frame: FrameCallback | None = None, **kwargs):
            self._on_frame = on_frame
            super().__init__(*args, **kwargs)

        def on_draw(self):
            super().on_draw()
            if self._on_frame is None or self._renderer is None:
                return
            width, height = self.get_framebuffer_size()
            GL.glReadBuffer(GL.GL_BACK)  # the frame just drawn, before pyglet swaps it to the front
            data = GL.glReadPixels(0, 0, width, height, GL.GL_RGB, GL.GL_UNSIGNED_BYTE)
            frame = np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1].copy()
            if self._on_frame(frame):
                self._should_close = True  # pyrender closes on its next timer tick

    return Viewer


def show(
    meshes: Sequence[tuple],
    title: str = "text2mesh",
    size: tuple[int, int] = (960, 720),
    on_frame: FrameCallback | None = None,
) -> None:
    """Open a window on the meshes and return when it is closed.

    Args:
        meshes: (vertices [V, 3], faces [F, 3], colors [V, 3] in [0, 1] or None) each,
            shown left to right.
        title: window title.
        size: (width, height) of the window in pixels.
        on_frame: see :data:`FrameCallback` (screenshots, tests).
    Raises:
        ViewerError: no display or no usable OpenGL.
    """
    if not has_display():
        raise ViewerError("no display to open a window on (DISPLAY is not set); use `text2mesh render` for pictures")
    scene = build_scene(meshes, aspect=size[0] / size[1])
    pyrender = _pyrender()
    viewer_class = _viewer_class(pyrender)
    try:
        viewer_class(
            scene,
            viewport_size=size,
            use_raymond_lighting=True,
            window_title=title,
            view_center=[0.0, 0.0, 0.0],
            rotate_axis=[0.0, 1.0, 0.0],
            on_frame=on_frame,
        )
    except Exception as exc:  # pyglet/PyOpenGL raise many types when no context can be had
        if isinstance(exc, Text2MeshError):
            raise
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ViewerError(f"cannot open the viewer window ({reason}); use `text2mesh render` for pictures") from exc
