"""An RDS parameter task against a real MariaDB: all of it reaches the server, or none of it.

Why a test of its own: the API refuses every value outside a parameter's CheckingCode, so a
value the server itself refuses cannot be sent through the SDK; here the task is given one
directly (as if RDS's check and the server disagreed) and must fail the way RDS does: the
running values stay as they were, the log says Failed, nothing is retried, my.cnf is kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.rds import config as rds_config
from sandbox.aliyun.rds import parameters
from sandbox.aliyun.rds.runtime import runtime_of

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_a_value_the_server_refuses_fails_the_task_and_changes_nothing(tmp_path: Path) -> None:
    cloud = Cloud(str(tmp_path / "state"))
    runtime = runtime_of(cloud)
    record = {"id": "rm-paramtask00000001", "engine_version": "5.7",
              "parameters": {**parameters.defaults_for("5.7"), "innodb_large_prefix": "OFF"},
              "pending_parameters": {}, "parameters_due": None, "parameter_log": []}
    runtime.provision(record, background=False)
    try:
        server = runtime.instances[record["id"]].server
        queued = {"interactive_timeout": "600", "wait_timeout": "soon",
                  "innodb_large_prefix": "ON"}
        record["pending_parameters"] = dict(queued)
        record["parameters_due"] = 0.0
        record["parameter_log"] = [
            {"name": name, "old": record["parameters"][name], "new": value, "at": 0.0,
             "status": rds_config.SYNCING} for name, value in queued.items()]

        rds_config._apply_dynamic(cloud, record)

        assert (record["parameters"]["interactive_timeout"], record["parameters"][
            "wait_timeout"], record["parameters"]["innodb_large_prefix"]) == ("7200", "86400",
                                                                             "OFF")
        assert record["pending_parameters"] == {} and record["parameters_due"] is None
        assert {e["status"] for e in record["parameter_log"]} == {rds_config.FAILED}
        # The value set before the refusal was put back, the 767-byte limit still holds.
        assert server.global_variable("interactive_timeout") == "7200"
        assert server.global_variable("wait_timeout") == "86400"
        assert server.global_variable("innodb_default_row_format") == "compact"
        config = server.config_file.read_text()
        assert "interactive_timeout=7200" in config and "soon" not in config

        # A task the server accepts goes through, numbers as numbers.
        record["pending_parameters"] = {"wait_timeout": "120", "innodb_large_prefix": "ON"}
        rds_config._apply_dynamic(cloud, record)
        assert record["parameters"]["wait_timeout"] == "120"
        assert server.global_variable("wait_timeout") == "120"
        assert server.global_variable("innodb_default_row_format") == "dynamic"
    finally:
        runtime.destroy(record["id"])
