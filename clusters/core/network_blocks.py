"""The blocks of a VPC and vSwitch the panel creates: what Alibaba Cloud accepts, checked
before anything is sent, so a person sees the mistake on the wizard's page.

Rules from the V2 model alibabacloud_vpc20160428 (CreateVpcRequest.cidr_block,
CreateVSwitchRequest.cidr_block): a VPC block has a mask of 16 to 28 bits when given
("We recommend that you use 10.0.0.0/8, 172.16.0.0/12, or 192.168.0.0/16 ... or their
subnets"), a vSwitch block 16 to 29 bits and must lie inside the VPC's; neither may lie in
100.64.0.0/10, 224.0.0.0/4, 127.0.0.0/8 or 169.254.0.0/16. Host bits must be clear: the
panel never widens or narrows a block a person typed (as for the allow-list).

An NLB needs a vSwitch in each of two zones (V2 alibabacloud_nlb20220430
CreateLoadBalancerRequest.zone_mappings: "If the region supports two or more zones, you
must specify at least two zones"): the panel then creates a second vSwitch in the VPC, in
the second zone, whose block must not overlap the first's (CreateVSwitch's error table:
`InvalidCidrBlock.Overlapped` "Specified CIDR block overlapped with other subnets.").
"""

from __future__ import annotations

import ipaddress

from django.utils.translation import gettext as _

RECOMMENDED = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
RESERVED = tuple(ipaddress.IPv4Network(n) for n in
                 ("100.64.0.0/10", "224.0.0.0/4", "127.0.0.0/8", "169.254.0.0/16"))
VPC_MASKS = (16, 28)
VSWITCH_MASKS = (16, 29)


class BlockError(ValueError):
    """A block Alibaba Cloud would refuse; the message says which and why; `which` is
    "vpc" or "vswitch"."""

    def __init__(self, message: str, which: str = "vpc") -> None:
        super().__init__(message)
        self.which = which


def _block(text: str, what: str, masks: tuple[int, int]) -> ipaddress.IPv4Network:
    try:
        return _parse(text, what, masks)
    except BlockError as exc:
        raise BlockError(str(exc), "vpc" if masks == VPC_MASKS else "vswitch") from None


def _parse(text: str, what: str, masks: tuple[int, int]) -> ipaddress.IPv4Network:
    try:
        block = ipaddress.IPv4Network(text.strip())
    except ValueError:
        raise BlockError(_("%(what)s %(text)s is not an IPv4 CIDR block with its host bits "
                           "clear (for example 172.16.0.0/16).")
                         % {"what": what, "text": text.strip() or "—"}) from None
    low, high = masks
    if not low <= block.prefixlen <= high:
        raise BlockError(_("%(what)s %(block)s: Alibaba Cloud takes a mask of %(low)s to "
                           "%(high)s bits.") % {"what": what, "block": block, "low": low,
                                                "high": high})
    if any(block.overlaps(r) for r in RESERVED):
        raise BlockError(_("%(what)s %(block)s overlaps a range Alibaba Cloud reserves "
                           "(100.64.0.0/10, 224.0.0.0/4, 127.0.0.0/8, 169.254.0.0/16).")
                         % {"what": what, "block": block})
    return block


def check(vpc_cidr: str, vswitch_cidr: str) -> tuple[str, str]:
    """Both blocks normalised ("10.0.0.0/16", "10.0.1.0/24"), or BlockError."""
    vpc = _block(vpc_cidr, _("VPC block"), VPC_MASKS)
    vswitch = _block(vswitch_cidr, _("vSwitch block"), VSWITCH_MASKS)
    if not vswitch.subnet_of(vpc):
        raise BlockError(_("vSwitch block %(vswitch)s is not inside the VPC's block "
                           "%(vpc)s.") % {"vswitch": vswitch, "vpc": vpc}, "vswitch")
    return str(vpc), str(vswitch)


def check_second(vpc_cidr: str, vswitch_cidr: str, second_cidr: str) -> str:
    """The NLB's second vSwitch block, normalised, or BlockError (which="vswitch2"): inside
    the VPC's block, a vSwitch's mask, clear of the first vSwitch's block."""
    vpc = ipaddress.IPv4Network(vpc_cidr)
    first = ipaddress.IPv4Network(vswitch_cidr)
    try:
        second = _parse(second_cidr, _("Second vSwitch block"), VSWITCH_MASKS)
    except BlockError as exc:
        raise BlockError(str(exc), "vswitch2") from None
    if not second.subnet_of(vpc):
        raise BlockError(_("Second vSwitch block %(vswitch)s is not inside the VPC's block "
                           "%(vpc)s.") % {"vswitch": second, "vpc": vpc}, "vswitch2")
    if second.overlaps(first):
        raise BlockError(_("Second vSwitch block %(second)s overlaps the first vSwitch's "
                           "%(first)s; Alibaba Cloud refuses overlapping vSwitches.")
                         % {"second": second, "first": first}, "vswitch2")
    return str(second)
