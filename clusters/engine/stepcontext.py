"""What a step handler is given: its run, cluster, memory, log, and secret redaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clusters.core.redaction import Redactor
from clusters.engine.steplog import StepLog
from clusters.models import Cluster, Run, Step


@dataclass
class StepContext:
    """The step's view of the world for one attempt.

    `memo` is the step's saved result: it survives waits and retries, so a step can record
    progress ("instance id so far") and pick up where the previous attempt stopped.
    """

    step: Step
    run: Run
    cluster: Cluster
    _secrets: list[str] = field(default_factory=list)
    _redactor: Redactor | None = None
    log: StepLog = field(init=False)

    def __post_init__(self) -> None:
        self.log = StepLog(self.step.pk, self.redact)
        # Built now, not at the first line logged: building it is what tells the logging
        # filter (clusters.core.redaction) about these secrets, before any library logs one.
        self._redactor = Redactor(self._secrets)

    @property
    def memo(self) -> dict[str, Any]:
        return self.step.result

    @property
    def args(self) -> dict[str, Any]:
        return self.step.args

    def say(self, text: str, stream: str = "info", cut: int = 0) -> None:
        """Log `text`; `cut`: characters already dropped from its end (clusters/adapters/
        ssh.py's LINE_HOLD), counted in the line's "[cut N characters]"."""
        self.log.write(text, stream, cut=cut)

    def result_of(self, key: str) -> dict[str, Any]:
        """The result of an earlier step of this run (which the graph made a dependency)."""
        return dict(
            Step.objects.filter(run_id=self.run.pk, key=key).values_list("result", flat=True)
            .first() or {}
        )

    def register_secret(self, value: str) -> None:
        """Mask a secret learned during this step in everything it logs or raises."""
        if value:
            self._secrets.append(value)
            # Only the new secret is compiled (Redactor.extended), not all the step knows.
            self._redactor = (Redactor(self._secrets) if self._redactor is None
                              else self._redactor.extended([value]))

    def redact(self, text: str) -> str:
        if self._redactor is None:
            self._redactor = Redactor(self._secrets)
        return self._redactor(text)
