"""gunicorn's settings for the panel's web process (https://docs.gunicorn.org/en/stable/settings.html).

Why a file: the Dockerfile's CMD and benchmarks/ui_latency.py both load it, so the page
benchmark measures the server production runs, not a copy of its flags that can drift.

Workers and threads: the pages are CPU-bound Python (templates, the ORM) between short
PostgreSQL queries, so about one process per core serves them; a few threads per process
keep a worker answering while one of its requests waits (a slow query, an Alibaba Cloud or
SSH call behind "Test connection" and the wizard's checks, a log download), where a sync
worker would stand still. Django and psycopg are thread-safe (a connection per thread).
Each setting may be overridden from the environment of the web container.
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# gunicorn itself reads WEB_CONCURRENCY as its default worker count; the panel's default is 3.
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
accesslog = "-"
