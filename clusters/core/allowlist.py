"""The API's allow-list: source CIDR blocks, written by a person, read by the SLB's ACL.

Why one place: the wizard validates what the user types, and the SLB step re-checks what it
is about to send; both must agree on what an entry is. A CLB ACL entry is an IPv4 CIDR block
(AddAccessControlListEntry); a bare address means that one address (/32). An entry with host
bits set ("10.0.0.1/24") is refused rather than silently widened or narrowed.

The list belongs to the cluster (Cluster.api_allowed_cidrs), not to a product: a CLB carries
it as a whitelist ACL (clusters/steps/slb.py, slb.acl); an NLB, which takes security groups
instead of ACLs, carries the same entries as the Accept rules of a security group of its own
above a Drop rule for everyone else (clusters/steps/nlb.py, nlb.allowlist), read from the
same field through this same parse.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from django.utils.translation import gettext as _

# The ledger kind (CloudResource.kind) of the CLB ACL that holds a cluster's allow-list.
LEDGER_KIND = "slb_acl"
# Terraform's alicloud_slb_acl allows at most 300 entries in one ACL; the panel keeps well
# inside what one ACL takes, so a cluster's allow-list is one ACL.
MAX_ENTRIES = 300
# An NLB's allow-list is one basic ECS security group: 200 rules at most (the ECS quota the
# emulator enforces too), one of which is the Drop rule for every other source.
NLB_MAX_ENTRIES = 199


def max_entries(load_balancer_kind: str) -> int:
    """How many entries the allow-list of a load balancer of that kind ("clb"/"nlb") holds."""
    return NLB_MAX_ENTRIES if load_balancer_kind == "nlb" else MAX_ENTRIES


class AllowListError(ValueError):
    """One entry is not a CIDR block the ACL takes; the message names it."""

    def explain(self) -> str:
        """What the person typing the list reads (the wizard and the cluster page say this)."""
        return _("%(entry)s is not an IPv4 CIDR block (such as 203.0.113.0/24, with no host "
                 "bits set) or a single IPv4 address.") % {"entry": self}


class TooManyEntries(AllowListError):
    """More entries than the load balancer's allow-list takes (args: count, limit)."""

    def explain(self) -> str:
        return _("The list has %(count)s entries; the load balancer's allow-list takes at "
                 "most %(limit)s.") % {"count": self.args[0], "limit": self.args[1]}


def parse(text: str | Iterable[str], limit: int = MAX_ENTRIES) -> list[str]:
    """Entries separated by commas, spaces or new lines -> normalized, unique CIDR blocks
    (at most `limit`: max_entries of the cluster's load balancer kind)."""
    raw = re.split(r"[\s,]+", text) if isinstance(text, str) else list(text)
    found: list[str] = []
    for item in (part.strip() for part in raw):
        if not item:
            continue
        try:
            network = ipaddress.ip_network(item if "/" in item else f"{item}/32", strict=True)
        except ValueError:
            raise AllowListError(item) from None
        if network.version != 4:
            raise AllowListError(item)
        if str(network) not in found:
            found.append(str(network))
    if len(found) > limit:
        raise TooManyEntries(len(found), limit)
    return found


def allows(entries: Iterable[str], address: str) -> bool:
    """Whether `address` falls in one of the entries (for hints such as the panel's own)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(entry) for entry in entries)
