"""Rows the tests need, made the same way the panel makes them."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model

from clusters.models import CloudAccount, Cluster, Node, NodeRole
from sandbox.aliyun.testing import Emulator

_counter = itertools.count(1)

TEST_TOKEN = "K10-test-token-that-must-never-leak-0123456789"
TEST_ACCESS_KEY_SECRET = "AkSecretThatMustNeverLeak9876543210"
#: The AccessKey id of the account make_cluster lends (an emulator gets it with the secret).
TEST_ACCESS_KEY_ID = "LTAI5tTestKey"


def make_user(username: str | None = None, **extra: Any) -> Any:
    username = username or f"user{next(_counter)}-{uuid.uuid4().hex[:6]}"
    return get_user_model().objects.create_user(username=username, password="pw-" + username,
                                                **extra)


def make_cluster(owner: Any = None, nodes: int = 0, **fields: Any) -> Cluster:
    owner = owner or make_user()
    account = CloudAccount.objects.create(
        owner=owner, name=f"account{next(_counter)}", access_key_id=TEST_ACCESS_KEY_ID,
        access_key_secret=TEST_ACCESS_KEY_SECRET,
    )
    values: dict[str, Any] = {
        "name": f"cluster{next(_counter)}", "region": "cn-hangzhou", "zone": "cn-hangzhou-h",
        "vpc_id": "vpc-test", "vswitch_id": "vsw-test", "k3s_token": TEST_TOKEN,
        **fields,
    }
    cluster = Cluster.objects.create(owner=owner, cloud_account=account, **values)
    for index in range(nodes):
        Node.objects.create(
            cluster=cluster, role=NodeRole.SERVER if index < 2 else NodeRole.AGENT,
            name=f"node{index}", private_ip=f"10.0.{index // 250}.{index % 250 + 1}",
            ssh_password=f"ssh-password-{index}-secret",
        )
    return cluster


@contextlib.contextmanager
def factories_emulator(state_dir: Path) -> Iterator[Emulator]:
    """An emulator that knows the account make_cluster lends (fast clock): what engine tests
    driving real cloud steps over made-up clusters need."""
    with Emulator(state_dir, time_scale=0.01) as emulator:
        emulator.control.add_account(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET)
        yield emulator
