"""gunicorn's settings for the panel's web process (https://docs.gunicorn.org/en/stable/settings.html).

Why a file: the Dockerfile's CMD and benchmarks/ui_latency.py both load it, so the page
benchmark measures the server production runs, not a copy of its flags that can drift.

Why threads (gthread) and not sync workers: most pages are a few milliseconds of PostgreSQL
and 5-20 ms of Python, where either serves as well (the page benchmark could not tell them
apart on two cores), but some requests wait seconds on the network: the live DescribeRegions
check when a cloud account is added and the wizard's checks (Alibaba Cloud API calls), a
personal kubeconfig issued through the cluster's API, a whole log downloaded. A sync worker
stands still for that long, and with three of them three such requests stall every page and
every open page's one-second poll; a thread that waits gives up the GIL, so its worker's other
threads answer meanwhile. Django and psycopg are thread-safe (each thread has its own database
connection, so count workers x threads connections against PostgreSQL's max_connections).

About one worker process per core serves the CPU-bound part; each may be overridden from the
web container's environment (WEB_CONCURRENCY is also gunicorn's own name for the default).
"""

from __future__ import annotations

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "3"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
accesslog = "-"
