"""text2mesh batch: manifests, the job store, local and Ray executors, failures, kills, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
import trimesh
import yaml
from wait_helpers import start_as_in_a_terminal, wait_for

from text2mesh.cli import main
from text2mesh.errors import ConfigError
from text2mesh.jobs import JobSpec, batch, load_manifest, read_records
from text2mesh.jobs.store import PROGRESS_SAVE_SECONDS, JobStore, pack_run, unpack_run

# Small, quick jobs: a 320-face sphere, 64-pixel renders, the offline tiny CLIP.
FAST = {
    "mesh.max_edge": None,
    "render.resolution": 64,
    "output.final_resolution": 64,
    "output.n_final_views": 2,
    "optim.snapshot_every": 0,
    "optim.checkpoint_every": 2,
}


@pytest.fixture
def ball(tmp_path: Path) -> Path:
    path = tmp_path / "ball.obj"
    trimesh.creation.icosphere(subdivisions=2).export(path)
    return path


def manifest(tmp_path: Path, data: dict, name: str = "jobs.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def three_jobs(ball: Path, iters: int = 3) -> dict:
    return {
        "defaults": {"preset": "tiny", "clip_model": "text2mesh-tiny", "set": {**FAST, "optim.iters": iters}},
        "jobs": [{"mesh": str(ball), "prompt": "a red object", "seed": 1, "name": "red-ball"}],
        "grid": {"meshes": [str(ball)], "prompts": ["a blue object", "a green object"]},
    }


def records_of(out: Path) -> dict:
    return {r.id: r for r in read_records(out / "jobs.jsonl")}


def checkpointed_steps(run: Path) -> int:
    """Iterations in a run's last checkpoint (its loss.csv is written with each checkpoint)."""
    losses = run / "loss.csv"
    return len(losses.read_text().splitlines()) - 1 if losses.is_file() else 0


def running_job(out: Path, min_step: int):
    """A job record that is running and has checkpointed at least ``min_step`` iterations (seen
    on disk at once, where progress reports come every 2 s: a fast job could end between two)."""
    if not (out / "jobs.jsonl").is_file():
        return None
    for record in read_records(out / "jobs.jsonl"):
        if record.status == "running" and checkpointed_steps(out / record.run_dir) >= min_step:
            return record
    return None


def assert_complete(out: Path, iters: int, failed: tuple[str, ...] = ()) -> dict:
    """Every job done (but ``failed``), with all its files, its losses for every iteration, and
    a gallery whose links resolve."""
    records = records_of(out)
    for record in records.values():
        if record.id in failed:
            assert record.status == "failed"
            continue
        assert record.status == "done", (record.id, record.error)
        run = out / record.run_dir
        assert (run / "config.yaml").is_file() and (run / "ball_stylized.obj").is_file()
        assert len((run / "loss.csv").read_text().splitlines()) == iters + 1
        assert not list(out.glob(".*partial"))
    page = (out / "index.html").read_text()
    links = [unquote(h) for h in re.findall(r'(?:href|src)="([^"]+)"', page)]
    assert links and all((out / link).is_file() for link in links)
    for record in records.values():
        assert (f"{record.run_dir}/renders/turntable.gif" in links) == (record.id not in failed)
    return records


def test_manifest_expands_jobs_and_grid(tmp_path, ball):
    specs = load_manifest(manifest(tmp_path, three_jobs(ball)))
    assert [s.name for s in specs] == ["red-ball", "ball-a-blue-object", "ball-a-green-object"]
    assert specs[0].seed == 1 and specs[1].seed is None
    assert all(s.preset == "tiny" and s.clip_model == "text2mesh-tiny" for s in specs)
    cfg = specs[0].config()
    assert cfg.optim.iters == 3 and cfg.render.resolution == 64 and cfg.optim.seed == 1
    assert cfg.prompts == ["a red object"] and cfg.mesh.max_edge is None
    assert JobSpec.from_dict(json.loads(json.dumps(specs[0].to_dict()))) == specs[0]


def test_manifest_job_keys_override_defaults_and_grid_seeds_multiply(tmp_path, ball):
    data = {
        "defaults": {"preset": "tiny", "set": {"optim.iters": 5}},
        "jobs": [{"mesh": str(ball), "prompt": "a vase", "preset": "draft", "set": ["optim.iters=7"]}],
        "grid": {"meshes": [str(ball)], "prompts": ["a", "b"], "seeds": [0, 1, 2]},
    }
    specs = load_manifest(manifest(tmp_path, data))
    assert len(specs) == 1 + 2 * 3
    assert specs[0].preset == "draft" and specs[0].config().optim.iters == 7
    assert {s.seed for s in specs[1:]} == {0, 1, 2}
    assert len({s.name for s in specs}) == len(specs)


def test_csv_manifest(tmp_path, ball):
    path = tmp_path / "jobs.csv"
    path.write_text(f"mesh,prompt,seed,preset,set\n{ball},a red object,3,tiny,optim.iters=4;render.resolution=64\n"
                    f"{ball},\"a blue, shiny object\",,tiny,\n")
    specs = load_manifest(path)
    assert specs[0].seed == 3 and specs[0].config().optim.iters == 4 and specs[0].config().render.resolution == 64
    assert specs[1].prompt == "a blue, shiny object" and specs[1].seed is None


@pytest.mark.parametrize(
    "job, message",
    [
        ({"prompt": "x", "mesh": "BALL", "colour": "red"}, r"job 1: unknown key 'colour'"),
        ({"prompt": "x", "mesh": "missing.obj"}, r"job 1 field mesh: mesh file not found"),
        ({"prompt": "x", "mesh": "BALL", "set": {"optim.iterz": 3}}, r"job 1: .*iterz"),
        ({"prompt": "x", "mesh": "BALL", "seed": "one"}, r"job 1 field seed: expected an integer"),
        ({"mesh": "BALL"}, r"job 1 field prompt: give the text prompt"),
        ({"prompt": "x", "mesh": "BALL", "preset": "nope"}, r"job 1: unknown preset 'nope'"),
    ],
)
def test_bad_manifest_is_refused_naming_job_and_field(tmp_path, ball, job, message):
    job = {k: (str(ball) if v == "BALL" else v) for k, v in job.items()}
    with pytest.raises(ConfigError, match=message):
        load_manifest(manifest(tmp_path, {"jobs": [job]}))


def test_bad_manifest_cli_answers_in_one_line_and_runs_nothing(tmp_path, ball, capsys):
    path = manifest(tmp_path, {"jobs": [{"prompt": "x", "mesh": str(ball), "name": "a"},
                                        {"prompt": "y", "mesh": str(ball), "name": "a"}]})
    with pytest.raises(SystemExit) as exit_info:
        main(["batch", str(path), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 1 and "\n" not in err
    assert "job 2 (a) field name" in err and "unique" in err
    assert not (tmp_path / "out").exists()


def test_pack_and_unpack_round_trip(tmp_path):
    run = tmp_path / "run"
    (run / "renders").mkdir(parents=True)
    (run / "config.yaml").write_text("a: 1\n")
    (run / "renders" / "x.png").write_bytes(bytes(range(256)))
    target = tmp_path / "copy"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    unpack_run(pack_run(run), target)
    assert (target / "config.yaml").read_text() == "a: 1\n"
    assert (target / "renders" / "x.png").read_bytes() == bytes(range(256))
    assert not (target / "stale.txt").exists()


@pytest.mark.slow
def test_batch_runs_locally_records_a_failure_and_reruns_nothing(tmp_path, ball):
    data = three_jobs(ball)
    # the grid's jobs listed one by one, before the broken one: the pool hands the first two jobs
    # to its two workers as they are submitted, so both workers run a job that succeeds
    data["jobs"] += [{"mesh": str(ball), "prompt": prompt} for prompt in data.pop("grid")["prompts"]]
    broken = tmp_path / "broken.obj"
    broken.write_text("v 0 0 0\nthis is not an obj file\n")
    data["jobs"].append({"mesh": str(broken), "prompt": "a red object", "name": "broken"})
    out = tmp_path / "out"
    records = batch(manifest(tmp_path, data), out, workers=2, retries=1)
    assert [(r.id, r.status) for r in records] == [("red-ball", "done"), ("ball-a-blue-object", "done"),
                                                   ("ball-a-green-object", "done"), ("broken", "failed")]
    failed = records[3]
    assert failed.attempt == 2 and "point cloud (no faces)" in failed.error and "\n" not in failed.error
    assert failed.error in (out / "index.html").read_text()
    good = {k: v for k, v in assert_complete(out, 3, failed=("broken",)).items() if k != "broken"}
    assert all(r.progress["step"] == 3 and r.progress["start"] == 0 for r in good.values())
    assert len({r.worker for r in good.values()}) == 2  # two worker processes shared the jobs
    before = {k: (out / r.run_dir / "loss.csv").stat().st_mtime_ns for k, r in good.items()}
    again = batch(manifest(tmp_path, data), out, retries=0)
    assert [r.status for r in again] == ["done", "done", "done", "failed"]
    assert {k: (out / r.run_dir / "loss.csv").stat().st_mtime_ns for k, r in good.items()} == before


@pytest.mark.slow
def test_killed_worker_is_retried_from_its_checkpoint(tmp_path, ball):
    data = three_jobs(ball, iters=80)
    data["jobs"] = data["jobs"][:1]
    del data["grid"]
    out = tmp_path / "out"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(records=batch(data, out, retries=1)))
    thread.start()
    victim = wait_for(lambda: running_job(out, 6), 120, "a job past iteration 6")
    os.kill(int(victim.worker), signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    (record,) = result["records"]
    assert record.status == "done" and record.attempt == 2
    assert record.progress["start"] >= 6  # the second attempt continued the first one's checkpoint
    assert_complete(out, iters=80)
    written = (out / record.run_dir / "loss.csv").stat().st_mtime_ns
    (again,) = batch(data, out, retries=1)
    assert again.attempt == 2 and (out / record.run_dir / "loss.csv").stat().st_mtime_ns == written


@pytest.mark.slow
def test_ctrl_c_stops_the_batch_and_the_same_command_continues(tmp_path, ball):
    data = three_jobs(ball, iters=80)
    path = manifest(tmp_path, data)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "text2mesh", "batch", str(path), "-o", str(out), "--quiet"]
    process = start_as_in_a_terminal(command, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running_job(out, 4), 120, "a job past iteration 4")
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, err
    assert "run the same command again" in err.strip().splitlines()[-1]
    stopped = records_of(out)
    assert not any(r.status in ("running", "failed") for r in stopped.values())
    interrupted = [r for r in stopped.values() if r.status == "queued" and (out / r.run_dir / "checkpoint.pt").is_file()]
    assert interrupted, "the running job saved a checkpoint"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    records = assert_complete(out, iters=80)
    assert records[interrupted[0].id].attempt == 2 and records[interrupted[0].id].progress["start"] >= 4


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray", reason="Ray is an optional dependency (pip install -e '.[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def ray_task_pids() -> list[int]:
    """Processes running a job as a Ray task (Ray titles them ray::<function>)."""
    found = subprocess.run(["pgrep", "-f", "ray::_ray_task"], capture_output=True, text=True, check=False)
    return [int(pid) for pid in found.stdout.split()]


@pytest.mark.slow
def test_batch_under_local_ray(tmp_path, ball, local_ray):
    out = tmp_path / "out"
    records = batch(manifest(tmp_path, three_jobs(ball)), out, executor="ray")
    assert [r.status for r in records] == ["done"] * 3
    assert_complete(out, iters=3)
    assert all(":" in r.worker for r in records)  # host:pid of the Ray worker
    assert all(r.progress["step"] == r.progress["total"] == 3 for r in records)  # reported from the Ray tasks


@pytest.mark.slow
def test_killed_ray_worker_is_retried_by_ray(tmp_path, ball, local_ray):
    data = three_jobs(ball, iters=80)
    data["jobs"] = data["jobs"][:1]
    del data["grid"]
    out = tmp_path / "out"
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(records=batch(data, out, executor="ray")))
    thread.start()
    (victim,) = wait_for(ray_task_pids, 120, "the job's Ray task")
    time.sleep(3)  # into the optimization
    assert victim in ray_task_pids(), "the job ended before it could be killed; make it longer"
    os.kill(victim, signal.SIGKILL)
    thread.join(timeout=300)
    assert not thread.is_alive()
    (record,) = result["records"]
    assert record.status == "done" and not record.worker.endswith(f":{victim}")
    assert_complete(out, iters=80)


@pytest.mark.slow
def test_service_cancels_a_running_job_and_runs_the_next(tmp_path, ball):
    from text2mesh.jobs import JobSpec
    from text2mesh.jobs.service import JobService

    settings = tuple({**FAST, "optim.iters": 200}.items())
    spec = lambda prompt: JobSpec(name="", prompt=prompt, mesh=str(ball), preset="tiny", clip_model="text2mesh-tiny",
                                  set=settings)
    service = JobService(tmp_path / "jobs").start()
    try:
        long = service.submit(spec("a red object"))
        short = service.submit(JobSpec.from_dict({**spec("a blue object").to_dict(), "iters": 3}))
        wait_for(lambda: service.record(long.id).progress.get("step", 0) >= 2, 120, "the long job to run")
        service.cancel(long.id)
        wait_for(lambda: service.record(long.id).status == "cancelled", 60, "the cancel")
        wait_for(lambda: service.record(short.id).status == "done", 120, "the next job")
        assert service.record(long.id).progress["step"] < 200
        assert (tmp_path / "jobs" / long.id / "checkpoint.pt").is_file()
        with pytest.raises(ConfigError, match="cancelled"):
            service.cancel(long.id)
    finally:
        service.stop()
    assert {r.id: r.status for r in read_records(tmp_path / "jobs" / "jobs.jsonl")} == {long.id: "cancelled",
                                                                                      short.id: "done"}


def test_the_gallery_lists_a_finished_job_once_and_again_when_its_folder_changes(tmp_path, monkeypatch):
    from text2mesh.jobs.gallery import Gallery
    from text2mesh.jobs.store import JobStore

    store = JobStore.open(tmp_path)
    done, _ = store.add([JobSpec(name="a", prompt="a red vase"), JobSpec(name="b", prompt="a blue vase")])
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "final.png").write_bytes(b"png")
    store.update(done.id, status="done", attempt=1, started=1.0, ended=2.0)
    listed = []
    files = store.files
    monkeypatch.setattr(store, "files", lambda record: listed.append(record.id) or files(record))
    gallery = Gallery(store)
    gallery.write()
    gallery.write()
    assert listed.count("a") == 1 and listed.count("b") == 2  # the finished job's folder is listed once
    stamp = (tmp_path / "a").stat().st_mtime_ns + 10**9  # a later file, as serve's baked textured.glb
    (tmp_path / "a" / "textured.glb").write_bytes(b"glb")
    os.utime(tmp_path / "a", ns=(stamp, stamp))
    page = gallery.write().read_text()
    assert listed.count("a") == 2 and "textured.glb" in page and "final.png" in page


def test_progress_reports_reach_jobs_jsonl_at_most_every_few_seconds_and_with_each_status(tmp_path, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("text2mesh.jobs.store.time.monotonic", lambda: clock[0])
    store = JobStore.open(tmp_path)
    (record,) = store.add([JobSpec(name="a", prompt="a red object", mesh="m.obj")])
    on_disk = lambda: read_records(store.jobs_file)[0].progress
    for step in range(1, 6):  # a worker's reports, 2 s apart
        clock[0] += 2.0
        store.report_progress(record.id, {"step": step, "total": 60})
        assert store.records[record.id].progress["step"] == step  # the server reads this at once
    assert on_disk()["step"] == 5  # 10 s after the last save
    clock[0] += 2.0
    store.report_progress(record.id, {"step": 6, "total": 60})
    assert on_disk()["step"] == 5 and PROGRESS_SAVE_SECONDS > 2.0
    store.update(record.id, status="done")
    assert on_disk()["step"] == 6 and read_records(store.jobs_file)[0].status == "done"
