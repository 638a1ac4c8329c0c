"""``text2mesh serve``: a web page and an HTTP API over the job system (FastAPI + uvicorn)."""
