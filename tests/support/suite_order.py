"""The order in which `make test`'s two processes take the test files: the longest first.

Why: `--dist loadfile` hands out whole files, one after another, to whichever process asks
next. By default pytest-xdist hands out the files with the most tests first, so the e2e
files (one or two tests, two or three minutes each) came last, and one process could still
be building clusters minutes after the other had run out of files. Longest first (the
classic LPT rule) leaves only short files for the end, so both finish at about the same time.
`make test` passes `--no-loadscope-reorder` so that xdist keeps this order.

How long a file takes is what CI's `--durations` said (FILE_SECONDS, seconds on 2 cores,
rounded); a file not listed is estimated from its markers (ESTIMATE), so a new slow file is
still handed out early. Only the order of whole files changes: the tests of a file keep their
order and run together, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

# Seconds per file (setup + call + teardown of its tests, from a junit XML's times): tests/e2e
# run alone with `-n 2 --dist loadfile` on 2 busy cores (2026-12-01), and the files timed
# alone since. Other files are left to ESTIMATE. Refresh when a file's time changes a lot:
# `pytest tests/e2e -n 2 --dist loadfile --junitxml=e2e.xml`, summing each file's testcases.
FILE_SECONDS: dict[str, float] = {
    "tests/e2e/test_destroy.py": 259,
    "tests/e2e/test_create_cluster.py": 234,
    "tests/e2e/test_embedded_etcd.py": 176,  # 233 before its two stories shared one cluster
    "tests/k3s/test_etcd.py": 85,
    "tests/e2e/test_datastore_health.py": 56,  # 79 before its two clusters shared a world
    "tests/e2e/test_upgrade.py": 75,
    "tests/e2e/test_nlb.py": 69,
    "tests/e2e/test_day2_nodes.py": 59,
    "tests/e2e/test_bought_cluster.py": 55,
    "tests/e2e/test_rds_pgsql.py": 37,  # 55 before its two clusters shared a world
    "tests/e2e/test_api_cli.py": 51,
    "tests/e2e/test_browser_create.py": 50,
    "tests/e2e/test_k3s_pinning.py": 46,
    "tests/e2e/test_api_allowlist.py": 44,
    "tests/e2e/test_datastore_tls.py": 34,
    "tests/e2e/test_worker_crash.py": 33,
    "tests/e2e/test_role_credentials.py": 31,
    "tests/e2e/test_worker_crash_instances.py": 28,
    "tests/e2e/test_cloud_restart.py": 27,
    "tests/e2e/test_hostile_output.py": 24,
    "tests/e2e/test_install_forensics.py": 19,
    "tests/e2e/test_own_mysql.py": 16,
}

# A file not in FILE_SECONDS: this many seconds per test, by its slowest marker.
ESTIMATE = {"slow": 15.0, "lab": 2.0, "": 0.1}


def file_of(item: pytest.Item) -> str:
    """The file an item belongs to, as xdist's loadfile names its work units."""
    return item.nodeid.split("::", 1)[0]


def item_estimate(item: pytest.Item) -> float:
    for marker, seconds in ESTIMATE.items():
        if not marker or item.get_closest_marker(marker):
            return seconds
    return ESTIMATE[""]


def file_seconds(items: Sequence[pytest.Item]) -> dict[str, float]:
    """Each file's expected seconds: measured, else estimated from its tests' markers."""
    estimated: dict[str, float] = {}
    for item in items:
        name = file_of(item)
        estimated[name] = estimated.get(name, 0.0) + item_estimate(item)
    return {name: FILE_SECONDS.get(name, seconds) for name, seconds in estimated.items()}


def longest_files_first(items: list[pytest.Item]) -> None:
    """Reorder `items` in place: whole files, the longest first (ties: collection order);
    inside a file the order is untouched."""
    seconds = file_seconds(items)
    first_seen = {name: index for index, name in
                  enumerate(dict.fromkeys(file_of(item) for item in items))}
    items.sort(key=lambda item: (-seconds[file_of(item)], first_seen[file_of(item)]))
