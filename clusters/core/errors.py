"""The two kinds of failure the step engine tells apart.

Why: the engine retries a transient failure with backoff inside the step's budget, and
fails a step at once on a permanent one, showing its message to a person. Adapters
(Aliyun, SSH, MySQL) translate what they catch into one of these, so steps and the engine
never reason about SDK- or socket-specific exceptions.
"""

from __future__ import annotations


class StepError(Exception):
    """Base for failures a step reports; `message` must be safe to show (no secrets).

    `http_status` is the status of the answer the remote service gave with its error code;
    None when no answer came (timeout, refused or dropped connection) or none applies. It is
    what tells "Alibaba Cloud refused this create" from "we do not know what happened".
    """

    def __init__(self, message: str, *, code: str = "", request_id: str = "",
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.request_id = request_id
        self.http_status = http_status

    def __str__(self) -> str:
        details = []
        if self.code:
            details.append(f"code {self.code}")
        if self.request_id:
            details.append(f"RequestId {self.request_id}")
        return f"{self.message} ({', '.join(details)})" if details else self.message


class TransientError(StepError):
    """Worth retrying as it is: throttling, a busy resource, a dropped connection."""


class PermanentError(StepError):
    """Retrying the same thing will not help: a person must act (quota, bad input, auth)."""
