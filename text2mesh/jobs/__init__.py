"""Many jobs: manifests, the job store, executors (local processes, Ray) and the batch driver.

``batch`` (CLI and API) and ``serve`` are two front doors to this one job layer; neither Ray nor
a web framework is imported until an executor or a server needs it.
"""

from .batch import batch
from .spec import JobSpec, jobs_from_mapping, load_manifest
from .store import JobRecord, JobStore, read_records

__all__ = ["JobRecord", "JobSpec", "JobStore", "batch", "jobs_from_mapping", "load_manifest", "read_records"]
