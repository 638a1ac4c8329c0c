"""The interactive viewer opens under a virtual display, shows the mesh's colours, and closes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import trimesh

from text2mesh.cli import main
from text2mesh.export import export_mesh

RED = (1.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def xvfb_display():
    """A private Xvfb server; yields its DISPLAY value."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb; .ci/run installs it)")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "640x480x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def red_sphere_file(tmp_path_factory):
    sphere = trimesh.creation.icosphere(subdivisions=2)
    path = tmp_path_factory.mktemp("viewer") / "red.ply"
    export_mesh(sphere.vertices, sphere.faces, np.tile(RED, (len(sphere.vertices), 1)), path)
    return path


# Runs `text2mesh view` in a child process (a crashing GL driver cannot take pytest down) once
# per argument list (lists separated by ";"); a frame callback saves the third frame drawn
# as OUT_<i>.npy and closes the window.
VIEW_SCRIPT = textwrap.dedent(
    """
    import functools, sys
    import numpy as np
    import text2mesh.viewer as viewer
    from text2mesh.cli import main

    show = viewer.show
    for index, args in enumerate(" ".join(sys.argv[2:]).split(";")):
        frames = []
        def on_frame(frame):
            frames.append(frame)
            return len(frames) >= 3
        viewer.show = functools.partial(show, on_frame=on_frame, size=(320, 240))
        try:
            main(["view", *args.split()])
        except SystemExit as exit:
            if exit.code:
                raise
        np.save(f"{sys.argv[1]}_{index}.npy", frames[-1])
    """
)


@pytest.fixture(scope="module")
def frames(xvfb_display, red_sphere_file, tmp_path_factory):
    """Frames of `view red.ply` and `view red.ply --before-after` under Xvfb."""
    out = tmp_path_factory.mktemp("frames") / "frame"
    env = {**os.environ, "DISPLAY": xvfb_display}
    env.pop("PYOPENGL_PLATFORM", None)  # a window needs GLX, not EGL/OSMesa
    args = f"{red_sphere_file} ; {red_sphere_file} --before-after"
    done = subprocess.run(
        [sys.executable, "-c", VIEW_SCRIPT, str(out), args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {"plain": np.load(f"{out}_0.npy"), "before_after": np.load(f"{out}_1.npy")}


def test_view_shows_the_mesh_colors_and_closes(frames):
    frame = frames["plain"]
    assert frame.shape == (240, 320, 3)
    red = (frame[..., 0] > 120) & (frame[..., 1] < 60) & (frame[..., 2] < 60)
    assert red.mean() > 0.05, "the red mesh should cover part of the window"
    assert (frame[0, 0] > 240).all(), "the background is white"


def test_view_before_after_puts_the_grey_base_left_of_the_colored_mesh(frames):
    frame = frames["before_after"]
    left, right = frame[:, :160].reshape(-1, 3).astype(int), frame[:, 160:].reshape(-1, 3).astype(int)
    grey = lambda px: (np.ptp(px, axis=1) < 12) & (px[:, 0] < 235) & (px[:, 0] > 60)
    red = lambda px: (px[:, 0] > 120) & (px[:, 1] < 60) & (px[:, 2] < 60)
    assert grey(left).mean() > 0.05 and red(left).mean() < 0.01
    assert red(right).mean() > 0.05


def test_view_without_display_says_what_to_use_instead(red_sphere_file, monkeypatch, capsys):
    if sys.platform in ("darwin", "win32"):
        pytest.skip("a display is assumed on macOS and Windows")
    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(SystemExit) as exit:
        main(["view", str(red_sphere_file)])
    assert exit.value.code == 1
    assert "text2mesh render" in capsys.readouterr().err
