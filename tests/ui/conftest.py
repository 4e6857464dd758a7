"""Fixtures of the browser-experience tests: users, logged-in clients, the wizard's emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clusters.interface.wizard import WizardState
from clusters.models import CloudAccount
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.support.factories import make_user


@pytest.fixture
def user(db: Any) -> Any:
    return make_user()


@pytest.fixture
def client_for(db: Any) -> Any:
    def login(user: Any, **kwargs: Any) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        return client

    return login


@pytest.fixture
def owner_client(user: Any, client_for: Any) -> Client:
    return client_for(user)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The Aliyun OpenAPI emulator (sandbox/aliyun) with a seeded loopback VPC."""
    with Emulator(tmp_path_factory.mktemp("emulator")) as emu:
        yield emu


@pytest.fixture(scope="session")
def artifacts() -> Iterator[ArtifactServer]:
    """The offline K3s artifact server (releases, channels, China-mirror layout)."""
    with ArtifactServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def cloud(emulator: Emulator, settings: Any) -> Emulator:
    """Point the panel's SDK calls at the emulator for one test."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = emulator.endpoint
    return emulator


@pytest.fixture
def at_datastore(user: Any, owner_client: Client, cloud: Emulator) -> Client:
    """A client whose wizard has its account and network answered, on the emulator (the
    datastore step asks RDS which classes the zone sells)."""
    account = CloudAccount.objects.create(owner=user, name="main",
                                          access_key_id=cloud.access_key_id,
                                          access_key_secret=cloud.access_key_secret)
    session = owner_client.session
    state = WizardState(session)
    state.put("account", {"name": "web", "cloud_account": account.pk,
                          "region": cloud.vpc["region_id"]})
    # The emulator's zone (RDS is asked about it); the host tests' addresses are 10.0.x.
    state.put("network", {"zone": cloud.vswitch["zone_id"], "vpc": "vpc-1", "vswitch": "vsw-1",
                          "slb_address_type": "intranet", "vpc_cidr": "10.0.0.0/16",
                          "vswitch_cidr": "10.0.1.0/24"})
    session.save()
    return owner_client


@pytest.fixture
def at_hosts(at_datastore: Client) -> Client:
    """A client whose wizard is at the hosts page (an RDS datastore chosen)."""
    response = at_datastore.post(reverse("clusters:wizard-step", args=["datastore"]), {
        "kind": "rds", "rds_engine_version": "5.7", "rds_instance_class": "mysql.n2.medium.2c",
        "rds_storage_gb": 50})
    assert response.status_code == 302
    return at_datastore
