"""The conformance rules: what the panel sends and reads, and what the emulator answers,
against the V2 models of the action. Every problem names the action and the field path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.conformance import v2
from tests.conformance.recording import Observation, Path

# The adapter's shared helpers read some fields under two spellings because products differ:
# `pages()` reads TotalCount, falling back to TotalRecordCount (RDS); `tags_of()` reads
# TagKey/TagValue (SLB) falling back to Key/Value (RDS). Such a read is fine when one
# spelling of its group is known to V2 at the same place.
FALLBACK_READS: tuple[frozenset[str], ...] = (
    frozenset({"TotalCount", "TotalRecordCount"}),
    frozenset({"TagKey", "Key"}),
    frozenset({"TagValue", "Value"}),
)

# Fields the emulator returns that the V2 model lacks, allowed ONLY where a source shows the
# real API returns them: {(product, action): {"dotted.path": "source"}}. Empty on purpose.
EXTRA_FIELDS_ALLOWED: dict[tuple[str, str], dict[str, str]] = {}


def missing_scenarios(actions: Iterable[Any], scenarios: Iterable[tuple[str, str]]) -> list[str]:
    """Actions the adapter calls that no scenario covers, each named with where it is used."""
    covered = set(scenarios)
    return [f"{a.product} {a.action} (version {a.version}, used at {a.source})"
            for a in actions if a.key not in covered]


def check_requests(product: str, version: str, action: str,
                   calls: Iterable[dict[str, Any]]) -> list[str]:
    """Each captured query (the emulator's call log) against `<Action>Request`."""
    request = v2.model_class(product, version, f"{action}Request")
    if request is None:
        return [f"V2 {v2.package_for(product, version)} has no {action}Request"]
    shrink = v2.model_class(product, version, f"{action}ShrinkRequest")
    problems: list[str] = []
    for call in calls:
        problems += v2.check_request(request, shrink, call["params"])
    return problems


def check_answers(product: str, version: str, action: str,
                  observations: Iterable[Observation]) -> list[str]:
    """Each answer and what the panel read of it against `<Action>ResponseBody`."""
    body_model = v2.model_class(product, version, f"{action}ResponseBody")
    if body_model is None:
        return [f"V2 {v2.package_for(product, version)} has no {action}ResponseBody"]
    allowed = EXTRA_FIELDS_ALLOWED.get((product, action), {})
    problems: list[str] = []
    for observation in observations:
        problems += [p for p in v2.unknown_fields(body_model, observation.body)
                     if _field_of(p) not in allowed]
        problems += _check_reads(body_model, observation)
    return problems


def _field_of(problem: str) -> str:
    return problem.removeprefix("response field ").split(":", 1)[0]


def _check_reads(body_model: Any, observation: Observation) -> list[str]:
    problems: list[str] = []
    round_tripped, why = v2.round_trip(body_model, observation.body)
    if round_tripped is None:
        problems.append(f"V2 {body_model.__name__}.from_map cannot parse the emulator's "
                        f"answer: {why}")
    for path in sorted(observation.reads):
        where = v2.dotted(path)
        kind, why = v2.field_at(body_model, path)
        if kind is None:
            if not _fallback_known(body_model, path):
                problems.append(f"the panel reads {where}: {why}")
            continue
        present = v2.values_at(observation.body, path)
        for value in present:
            if not v2.json_type_matches(value, kind):
                problems.append(f"the panel reads {where}: V2 types it {kind.describe()}, the "
                                f"emulator returns {v2.json_type_name(value)}")
        if round_tripped is not None:
            scalars = [v for v in present if not isinstance(v, dict | list)]
            kept = [v for v in v2.values_at(round_tripped, path)
                    if not isinstance(v, dict | list)]
            if scalars != kept:
                problems.append(f"the panel reads {where}: lost in V2 from_map→to_map "
                                f"({scalars!r} became {kept!r})")
    return problems


def _fallback_known(body_model: Any, path: Path) -> bool:
    for group in FALLBACK_READS:
        if path[-1] in group:
            return any(v2.field_at(body_model, (*path[:-1], other))[0] is not None
                       for other in group - {path[-1]})
    return False


def dedupe(problems: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(problems))
