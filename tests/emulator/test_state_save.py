"""The emulator's state file: a call that changed nothing writes nothing (the shortcut that
keeps a Describe* at 500 resources cheap, sandbox/aliyun/gateway/state.py), and every real
change is written, whatever part of the document it touches."""

from __future__ import annotations

import json
from pathlib import Path

from sandbox.aliyun.gateway.state import STATE_FILE, State


def on_disk(directory: Path) -> dict:
    return json.loads((directory / STATE_FILE).read_text())


def test_nothing_changed_writes_nothing_and_every_real_change_is_written(
        tmp_path: Path) -> None:
    state = State(tmp_path)
    assert state.save() is True  # an empty state is still written once
    state.bucket("rds")["instances"] = {"rm-1": {"status": "Running", "storage": 20,
                                                 "tags": [], "ha": False}}
    assert state.save() is True
    written = (tmp_path / STATE_FILE).stat().st_mtime_ns
    assert state.save() is False  # a Describe*: nothing changed
    assert (tmp_path / STATE_FILE).stat().st_mtime_ns == written

    record = state.data["rds"]["instances"]["rm-1"]
    changes = [
        lambda: record.update(status="DBInstanceClassChanging"),  # a value, in place
        lambda: record.update(storage=40),
        lambda: record["tags"].append({"Key": "k", "Value": "v"}),  # a nested list
        lambda: record.update(ha=None),  # false to null: equal in no way
        lambda: record.pop("ha"),  # a key removed
        lambda: state.data["rds"]["instances"].update({"rm-2": {}}),  # a key added
    ]
    for change in changes:
        change()
        assert state.save() is True
        assert on_disk(tmp_path) == state.data
        assert state.save() is False
    # A state loaded from the file compares against what it loaded.
    again = State(tmp_path)
    assert again.save() is False
    again.data["rds"]["instances"]["rm-1"]["storage"] = 60
    assert again.save() is True and on_disk(tmp_path)["rds"]["instances"]["rm-1"]["storage"] == 60


def test_a_rollback_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    state = State(tmp_path)
    state.bucket("slb")["lb-1"] = {"status": "active"}
    state.save()
    state.data["slb"]["lb-1"]["status"] = "inactive"
    state.rollback()
    assert state.save() is False
    assert on_disk(tmp_path)["slb"]["lb-1"]["status"] == "active"
    state.data["slb"]["lb-1"]["status"] = "inactive"
    assert state.save() is True
    assert on_disk(tmp_path)["slb"]["lb-1"]["status"] == "inactive"
