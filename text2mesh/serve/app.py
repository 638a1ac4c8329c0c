"""The web app and HTTP API over a :class:`~text2mesh.jobs.service.JobService`.

FastAPI (with uvicorn) rather than Gradio: the job layer already holds the state, queue and
files, so what is needed is a small typed JSON API (FastAPI documents it at ``/docs``) and one
page of our own with a command box, a live queue and a 3D view (Google's ``<model-viewer>``,
vendored, so the page works offline). Nothing a client sends becomes a path: uploads are stored
under generated names, file requests are resolved inside the job's own run folder.
"""

from __future__ import annotations

import io
import json
import secrets
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..config import CONFIG_DIR, parse_setting
from ..errors import ConfigError, Text2MeshError
from ..jobs.service import JobService
from ..jobs.spec import JobSpec
from ..jobs.store import JobRecord
from .command import MAX_PROMPT, CommandError, parse_command

STATIC = Path(__file__).resolve().parent / "static"
MESH_DIR = CONFIG_DIR.parent / "meshes"
UPLOADS = "uploads"
TOKEN_COOKIE = "text2mesh_token"
MAX_ITERS = 20_000
TEXTURE_SIZE = 1024  # of the textured GLB download


@dataclass
class ServeSettings:
    """Defaults for jobs that do not say otherwise, and the server's limits."""

    preset: str | None = None
    clip_model: str | None = None
    set: dict[str, Any] = field(default_factory=dict)
    token: str | None = None
    max_upload_mb: float = 200.0


def shipped_meshes() -> dict[str, Path]:
    """Shipped meshes by name (file stem)."""
    return {p.stem: p for p in sorted(MESH_DIR.glob("*.obj"))} if MESH_DIR.is_dir() else {}


def _fail(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


def job_json(service: JobService, record: JobRecord) -> dict[str, Any]:
    """A job as the API shows it."""
    files = service.store.files(record)
    progress_pictures = [f for f in files if f.startswith("renders/progress_")]
    spec = record.spec
    return {
        "id": record.id,
        "status": record.status,
        "kind": spec.kind,
        "prompt": spec.prompt,
        "mesh": Path(spec.mesh).name if spec.mesh else None,
        "preset": spec.preset,
        "seed": spec.seed,
        "iters": spec.iters,
        "set": dict(spec.set),
        "progress": record.progress,
        "error": record.error,
        "attempt": record.attempt,
        "started": record.started,
        "ended": record.ended,
        "files": files,
        "latest_picture": progress_pictures[-1] if progress_pictures else None,
    }


def _settings_dict(text: str | None) -> dict[str, Any]:
    """``set`` as JSON ({"optim.iters": 60}) or KEY=VALUE;KEY=VALUE (a bad one: ConfigError, answered 400)."""
    if not text or not text.strip():
        return {}
    if text.strip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise _fail(400, f"set: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise _fail(400, "set: expected a JSON object of dotted fields")
        return value
    return dict(parse_setting(item.strip(), "set") for item in text.split(";") if item.strip())


def check_request(prompt: str | None, iters: int | None) -> str:
    """The request's prompt, stripped; HTTP 400 in one line for a missing or overlong prompt or
    iterations out of range (checked before an upload is read)."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise _fail(400, "give a prompt")
    if len(prompt) > MAX_PROMPT:
        raise _fail(400, f"the prompt is {len(prompt)} characters; keep it under {MAX_PROMPT}")
    if iters is not None and not 1 <= iters <= MAX_ITERS:
        raise _fail(400, f"iters must be between 1 and {MAX_ITERS}")
    return prompt


def make_spec(settings: ServeSettings, *, prompt: str, mesh: str | None, preset: str | None = None,
              seed: int | None = None, iters: int | None = None, overrides: dict[str, Any] | None = None) -> JobSpec:
    """A job from a request and the server's defaults; HTTP 400 with one line when it is not valid."""
    prompt = check_request(prompt, iters)
    # a page shows GLBs; a picture for a page need not be 512²
    served = {"output.formats": ["glb", "ply", "obj"]} if mesh else {"imagine.size": [256, 256]}
    spec = JobSpec(name="", prompt=prompt, mesh=mesh, preset=preset or settings.preset,
                   clip_model=settings.clip_model, seed=seed, iters=iters,
                   set=tuple({**served, **settings.set, **(overrides or {})}.items()))
    try:
        spec.config()
    except Text2MeshError as exc:
        raise _fail(400, str(exc)) from None
    return spec


async def _save_upload(upload: UploadFile, folder: Path, limit: int) -> Path:
    """Store an upload under a generated name (its suffix kept when it is a mesh format), up to
    ``limit`` bytes, and check it is a mesh with faces; HTTP 4xx otherwise, nothing left behind."""
    from ..mesh.files import SUPPORTED_SUFFIXES

    suffix = Path(upload.filename or "").suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise _fail(415, f"upload a mesh file ({', '.join(SUPPORTED_SUFFIXES)}), not {suffix or 'a file without a suffix'}")
    path = folder / f"{uuid.uuid4().hex}{suffix}"
    size = 0
    try:
        with path.open("wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    raise _fail(413, f"the upload is over the {limit / 2**20:.0f} MB limit")
                out.write(chunk)
        _check_mesh(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _check_mesh(path: Path) -> None:
    from ..mesh.io import load_trimesh

    try:
        mesh = load_trimesh(path)
    except Text2MeshError as exc:
        raise _fail(400, f"not a usable mesh: {exc}") from None
    if len(mesh.faces) == 0:
        raise _fail(400, "not a usable mesh: it has no faces")


def textured_glb(run: Path, size: int) -> Path:
    """``<mesh>_stylized_texture<size>.glb`` in the run folder, baked from the style field if missing
    (what ``text2mesh export RUN --texture SIZE`` writes); the run is loaded only to bake it."""
    from ..export.runs import export_name

    baked = sorted(run.glob(export_name("*", "glb", texture=size)))
    if baked:
        return baked[0]
    from ..api import load_run
    from ..export.runs import export_run

    result = load_run(run)
    path = run / export_name(result.prepared.source, "glb", texture=size)
    export_run(result, path, fmt="glb", texture=size)
    return path


def _safe_file(service: JobService, record: JobRecord, name: str) -> Path:
    """The file ``name`` inside the job's run folder, or HTTP 400/404 (no way out of the folder)."""
    if not name or name.startswith(("/", "\\")) or ".." in Path(name).parts or "\\" in name or ":" in name:
        raise _fail(400, f"bad file name {name!r}: give a name from the job's files")
    run = service.store.run_path(record).resolve()
    path = (run / name).resolve()
    if not path.is_relative_to(run) or not path.is_file():
        raise _fail(404, f"job {record.id} has no file {name!r}")
    return path


def create_app(service: JobService, settings: ServeSettings) -> FastAPI:
    """The FastAPI app: the page at ``/``, the API under ``/api`` (schema at ``/docs``)."""
    app = FastAPI(title="text2mesh", description="Text-driven 3D mesh stylization jobs.", version="1")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    uploads = service.store.root / UPLOADS
    uploads.mkdir(exist_ok=True)
    limit = int(settings.max_upload_mb * 2**20)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if settings.token:
            given = (request.headers.get("authorization", "").removeprefix("Bearer ").strip()
                     or request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE) or "")
            if not secrets.compare_digest(given.encode(), settings.token.encode()):
                return JSONResponse({"detail": "a token is required: add ?token=... or 'Authorization: Bearer ...'"},
                                    status_code=401)
        response = await call_next(request)
        if settings.token and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    def get_record(job_id: str) -> JobRecord:
        record = service.record(job_id)
        if record is None:
            raise _fail(404, f"no job {job_id!r}")
        return record

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (STATIC / "index.html").read_text()

    @app.get("/api/meshes")
    def meshes() -> dict:
        """The shipped meshes a job can name."""
        return {"meshes": list(shipped_meshes())}

    @app.post("/api/jobs")
    async def submit(
        prompt: Annotated[str, Form()],
        mesh: Annotated[UploadFile | None, File()] = None,
        mesh_name: Annotated[str | None, Form()] = None,
        preset: Annotated[str | None, Form()] = None,
        seed: Annotated[int | None, Form()] = None,
        iters: Annotated[int | None, Form()] = None,
        set: Annotated[str | None, Form()] = None,
        image: Annotated[bool, Form()] = False,
    ) -> dict:
        """Queue a job: a ``mesh`` upload or the ``mesh_name`` of a shipped mesh (or ``image``:
        a picture), a ``prompt``, optional ``preset``, ``seed``, ``iters`` and ``set`` (JSON or
        KEY=VALUE;KEY=VALUE). Answers ``{"id": ...}``."""
        check_request(prompt, iters)
        overrides = _settings_dict(set)
        has_upload = mesh is not None and bool(mesh.filename)
        if image:
            path = None
        elif has_upload:
            path = None  # checked and stored below, once the rest of the request is valid
        elif mesh_name:
            found = shipped_meshes().get(mesh_name)
            if found is None:
                raise _fail(400, f"no shipped mesh {mesh_name!r}; one of: {', '.join(shipped_meshes())}")
            path = str(found)
        else:
            raise _fail(400, "give a mesh upload, a mesh_name of a shipped mesh, or image=true")
        if has_upload and not image:
            path = str(await _save_upload(mesh, uploads, limit))
        try:
            spec = make_spec(settings, prompt=prompt, mesh=path, preset=preset, seed=seed, iters=iters,
                             overrides=overrides)
        except HTTPException:
            if has_upload and not image:
                Path(path).unlink()  # nothing is kept of a refused request
            raise
        return {"id": service.submit(spec).id}

    @app.post("/api/command")
    async def command(request: Request) -> dict:
        """``{"text": "generate a red vase"}``: the trigger phrase starts a job (see the page)."""
        try:
            body = await request.json()
        except ValueError:
            raise _fail(400, 'send JSON: {"text": "generate a red vase"}') from None
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise _fail(400, 'send JSON: {"text": "generate a red vase"}')
        try:
            parsed = parse_command(text, list(shipped_meshes()))
        except CommandError as exc:
            raise _fail(422, str(exc)) from None
        path = None if parsed.mesh is None else str(shipped_meshes()[parsed.mesh])
        spec = make_spec(settings, prompt=parsed.prompt, mesh=path)
        record = service.submit(spec)
        return {"id": record.id, "prompt": parsed.prompt, "mesh": parsed.mesh}

    @app.get("/api/jobs")
    def jobs() -> dict:
        """Every job, newest last."""
        return {"jobs": [job_json(service, r) for r in service.records()]}

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> dict:
        return job_json(service, get_record(job_id))

    @app.get("/api/jobs/{job_id}/files/{name:path}")
    def job_file(job_id: str, name: str):
        return FileResponse(_safe_file(service, get_record(job_id), name))

    @app.get("/api/jobs/{job_id}/archive")
    def archive(job_id: str):
        """The job's run folder as a zip."""
        record = get_record(job_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in service.store.files(record):
                zf.write(service.store.run_path(record) / name, f"{record.id}/{name}")
        headers = {"Content-Disposition": f'attachment; filename="{record.id}.zip"'}
        return Response(buffer.getvalue(), media_type="application/zip", headers=headers)

    @app.get("/api/jobs/{job_id}/textured.glb")
    def textured(job_id: str, size: int = TEXTURE_SIZE):
        """The finished mesh as a GLB with a baked ``size``² UV texture (baked on the first request,
        then kept in the run folder)."""
        record = get_record(job_id)
        if record.spec.kind != "stylize" or record.status != "done":
            raise _fail(409, f"job {job_id} is {record.status}; a textured GLB needs a finished mesh job")
        if not 64 <= size <= 4096:
            raise _fail(400, "size must be between 64 and 4096")
        return FileResponse(textured_glb(service.store.run_path(record), size))

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel(job_id: str) -> dict:
        get_record(job_id)
        return job_json(service, service.cancel(job_id))

    return app


def serve_defaults(settings: tuple[str, ...]) -> dict[str, Any]:
    """``--set KEY=VALUE`` flags as a dotted dict (validated by the first job's config)."""
    return dict(parse_setting(item) for item in settings)
