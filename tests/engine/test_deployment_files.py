"""docker-compose.yml, the Dockerfile and .env.example agree with what settings require."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml

from tests.support.tools import require

ROOT = Path(__file__).resolve().parents[2]


def test_compose_defines_the_production_stack_with_health_checks():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "health-worker", "beat", "redis", "postgres", "migrate"} \
        <= set(services)
    for name in ("web", "worker", "health-worker", "redis", "postgres"):
        assert "healthcheck" in services[name], name
    for name in ("web", "worker", "health-worker", "beat"):
        env = services[name]["environment"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert env["DATABASE_URL"].startswith("postgres://panel:")
        assert services[name]["env_file"] == ".env"
    assert services["worker"]["command"][:4] == ["celery", "-A", "panel", "worker"]
    assert services["health-worker"]["command"][:4] == ["celery", "-A", "panel", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "panel", "beat"]
    assert {"postgres-data", "redis-data"} <= set(compose["volumes"])


def test_env_example_names_every_required_setting():
    example = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert {"DJANGO_SECRET_KEY", "PANEL_ENCRYPTION_KEYS", "DJANGO_ALLOWED_HOSTS",
            "POSTGRES_PASSWORD", "DJANGO_DEBUG"} <= names


def test_dockerfile_serves_with_gunicorn_as_an_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER panel" in dockerfile
    assert '"gunicorn", "--config", "deploy/gunicorn.conf.py", "panel.wsgi:application"' \
        in dockerfile
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile


def test_compose_runs_one_worker_per_queue_as_the_settings_name_them():
    """The engine's worker must not take health checks and the health worker must not take
    steps (panel/celery.py): each consumes exactly its queue, by the name the router uses."""
    from panel.celery import health_queue  # noqa: PLC0415 - once the settings are chosen

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]

    def queues(name: str) -> str:
        command = services[name]["command"]
        return command[command.index("-Q") + 1]

    assert queues("worker") == "celery"  # settings.CELERY_TASK_DEFAULT_QUEUE's default
    assert queues("health-worker") == health_queue("celery")


def test_only_the_reverse_proxy_is_published_and_gunicorn_trusts_just_it():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"proxy"}, "gunicorn, Redis and PostgreSQL publish nothing"
    assert services["proxy"]["image"].startswith("nginx:")
    assert set(services["proxy"]["networks"]) == {"frontend", "backend"}
    assert "frontend" not in services["web"].get("networks", ["backend"])
    assert services["web"]["environment"]["PANEL_TRUSTED_PROXIES"] == "1"
    assert all("PANEL_TRUSTED_PROXIES" not in (services[n].get("environment") or {})
               for n in ("worker", "beat")), "only web is behind the proxy"


def test_the_proxy_sets_the_forwarded_headers_itself_and_limits_sign_ins():
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert re.search(r"location ~ \^/\(accounts\|admin\)/login/ \{\s*limit_req zone=signin", nginx)
    assert "return 301 https://" in nginx


def test_the_image_build_does_not_fall_back_to_sqlite():
    assert "DATABASE_URL=postgres://" in (ROOT / "Dockerfile").read_text()


def test_docker_compose_accepts_the_file_as_the_compose_specification_defines_it(tmp_path):
    """`docker-compose config` (Compose v1, the Debian package) validates the file against
    the Compose Specification's JSON schema (compose/config/compose_spec.json) and resolves
    it (interpolation, anchors, depends_on, env_file) without a Docker engine."""
    require("docker-compose")
    (tmp_path / "docker-compose.yml").write_text((ROOT / "docker-compose.yml").read_text())
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    env = {"PATH": os.environ["PATH"], "POSTGRES_PASSWORD": "compose-check"}
    checked = subprocess.run(["docker-compose", "config"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)["services"]
    assert resolved["worker"]["environment"]["DATABASE_URL"] == \
        "postgres://panel:compose-check@postgres:5432/panel"

    broken = (ROOT / "docker-compose.yml").read_text().replace(
        "  beat:\n", "  beat:\n    replicas_typo: 2\n", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    refused = subprocess.run(["docker-compose", "config", "-q"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode != 0 and "replicas_typo" in refused.stderr, "the check checks"


def test_both_workers_scale_out_and_beat_stays_one():
    """`docker compose up --scale worker=N --scale health-worker=M`: a replica must not
    share a container name, a hostname, a Celery node name or a published port with another
    (Compose refuses to scale a service with a container_name or a fixed host port; two
    Celery nodes of one name are one node to `inspect ping`). Beat is one process."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("worker", "health-worker"):
        service = services[name]
        assert not {"container_name", "hostname", "ports"} & set(service), name
        command = service["command"]
        assert not {"-n", "--hostname"} & set(command), "the node name follows the container"
        assert not any(part.startswith("--hostname=") for part in command)
        assert "$$HOSTNAME" in " ".join(service["healthcheck"]["test"]), "pings itself"
        assert "--beat" not in command and "-B" not in command, "beat runs once, not per worker"
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
