"""Buying one thing for a ledger row, safely again and again: look by tag, adopt, or create.

Why: a create whose answer was lost (a timeout, a killed worker between the cloud's answer and
our ledger write) leaves a row without a provider id although the cloud may have bought the
resource. Re-sending the create with the same ClientToken is safe only while Alibaba Cloud
remembers that token, and Alibaba documents no lifetime for it. So before any create is sent
for such a row, the resource is looked up by the cluster's tag (every purchase carries it,
set in the create call itself):

- exactly one tagged resource the ledger does not know yet: it is adopted (its id recorded);
- more than one: the step fails and names them all; picking one silently could leave the
  other billed and unknown, so a person decides;
- none: the create is sent with the row's ClientToken of its current generation.

The generation (CloudResource.token_generation, part of the ClientToken) moves on only when
Alibaba Cloud refused the create for certain (`errors.create_refused`: a 4xx with an error
code). After a timeout, a dropped connection or a 5xx the create may have bought something,
so the next attempt looks by tag again and re-sends the same token. Each decision is written
to the step's log.

Tags are sent in the create call (RDS CreateDBInstance and CLB CreateLoadBalancer take
Tag.N.Key/Value), so the panel itself leaves no window between buying and tagging. Whether
Alibaba Cloud attaches them in the same instant is not documented: if a lookup comes too
early to see the tag, the re-sent create still carries the earlier call's ClientToken, which
returns the resource that call bought for as long as Alibaba keeps the token.

Used by every step that buys (rds.create, slb.create; ECS instances and NLB the same way):
each passes a `Purchase` that says how to find its kind by tag and how to create one.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from clusters.adapters import cloud
from clusters.adapters.aliyun.errors import create_refused
from clusters.core.errors import PermanentError, StepError
from clusters.models import CloudResource

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter).
    from clusters.engine.stepcontext import StepContext

SENT = "creates_sent"  # attributes key: creates sent with the current token generation


@dataclass(frozen=True)
class Bought:
    """What a create answered: the provider id and what to record about it."""

    provider_id: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Purchase:
    """How to buy one kind of resource: its name in the log, its create action, how to find
    ids carrying a tag (key, value), and how to create one with a given ClientToken."""

    what: str  # "RDS instance", "SLB": for the step's log
    action: str  # "CreateDBInstance": for the step's log
    find_by_tag: Callable[[str, str], Iterable[str]]
    create: Callable[[str], Bought]


class Acquired(enum.Enum):
    RECORDED = "recorded"  # the row already had its provider id: nothing was called
    ADOPTED = "adopted"  # found by the cluster's tag and recorded
    CREATED = "created"  # bought by this call


def ensure_bought(ctx: StepContext, resource: CloudResource, purchase: Purchase, *,
                  state: str) -> Acquired:
    """Give `resource` its provider id: adopt the one tagged resource, or create one.

    Raises PermanentError when several tagged resources could be it, and lets the create's
    StepError through (after moving the token generation on if the create was refused).
    On return `resource.provider_id` is set and the row is saved in `state`.
    """
    if resource.provider_id:
        return Acquired.RECORDED
    tag_value = str(ctx.cluster.code)
    tag = f"{cloud.TAG_KEY}={tag_value}"
    known = set(ctx.cluster.resources.exclude(pk=resource.pk).exclude(provider_id="")
                .values_list("provider_id", flat=True))
    found = sorted(set(purchase.find_by_tag(cloud.TAG_KEY, tag_value)) - known)
    sent = int(resource.attributes.get(SENT, 0))
    if len(found) == 1:
        cloud.record(resource, provider_id=found[0], state=state, adopted_by_tag=True)
        how = (f"the {purchase.what} an earlier {purchase.action} bought, whose answer never "
               "reached the ledger" if sent else
               f"a {purchase.what} of this cluster that no ledger row knew")
        ctx.say(f"Adopted {found[0]} found by tag {tag}: {how}; nothing is bought again")
        return Acquired.ADOPTED
    if found:
        raise PermanentError(
            f"{len(found)} {purchase.what}s carry this cluster's tag {tag} and the ledger "
            f"records none of them: {', '.join(found)}. The panel does not pick one: keep "
            "the one to use, release the others in the Alibaba Cloud console, then press "
            "Retry (the one left is adopted).")
    token = resource.client_token
    generation = resource.token_generation
    if sent:
        ctx.say(f"No {purchase.what} carries tag {tag} although {purchase.action} was sent "
                f"{sent} time(s) with ClientToken {token} (generation {generation}): sending "
                "it again with the same token; if an earlier call bought one that is not "
                "listed or tagged yet, Alibaba Cloud answers with that one")
    else:
        ctx.say(f"No {purchase.what} carries tag {tag}: sending {purchase.action} with "
                f"ClientToken {token} (generation {generation})")
    _count_sent(resource, sent + 1)  # intent first: a crash after this is a re-send
    try:
        bought = purchase.create(token)
    except StepError as error:
        _after_failed_create(ctx, resource, purchase, error)
        raise
    cloud.record(resource, provider_id=bought.provider_id, state=state, **bought.attributes)
    return Acquired.CREATED


def _count_sent(resource: CloudResource, sent: int) -> None:
    resource.attributes = {**resource.attributes, SENT: sent}
    resource.save(update_fields=["attributes", "updated_at"])


def _after_failed_create(ctx: StepContext, resource: CloudResource, purchase: Purchase,
                         error: StepError) -> None:
    said = ", ".join(part for part in (error.code and f"code {error.code}",
                                       error.request_id and f"RequestId {error.request_id}")
                     if part) or "no answer"
    if create_refused(error):
        old = resource.client_token
        new = cloud.next_token_generation(resource)
        _count_sent(resource, 0)
        ctx.say(f"{purchase.action} was refused ({said}): nothing was bought with ClientToken "
                f"{old}, so the next attempt uses a new one, {new} (generation "
                f"{resource.token_generation})")
    else:
        ctx.say(f"{purchase.action} got no definite answer ({said}): it may have bought a "
                f"{purchase.what}, so the next attempt looks for the cluster's tag first and "
                f"otherwise re-sends ClientToken {resource.client_token} (generation "
                f"{resource.token_generation})")
