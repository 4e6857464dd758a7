"""Wizard page 2: zone, VPC and vSwitch, as the cloud lists them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.adapters import wizard_checks
from clusters.core import allowlist, network_blocks
from clusters.interface.forms.common import WizardForm
from clusters.k3s.firewall import (
    PUBLIC_ON_INTRANET,
    FirewallError,
    FirewallSpec,
    allowlist_skipped,
)
from clusters.models import LoadBalancerKind, SlbAddressType

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)


class NetworkStepForm(WizardForm):
    zone = forms.ChoiceField(label=_("Zone"))
    vpc = forms.ChoiceField(label=_("VPC"), required=False)
    vswitch = forms.ChoiceField(
        label=_("vSwitch"), required=False,
        help_text=_("The RDS instance and the SLB are created in this vSwitch."))
    create_network = forms.BooleanField(
        label=_("Create a VPC and vSwitch for this cluster"), required=False,
        help_text=_("The panel creates them (tagged with the cluster), buys the instances in "
                    "them, and deletes them when the cluster is destroyed. The hosts are then "
                    "instances the panel creates. VPCs and vSwitches are free of charge."))
    new_vpc_cidr = forms.CharField(
        label=_("New VPC block"), required=False, initial="172.16.0.0/16",
        help_text=_("An IPv4 CIDR block, mask 16 to 28 bits; Alibaba Cloud recommends "
                    "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 or a part of one."))
    new_vswitch_cidr = forms.CharField(
        label=_("New vSwitch block"), required=False, initial="172.16.0.0/24",
        help_text=_("Inside the VPC's block, mask 16 to 29 bits, in the zone above. The "
                    "instances, the RDS instance and the SLB take their addresses from it."))
    new_vswitch2_cidr = forms.CharField(
        label=_("New second vSwitch block (NLB)"), required=False, initial="172.16.1.0/24",
        help_text=_("NLB only: the panel creates a second vSwitch in the NLB's second zone "
                    "(chosen below), with this block: inside the VPC's, not overlapping the "
                    "first vSwitch's. Only the NLB takes addresses from it."))
    load_balancer_kind = forms.ChoiceField(
        label=_("Load balancer for the Kubernetes API"), choices=LoadBalancerKind.choices,
        initial=LoadBalancerKind.CLB, widget=forms.RadioSelect, required=False,
        help_text=_("A CLB lives in one zone. An NLB answers in two zones (one address in "
                    "each, and a DNS name for both), so the API stays reachable when one zone "
                    "fails; Alibaba Cloud requires an NLB to have a vSwitch in at least two "
                    "zones where the region has two."))
    nlb_zone2 = forms.ChoiceField(
        label=_("NLB second zone"), required=False,
        help_text=_("NLB only: the second zone the API answers in."))
    nlb_vswitch2 = forms.ChoiceField(
        label=_("NLB vSwitch in the second zone"), required=False,
        help_text=_("NLB only: a vSwitch of the same VPC in the second zone. The first zone "
                    "uses the vSwitch above."))
    slb_address_type = forms.ChoiceField(
        label=_("SLB address"), choices=SlbAddressType.choices, initial=SlbAddressType.INTRANET,
        widget=forms.RadioSelect,
        help_text=_("Internet makes the Kubernetes API reachable from outside the VPC."))
    api_allowed_cidrs = forms.CharField(
        label=_("Sources allowed to reach the API"), required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24"}),
        help_text=_("CIDR blocks, one per line (a single address is a /32). The SLB forwards "
                    "the Kubernetes API only from these. Required for an Internet SLB: nobody "
                    "can reach an Internet-facing API until you list who may, and the panel "
                    "itself and any agent joining from outside the VPC must be among them "
                    "(the panel checks the cluster through the SLB). Optional for an intranet "
                    "SLB, where empty means the whole VPC, as before."))

    def __init__(self, *args: Any, network: wizard_checks.NetworkChoices, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network = network
        kept = self.initial.get("api_allowed_cidrs")
        if isinstance(kept, list):  # the wizard keeps the parsed list; the field edits text
            self.initial["api_allowed_cidrs"] = "\n".join(kept)
        cast(forms.ChoiceField, self.fields["zone"]).choices = [(z, z) for z in network.zones]
        cast(forms.ChoiceField, self.fields["nlb_zone2"]).choices = [
            ("", "—"), *[(z, z if z in network.nlb_zones else _("%(zone)s (no NLB)") % {
                "zone": z}) for z in network.zones]]
        cast(forms.ChoiceField, self.fields["nlb_vswitch2"]).choices = [
            ("", "—"), *[(s.vswitch_id, f"{s.vswitch_id} · {s.zone_id} · {s.cidr}"
                          + (f" · {s.name}" if s.name else "")) for s in network.vswitches]]
        cast(forms.ChoiceField, self.fields["vpc"]).choices = [
            (v.vpc_id, f"{v.vpc_id} · {v.cidr}" + (f" · {v.name}" if v.name else ""))
            for v in network.vpcs]
        cast(forms.ChoiceField, self.fields["vswitch"]).choices = [
            (s.vswitch_id, f"{s.vswitch_id} · {s.zone_id} · {s.cidr}"
             + (f" · {s.name}" if s.name else ""))
            for s in network.vswitches]

    def _clean_allowlist(self, data: dict[str, Any]) -> None:
        """The allow-list as CIDR blocks; an Internet SLB must have at least one (a CLB
        whitelist without entries would forward from everywhere)."""
        try:
            limit = allowlist.max_entries(data.get("load_balancer_kind") or LoadBalancerKind.CLB)
            cidrs = allowlist.parse(data.get("api_allowed_cidrs") or "", limit=limit)
        except allowlist.AllowListError as exc:
            self.add_error("api_allowed_cidrs", exc.explain())
            return
        if data.get("slb_address_type") == SlbAddressType.INTERNET and not cidrs:
            self.add_error("api_allowed_cidrs", _(
                "An Internet-facing API needs at least one allowed source: until you list "
                "who may connect, nobody can reach it."))
        data["api_allowed_cidrs"] = cidrs

    @property
    def nlb_possible(self) -> bool:
        """An NLB needs two zones where NLB is sold (NLB's DescribeZones, not ECS's)."""
        return len([z for z in self.network.zones if z in self.network.nlb_zones]) >= 2

    def _no_nlb_here(self) -> StrOrPromise:
        """Why this region cannot have an NLB at all."""
        if self.network.nlb_problem:
            return _("The zones where NLB is sold could not be listed (NLB DescribeZones: "
                     "%(error)s). Choose a CLB here, or try again.") % {
                         "error": self.network.nlb_problem}
        if len(self.network.zones) >= 2:
            return _("NLB is sold in fewer than two zones of this region (NLB DescribeZones: "
                     "%(zones)s), and an NLB needs a vSwitch in two zones. Choose a CLB here, "
                     "or another region.") % {
                         "zones": ", ".join(self.network.nlb_zones) or "—"}
        return _("This region has only one zone, and an NLB needs a vSwitch in two zones (it "
                 "keeps the API reachable when one zone fails). Choose a CLB here, or a region "
                 "with two zones.")

    def _zone_without_nlb(self, zone: str) -> StrOrPromise | None:
        """Why `zone` cannot hold one of the NLB's ZoneMappings, or None when it can:
        CreateLoadBalancer refuses a zone NLB is not sold in, after the instances are
        bought, so the wizard asks NLB's DescribeZones first."""
        if zone in self.network.nlb_zones:
            return None
        return _("NLB is not sold in zone %(zone)s (NLB DescribeZones lists %(zones)s): "
                 "choose one of those zones, or a CLB.") % {
                     "zone": zone, "zones": ", ".join(self.network.nlb_zones)}

    def _clean_nlb(self, data: dict[str, Any]) -> None:
        """An NLB's zones: the first zone's vSwitch and one in a second zone of the same VPC.

        Why two: Alibaba Cloud's CreateLoadBalancer (NLB) requires ZoneMappings in at least
        two zones in a region that has two; the API then survives one zone's outage. The
        allow-list (checked above, required for an Internet-facing API) is carried by a
        security group the panel joins to the NLB (nlb.allowlist), as a CLB's by an ACL.
        """
        data["nlb_zones"] = []
        data["load_balancer_kind"] = data.get("load_balancer_kind") or LoadBalancerKind.CLB
        if data["load_balancer_kind"] != LoadBalancerKind.NLB:
            return
        if not self.nlb_possible:
            self.add_error("load_balancer_kind", self._no_nlb_here())
            return
        first = self._zone_without_nlb(data.get("zone") or "")
        if first:
            self.add_error("zone", first)
            return
        problem = self._second_zone_problem(data)
        if problem:
            self.add_error(*problem)
            return
        zone2, vswitch2 = data["nlb_zone2"], data["nlb_vswitch2"]
        data["nlb_zones"] = [{"zone": data.get("zone"), "vswitch_id": data.get("vswitch")},
                             {"zone": zone2, "vswitch_id": vswitch2}]

    def _second_zone_problem(self, data: dict[str, Any]) -> tuple[str, Any] | None:
        """(field, message) when the second zone or its vSwitch is not usable."""
        zone2, vswitch2 = data.get("nlb_zone2") or "", data.get("nlb_vswitch2") or ""
        if not zone2 or zone2 == data.get("zone"):
            return "nlb_zone2", _("Choose a second zone, other than the first one.")
        no_nlb = self._zone_without_nlb(zone2)
        if no_nlb:
            return "nlb_zone2", no_nlb
        chosen = next((s for s in self.network.vswitches if s.vswitch_id == vswitch2), None)
        if chosen is None:
            return "nlb_vswitch2", _("Choose a vSwitch in the second zone.")
        if chosen.zone_id != zone2:
            return "nlb_vswitch2", _("This vSwitch is in zone %(zone)s, not in the second "
                                     "zone.") % {"zone": chosen.zone_id}
        if data.get("vpc") and chosen.vpc_id != data["vpc"]:
            return "nlb_vswitch2", _("This vSwitch belongs to %(vpc)s, not to the chosen "
                                     "VPC.") % {"vpc": chosen.vpc_id}
        return None

    def _clean_new_network(self, data: dict[str, Any]) -> dict[str, Any]:
        """The VPC and vSwitch the panel creates (steps/network.py): their blocks as Alibaba
        Cloud accepts them (clusters/core/network_blocks.py). For an NLB, which needs a
        vSwitch in each of two zones (V2 alibabacloud_nlb20220430 CreateLoadBalancer
        ZoneMappings), also a second vSwitch in the second zone chosen below, with its own
        block: the order says so (zone2, vswitch2_cidr) and the create run makes it."""
        try:
            vpc_cidr, vswitch_cidr = network_blocks.check(data.get("new_vpc_cidr") or "",
                                                          data.get("new_vswitch_cidr") or "")
        except network_blocks.BlockError as exc:
            self.add_error(f"new_{exc.which}_cidr", str(exc))
            return data
        self._clean_allowlist(data)
        kind = data.get("load_balancer_kind") or LoadBalancerKind.CLB
        order = {"vpc_cidr": vpc_cidr, "vswitch_cidr": vswitch_cidr}
        if kind == LoadBalancerKind.NLB:
            second = self._new_second_vswitch(data, vpc_cidr, vswitch_cidr)
            if second is None:
                return data
            order.update(second)
        data.update(vpc="", vswitch="", load_balancer_kind=kind, nlb_zones=[],
                    vpc_cidr=vpc_cidr, vswitch_cidr=vswitch_cidr, new_vpc_cidr=vpc_cidr,
                    new_vswitch_cidr=vswitch_cidr, nlb_vswitch2="",
                    new_vswitch2_cidr=order.get("vswitch2_cidr", ""), network_order=order)
        return data

    def _new_second_vswitch(self, data: dict[str, Any], vpc_cidr: str,
                            vswitch_cidr: str) -> dict[str, str] | None:
        """{"zone2", "vswitch2_cidr"} of the NLB's second vSwitch in the new VPC, or None
        with the field's error: a second zone of the region, other than the first, and a
        block inside the VPC's that does not overlap the first vSwitch's."""
        if not self.nlb_possible:
            self.add_error("load_balancer_kind", self._no_nlb_here())
            return None
        first = self._zone_without_nlb(data.get("zone") or "")
        if first:
            self.add_error("zone", first)
            return None
        zone2 = data.get("nlb_zone2") or ""
        if not zone2 or zone2 == data.get("zone"):
            self.add_error("nlb_zone2", _("Choose a second zone, other than the first one: "
                                          "the panel creates the NLB's second vSwitch there."))
            return None
        no_nlb = self._zone_without_nlb(zone2)
        if no_nlb:
            self.add_error("nlb_zone2", no_nlb)
            return None
        try:
            cidr = network_blocks.check_second(vpc_cidr, vswitch_cidr,
                                               data.get("new_vswitch2_cidr") or "")
        except network_blocks.BlockError as exc:
            self.add_error("new_vswitch2_cidr", str(exc))
            return None
        return {"zone2": zone2, "vswitch2_cidr": cidr}

    def _warn_unreachable_sources(self, data: dict[str, Any]) -> None:
        """Warn of each allow-list source a CLB keeps but the nodes' group will not admit on
        6443 (k3s/firewall.allowlist_skipped): a public block of an intranet API, a private
        block of an Internet-facing one (its clients come with public addresses)."""
        if self.errors or not data.get("vpc_cidr"):
            return
        spec = FirewallSpec(
            vpc_cidr=data["vpc_cidr"], panel_cidrs=(),
            internet_api=data.get("slb_address_type") == SlbAddressType.INTERNET,
            api_allowed_cidrs=tuple(data.get("api_allowed_cidrs") or ()),
            clb=data.get("load_balancer_kind") != LoadBalancerKind.NLB)
        try:
            skipped = allowlist_skipped(spec)
        except FirewallError:
            return
        for cidr, why in skipped:
            self.warnings.append(str((_(
                "%(cidr)s is a public block: an intranet API's clients come over private "
                "networks, so the nodes do not admit it on 6443 and it will not reach the API.")
                if why == PUBLIC_ON_INTRANET else _(
                "%(cidr)s is a private block: clients of an Internet-facing API come with "
                "public addresses, so it never matches and the nodes do not admit it on "
                "6443. List the public address your clients connect from.")) % {"cidr": cidr}))

    def clean(self) -> dict[str, Any]:
        data = self._clean()
        self._warn_unreachable_sources(data)
        return data

    def _clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("create_network"):
            return self._clean_new_network(data)
        data["network_order"] = {}
        for name, label in (("vpc", _("Choose a VPC, or let the panel create one.")),
                            ("vswitch", _("Choose a vSwitch, or let the panel create one."))):
            if not data.get(name):
                self.add_error(name, label)
        chosen = next((s for s in self.network.vswitches
                       if s.vswitch_id == data.get("vswitch")), None)
        if chosen is None:
            return data
        if data.get("vpc") and chosen.vpc_id != data["vpc"]:
            self.add_error("vswitch", _("This vSwitch belongs to %(vpc)s, not to the chosen "
                                        "VPC.") % {"vpc": chosen.vpc_id})
        if data.get("zone") and chosen.zone_id != data["zone"]:
            self.add_error("vswitch", _("This vSwitch is in zone %(zone)s, not in the chosen "
                                        "zone.") % {"zone": chosen.zone_id})
        self._clean_allowlist(data)
        self._clean_nlb(data)
        vpc = next((v for v in self.network.vpcs if v.vpc_id == data.get("vpc")), None)
        data["vpc_cidr"] = vpc.cidr if vpc else ""
        data["vswitch_cidr"] = chosen.cidr
        return data
