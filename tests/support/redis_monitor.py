"""Watching what really reaches the broker, with Redis MONITOR."""

from __future__ import annotations

import base64
import json
import threading

from tests.support.services import redis_client


class RedisMonitor:
    """Records every command the broker receives (what Celery really sends), via MONITOR.

    MONITOR sees the whole server: with two test processes on one Redis, the other's commands
    too. `commands` keeps them all (no secret may reach the broker from either); the task
    messages are only those pushed to `queue`, this session's, and its health queue."""

    def __init__(self, url: str, queue: str) -> None:
        from panel.celery import health_queue  # noqa: PLC0415 - once the settings are chosen

        self.queues = {queue, health_queue(queue)}
        self.commands: list[str] = []
        self._client = redis_client(url)
        self._ready = threading.Event()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()
        self._ready.wait(5)

    def _watch(self) -> None:
        with self._client.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                self.commands.append(command["command"])
                if self._stop.is_set():
                    return

    def stop(self) -> None:
        self._stop.set()
        self._client.ping()  # wakes the monitor loop

    def decoded_task_bodies(self) -> list[str]:
        """The bodies of the task messages Celery pushed to this session's queues
        (LPUSH queue <json envelope>)."""
        bodies = []
        for command in self.commands:
            verb, _, rest = command.partition(" ")
            key, _, value = rest.partition(" ")
            if verb.upper() != "LPUSH" or key not in self.queues:
                continue
            envelope = json.loads(value)
            bodies.append(base64.b64decode(envelope["body"]).decode())
        return bodies
