"""text2mesh serve: the HTTP API, its refusals, restarts, the trigger phrase, and the page in a browser."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trimesh
from wait_helpers import start_as_in_a_terminal, wait_for

pytest.importorskip("fastapi", reason="the server is an optional dependency (pip install -e '.[serve]')")
httpx = pytest.importorskip("httpx", reason="the API tests talk HTTP through httpx (in the dev extra)")
from fastapi.testclient import TestClient

from text2mesh.jobs.service import JobService
from text2mesh.serve.app import ServeSettings, create_app
from text2mesh.serve.command import CommandError, parse_command

MESHES = ["dog", "human", "sphere", "vase"]
# quick jobs: the shipped sphere at 64², the offline tiny CLIP
FAST = ["render.resolution=64", "output.final_resolution=64", "output.n_final_views=2", "optim.checkpoint_every=2",
        "optim.snapshot_every=2"]


@pytest.mark.parametrize(
    "text, prompt, mesh",
    [
        ("generate a red spiky vase", "a red spiky vase", "vase"),
        ("Generate a dog made of gold.", "a dog made of gold", "dog"),
        ("please generate a person in a blue suit", "a person in a blue suit", "human"),
        ("generate an image of a sunset", "a sunset", None),
        ("generate a picture of a red ball", "a red ball", None),
    ],
)
def test_trigger_phrase(text, prompt, mesh):
    command = parse_command(text, MESHES)
    assert (command.prompt, command.mesh) == (prompt, mesh)


@pytest.mark.parametrize(
    "text, reason",
    [("a red vase", "start with \"generate\""), ("generate", "say what to generate"),
     ("generate a red car", "which mesh?")],
)
def test_sentences_that_start_nothing_say_why(text, reason):
    with pytest.raises(CommandError, match=reason):
        parse_command(text, MESHES)


@pytest.fixture
def api(tmp_path):
    """The app over a job service that queues but runs nothing (its worker thread not started)."""
    service = JobService(tmp_path / "jobs")
    settings = ServeSettings(preset="tiny", clip_model="text2mesh-tiny", max_upload_mb=0.05)
    with TestClient(create_app(service, settings)) as client:
        yield client, service, tmp_path / "jobs"


def test_jobs_are_queued_from_a_form_and_a_sentence(api):
    client, _, _ = api
    answer = client.post("/api/jobs", data={"prompt": "a red object", "mesh_name": "sphere", "iters": "3", "seed": "2"})
    assert answer.status_code == 200, answer.text
    job = client.get(f"/api/jobs/{answer.json()['id']}").json()
    assert job["status"] == "queued" and job["mesh"] == "sphere.obj" and job["iters"] == 3 and job["seed"] == 2
    assert job["preset"] == "tiny" and "glb" in job["set"]["output.formats"]
    said = client.post("/api/command", json={"text": "generate a red spiky vase"})
    assert said.status_code == 200 and said.json()["mesh"] == "vase" and said.json()["prompt"] == "a red spiky vase"
    picture = client.post("/api/command", json={"text": "generate an image of a sunset"}).json()
    assert client.get(f"/api/jobs/{picture['id']}").json()["kind"] == "imagine"
    nothing = client.post("/api/command", json={"text": "a red spiky vase"})
    assert nothing.status_code == 422 and "generate" in nothing.json()["detail"]
    assert len(client.get("/api/jobs").json()["jobs"]) == 3
    cancelled = client.post(f"/api/jobs/{answer.json()['id']}/cancel")
    assert cancelled.status_code == 200


def test_refusals_are_one_line_4xx_and_write_nothing(api):
    client, service, root = api
    client.post("/api/jobs", data={"prompt": "a red object", "mesh_name": "sphere"})
    (job_id,) = [j["id"] for j in client.get("/api/jobs").json()["jobs"]]
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    big = io.BytesIO(b"v 0 0 0\n" * 20_000)
    cases = [
        client.get(f"/api/jobs/{job_id}/files/..%2F..%2Fjobs.jsonl"),
        client.get(f"/api/jobs/{job_id}/files/%2Fetc%2Fpasswd"),
        client.get(f"/api/jobs/{job_id}/files/config.yaml/../../jobs.jsonl"),
        client.get("/api/jobs/no-such-job"),
        client.post("/api/jobs", data={"prompt": "x"}, files={"mesh": ("big.obj", big)}),
        client.post("/api/jobs", data={"prompt": "x"}, files={"mesh": ("notes.txt", io.BytesIO(b"hello"))}),
        client.post("/api/jobs", data={"prompt": "x"}, files={"mesh": ("fake.obj", io.BytesIO(b"not a mesh at all"))}),
        client.post("/api/jobs", data={"prompt": "x" * 301, "mesh_name": "sphere"}),
        client.post("/api/jobs", data={"prompt": "x", "mesh_name": "../../etc/passwd"}),
        client.post("/api/jobs", data={"prompt": "x", "mesh_name": "sphere", "set": "optim.iterz=3"}),
        client.post("/api/jobs", data={"prompt": "x" * 301}, files={"mesh": ("big.obj", io.BytesIO(big.getvalue()))}),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, (response.request.url, response.status_code)
        detail = response.json()["detail"]
        assert isinstance(detail, str) and detail and "\n" not in detail, detail
    assert cases[4].status_code == 413 and cases[5].status_code == 415
    assert cases[-1].status_code == 400 and "characters" in cases[-1].json()["detail"]  # before the upload is read
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # no upload or job left behind
    assert [r.id for r in service.records()] == [job_id]


def test_a_token_is_required_when_set(tmp_path):
    service = JobService(tmp_path / "jobs")
    with TestClient(create_app(service, ServeSettings(token="s3cret"))) as client:
        assert client.get("/api/jobs").status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/api/command", json={"text": "generate a red vase"}).status_code == 401
        assert client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/?token=s3cret").status_code == 200
        assert client.get("/api/jobs").status_code == 200  # the page's cookie from then on
    assert service.records() == []


def test_a_server_off_localhost_needs_a_token(capsys):
    from text2mesh.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--host", "0.0.0.0"])
    assert exit_info.value.code == 1 and "--token" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``text2mesh serve`` in a subprocess on a free localhost port."""

    def __init__(self, jobs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "text2mesh", "serve", "--port", str(self.port), "--jobs", str(jobs),
                   "--clip-model", "text2mesh-tiny", "--preset", "tiny", *[a for s in FAST for a in ("--set", s)]]
        self.process = start_as_in_a_terminal(command, stderr=subprocess.PIPE, text=True)
        wait_for(self.ready, 60, "the server to answer")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/api/jobs", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/api/jobs/{job_id}", timeout=10).json()

    def stop(self) -> str:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=120)
        finally:
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGKILL)
        return err


@pytest.mark.slow
def test_a_job_over_http_survives_a_restart(tmp_path):
    jobs = tmp_path / "jobs"
    server = Server(jobs)
    try:
        first = httpx.post(f"{server.url}/api/jobs", data={"prompt": "a red object", "mesh_name": "sphere", "iters": "3"})
        first_id = first.json()["id"]
        wait_for(lambda: server.job(first_id)["status"] == "done", 180, "the first job")
        job = server.job(first_id)
        glb = next(f for f in job["files"] if f.endswith(".glb"))
        data = httpx.get(f"{server.url}/api/jobs/{first_id}/files/{glb}", timeout=30).content
        (mesh,) = trimesh.load(io.BytesIO(data), file_type="glb", process=False).geometry.values()
        assert len(mesh.faces) == 20480 and len(mesh.visual.vertex_attributes["color"]) == len(mesh.vertices)
        textured = httpx.get(f"{server.url}/api/jobs/{first_id}/textured.glb?size=128", timeout=120)
        (baked,) = trimesh.load(io.BytesIO(textured.content), file_type="glb", process=False).geometry.values()
        assert baked.visual.material.baseColorTexture.size == (128, 128) and len(baked.visual.uv) == len(baked.vertices)
        archive = httpx.get(f"{server.url}/api/jobs/{first_id}/archive", timeout=30)
        assert archive.status_code == 200 and archive.content[:2] == b"PK"
        long = httpx.post(f"{server.url}/api/jobs", data={"prompt": "a blue object", "mesh_name": "sphere", "iters": "16"})
        long_id = long.json()["id"]
        wait_for(lambda: server.job(long_id)["progress"].get("step", 0) >= 4, 180, "the long job to start")
        waiting = httpx.post(f"{server.url}/api/command", json={"text": "generate a green ball"}).json()["id"]
        err = server.stop()
        assert server.process.returncode == 130, err
    finally:
        if server.process.poll() is None:
            server.stop()
    server = Server(jobs)
    try:
        assert server.job(first_id)["status"] == "done"
        for job_id in (long_id, waiting):
            wait_for(lambda job_id=job_id: server.job(job_id)["status"] == "done", 240, f"{job_id} after the restart")
        assert server.job(long_id)["progress"]["start"] >= 4  # continued from its checkpoint
    finally:
        server.stop()


def _browser():
    """Headless Chromium through selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium drives the browser (in the dev extra)")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400",
                 "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.mark.slow
def test_the_page_submits_a_job_and_shows_it_in_3d(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser = _browser()
    server = Server(tmp_path / "jobs")
    try:
        browser.get(server.url)
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#mesh-name option"), 30, "the mesh list")
        Select(browser.find_element(By.ID, "mesh-name")).select_by_value("sphere")
        browser.find_element(By.ID, "prompt").send_keys("a red object")
        browser.find_element(By.ID, "iters").send_keys("3")
        browser.find_element(By.ID, "submit-job").click()
        wait_for(lambda: "queued" in browser.find_element(By.ID, "job-answer").text, 30, "the page to queue the job")
        card = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".job[data-status=done]"), 240, "the job to finish")[0]
        viewer = card.find_element(By.TAG_NAME, "model-viewer")
        wait_for(lambda: browser.execute_script("return arguments[0].loaded", viewer), 60, "the 3D view to load the GLB")
        shown = browser.execute_script("return arguments[0].getDimensions()", viewer)
        assert min(shown["x"], shown["y"], shown["z"]) > 0  # a model with a size is in the view
        assert card.find_elements(By.CSS_SELECTOR, "img[alt='renders/turntable.gif']")
        browser.save_screenshot(str(tmp_path / "page.png"))
    except Exception:
        browser.save_screenshot(str(Path(os.environ.get("TEXT2MESH_SCREENSHOTS", tmp_path)) / "page-failure.png"))
        raise
    finally:
        browser.quit()
        server.stop()
