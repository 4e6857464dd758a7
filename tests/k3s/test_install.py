"""Our install script against the artifact server, on scratch hosts with a test supervisor."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.k3s.artifacts import ArtifactServer
from sandbox.k3s.testing import ScratchHost, ScratchMariaDB
from tests.support.k3s_nodes import install_supervisor, kubectl, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.lab]

PATH = "/run/testbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def install(host: ScratchHost, artifacts: ArtifactServer, env: dict[str, str],
            args: str = "", mirror: bool = False):
    install_supervisor(host)
    url = (f"http://{artifacts.host}:{artifacts.port}/k3s/k3s-install.sh" if mirror
           else artifacts.install_script_url)
    full_env = {"PATH": PATH, **artifacts.install_env(mirror=mirror), **env}
    return host.run(["sh", "-c", f"curl -sfL {url} | sh -s - {args}"], env=full_env)


def test_server_install_writes_k3s_files_and_starts(
        hosts: Callable[[str], ScratchHost], artifacts: ArtifactServer,
        mariadb: ScratchMariaDB) -> None:
    host = hosts("inst-server")
    result = install(host, artifacts, {
        "K3S_TOKEN": "install-token", "K3S_DATASTORE_ENDPOINT": mariadb.endpoint("k3s_inst"),
        "INSTALL_K3S_VERSION": "v1.31.4+k3s1"},
        "server --bind-address 127.73.4.11 --tls-san 10.0.0.100")
    assert result.returncode == 0, result.stderr
    assert "[INFO]  Using v1.31.4+k3s1 as release" in result.stdout
    assert "[INFO]  Verifying binary download" in result.stdout

    env_file = Path(host.path("/etc/systemd/system/k3s.service.env"))
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "K3S_TOKEN='install-token'" in env_file.read_text()
    assert "K3S_DATASTORE_ENDPOINT=" in env_file.read_text()
    unit = Path(host.path("/etc/systemd/system/k3s.service")).read_text()
    assert "Type=notify" in unit and "EnvironmentFile=-/etc/systemd/system/k3s.service.env" in unit
    assert "ExecStart=/usr/local/bin/k3s \\\n    server \\\n\t'--bind-address' \\\n" in unit
    for name in ("k3s", "k3s-killall.sh", "k3s-uninstall.sh", "crictl", "ctr"):
        assert os.path.lexists(host.path(f"/usr/local/bin/{name}")), name
    assert os.readlink(host.path("/usr/local/bin/crictl")) == "k3s"

    kubeconfig = host.path("/etc/rancher/k3s/k3s.yaml")
    wait_until(lambda: os.path.exists(kubeconfig), 30, "k3s never wrote its kubeconfig")
    wait_until(lambda: kubectl(kubeconfig, "get", "--raw", "/readyz").stdout == "ok", 30,
               "API never became ready")
    nodes = host.run(["k3s", "kubectl", "get", "nodes"], env={"PATH": PATH})
    assert "inst-server   Ready    control-plane,master" in nodes.stdout
    assert "v1.31.4+k3s1" in nodes.stdout

    uninstall = host.run(["/usr/local/bin/k3s-uninstall.sh"], env={"PATH": PATH})
    assert uninstall.returncode == 0, uninstall.stderr
    for directory in ("/usr/local/bin", "/etc/systemd/system", "/etc/rancher",
                      "/var/lib/rancher"):
        assert os.listdir(host.path(directory)) == [], directory
    assert not [line for line in host.command_lines() if "k3s server" in line]


def test_skip_start_and_mirror_channel(hosts: Callable[[str], ScratchHost],
                                       artifacts: ArtifactServer) -> None:
    host = hosts("inst-mirror")
    result = install(host, artifacts, {"INSTALL_K3S_SKIP_START": "true",
                                       "INSTALL_K3S_CHANNEL": "v1.28", "K3S_TOKEN": "x"},
                     "server", mirror=True)
    assert result.returncode == 0, result.stderr
    assert "Using v1.28.8+k3s1 as release" in result.stdout
    assert f"{artifacts.host}:{artifacts.port}/k3s/v1.28.8-k3s1/k3s" in result.stdout
    assert "systemd: Starting" not in result.stdout
    time.sleep(1)
    assert not os.path.exists(host.path("/run/test-supervisor/k3s.service.pid"))
    version = host.run(["/usr/local/bin/k3s", "--version"])
    assert version.stdout.startswith("k3s version v1.28.8+k3s1")


def test_official_channel_redirect_resolves_stable(hosts: Callable[[str], ScratchHost],
                                                   artifacts: ArtifactServer) -> None:
    host = hosts("inst-chan")
    result = install(host, artifacts, {"INSTALL_K3S_SKIP_ENABLE": "true"}, "server")
    assert result.returncode == 0, result.stderr
    assert "Finding release for channel stable" in result.stdout
    assert "Using v1.36.4+k3s1 as release" in result.stdout


def test_agent_default_and_its_fatal_messages(hosts: Callable[[str], ScratchHost],
                                              artifacts: ArtifactServer) -> None:
    host = hosts("inst-agent")
    no_token = install(host, artifacts, {"K3S_URL": "https://10.0.0.100:6443"})
    assert no_token.returncode == 1
    assert ("[ERROR]  Defaulted k3s exec command to 'agent' because K3S_URL is defined, but "
            "K3S_TOKEN or K3S_TOKEN_FILE is not defined.") in no_token.stderr
    http = install(host, artifacts, {"K3S_URL": "http://10.0.0.100:6443", "K3S_TOKEN": "t"})
    assert "Only https:// URLs are supported for K3S_URL (have http://10.0.0.100:6443)" \
        in http.stderr
    agent = install(host, artifacts, {"K3S_URL": "https://10.0.0.100:6443", "K3S_TOKEN": "t",
                                      "INSTALL_K3S_SKIP_START": "true"})
    assert agent.returncode == 0, agent.stderr
    unit = Path(host.path("/etc/systemd/system/k3s-agent.service")).read_text()
    assert "ExecStart=/usr/local/bin/k3s \\\n    agent \\\n" in unit
    assert os.path.exists(host.path("/usr/local/bin/k3s-agent-uninstall.sh"))


def test_unknown_version_fails_download(hosts: Callable[[str], ScratchHost],
                                        artifacts: ArtifactServer) -> None:
    host = hosts("inst-404")
    result = install(host, artifacts, {"INSTALL_K3S_VERSION": "v1.99.0+k3s1"}, "server")
    assert result.returncode == 1
    assert "[ERROR]  Download failed" in result.stderr
    assert not os.path.exists(host.path("/usr/local/bin/k3s"))
