"""The wizard's pages: bind the step's form, keep what was typed, move on (clusters.interface.wizard
decides the rest)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from clusters.adapters import wizard_checks
from clusters.core.crypto import DecryptionError
from clusters.interface import audit, host_rows, review, wizard
from clusters.interface.forms import (
    COMMON_REGIONS,
    AccountStepForm,
    DatastoreStepForm,
    HostForm,
    HostFormSet,
    K3sStepForm,
    NetworkStepForm,
    ReviewStepForm,
    failed_secrets,
    hosts_fit,
    keep_saved_secrets,
)
from clusters.interface.forms.wizard_datastore import (
    ENGINE_LABELS,
    datastore_of,
    is_etcd,
    version_for,
)
from clusters.interface.forms.wizard_instances import InstanceOrderForm, instance_choices
from clusters.models import AuditAction, CloudAccount, Cluster, NodeRole
from clusters.web import ratelimit
from clusters.web.actions import start_operation
from clusters.web.signed_in import SignedInRequest

HOSTS_PREFIX = "hosts"
HOST_FIELDS = ("role", "private_ip", "public_ip", "ssh_port", "ssh_user", "auth",
               "private_key", "passphrase", "password", "secret_ref")
HOST_SECRETS = ("private_key", "passphrase", "password")
DATASTORE_SECRETS = ("rds_password", "external_dsn")


def _render(request: SignedInRequest, step: str, context: dict[str, Any]) -> HttpResponse:
    state = wizard.WizardState(request.session)
    step_items = [(item, "current" if item.slug == step else
                   "done" if state.done(item.slug) else "todo") for item in wizard.STEPS]
    return render(request, f"clusters/wizard/{step}.html", {
        "step_items": step_items, "step": step,
        "previous": wizard.previous_step(step), "regions": COMMON_REGIONS, **context,
    })


def _flash_warnings(request: SignedInRequest, warnings: list[str]) -> None:
    for warning in warnings:
        messages.warning(request, warning)


def _next(step: str) -> HttpResponse:
    return redirect("clusters:wizard-step", step=wizard.next_step(step))


@login_required
def wizard_start(request: SignedInRequest) -> HttpResponse:
    state = wizard.WizardState(request.session)
    if request.GET.get("restart"):
        state.reset()
    return redirect("clusters:wizard-step", step=state.first_missing())


@login_required
@never_cache
def wizard_step(request: SignedInRequest, step: str) -> HttpResponse:
    if step not in wizard.SLUGS:
        raise Http404("no such wizard step")
    state = wizard.WizardState(request.session)
    for what in state.forget_unreadable():
        messages.warning(request, _(
            "The panel can no longer read %(what)s saved in this wizard (its encryption keys "
            "were changed since it was typed): please enter it again.") % {"what": what})
    if not state.may_open(step):
        created = state.created_code()
        if step == "review" and request.method == "POST" and created:
            # Create posted again after the first one finished and cleared the answers.
            return _already_created(request, created)
        return redirect("clusters:wizard-step", step=state.first_missing())
    return _HANDLERS[step](request, state)


# --- 1. account --------------------------------------------------------------------------------


def account_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    if request.method == "POST":
        form = AccountStepForm(request.POST, owner=request.user)
        if form.is_valid():
            data = form.cleaned_data
            account = data["cloud_account"]  # None when a new AccessKey is added below
            new_form = getattr(form, "new_account_form", None)
            if new_form is not None:
                account = new_form.save()
                audit.record(request, AuditAction.CLOUD_ACCOUNT_ADD, None,
                             account=account.name, access_key_id=account.access_key_id)
                messages.success(request, _("Cloud account %(name)s added; its secret is "
                                            "stored encrypted.") % {"name": account.name})
            state.put("account", {"name": data["name"], "cloud_account": account.pk,
                                  "region": data["region"]})
            return _next("account")
    else:
        saved = state.get("account")
        initial = {"name": saved.get("name", ""), "region": saved.get("region", "cn-hangzhou"),
                   "cloud_account": saved.get("cloud_account")}
        form = AccountStepForm(initial=initial, owner=request.user)
    return _render(request, "account", {"form": form})


# --- 2. network --------------------------------------------------------------------------------


def _account(request: SignedInRequest, state: wizard.WizardState) -> CloudAccount:
    return CloudAccount.objects.get(pk=state.get("account")["cloud_account"], owner=request.user)


def network_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    account = _account(request, state)
    region = state.get("account")["region"]
    try:
        choices = wizard_checks.network_choices(account, region)
    except wizard_checks.CheckFailed as exc:
        return _render(request, "network", {"lookup_error": str(exc), "region": region,
                                            "account": account})
    if request.method == "POST":
        form = NetworkStepForm(request.POST, network=choices)
        if form.is_valid():
            state.put("network", form.cleaned_data)
            _flash_warnings(request, form.warnings)
            return _next("network")
    else:
        form = NetworkStepForm(initial=state.get("network") or None, network=choices)
    return _render(request, "network", {
        "form": form, "region": region, "account": account,
        "empty": not (choices.zones and choices.vpcs and choices.vswitches),
        "vswitches": choices.vswitches,
        # A hint for the allow-list: where this browser reaches the panel from (the same
        # rule as the audit trail's address).
        "browser_address": audit.client_address(request),
    })


# --- 3. datastore ------------------------------------------------------------------------------


def _rds_choices(request: SignedInRequest, state: wizard.WizardState, choice: str | None,
                 version: str) -> tuple[wizard_checks.RdsChoices | None, str]:
    """What RDS sells of the chosen engine in the cluster's zone for `version`, or the reason
    it is unknown."""
    if is_etcd(choice):
        return None, ""  # embedded etcd: nothing to ask RDS
    account = _account(request, state)
    engine = ENGINE_LABELS[datastore_of(choice)[1]]
    try:
        return wizard_checks.rds_choices(account, state.get("account")["region"],
                                         state.get("network")["zone"], version, engine), ""
    except wizard_checks.CheckFailed as exc:
        return None, str(exc)


def datastore_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    saved = {k: v for k, v in state.get("datastore").items() if k not in wizard.SECRET_FIELDS}
    source = request.POST if request.method == "POST" else saved
    version = version_for(source.get("kind"), source.get("rds_engine_version"))
    rds, rds_error = _rds_choices(request, state, source.get("kind"), version)
    if request.method == "POST":
        # The page never shows a secret again: what was typed is kept server-side.
        state.keep_draft("datastore", request.POST)
    secrets = state.saved_secrets("datastore")
    if request.method == "POST" and request.POST.get("action") == "refresh":
        # Another version was picked: show its classes, keep what was typed, judge nothing.
        typed = {k: str(v) for k, v in request.POST.items()
                 if k not in ("csrfmiddlewaretoken", "action", *wizard.SECRET_FIELDS)}
        typed["rds_engine_version"] = version
        if rds is None or rds.find(typed.get("rds_instance_class", "")) is None:
            typed.pop("rds_instance_class", None)
        form = DatastoreStepForm(initial=typed, rds=rds, rds_error=rds_error, saved=secrets)
    elif request.method == "POST":
        form = DatastoreStepForm(request.POST, rds=rds, rds_error=rds_error, saved=secrets)
        if form.is_valid():
            state.put("datastore", form.cleaned_data)
            _flash_warnings(request, form.warnings)
            return _next("datastore")
        state.drop_draft("datastore", failed_secrets(form, DATASTORE_SECRETS))
    else:
        form = DatastoreStepForm(initial=saved or None, rds=rds, rds_error=rds_error,
                                 saved=secrets)
    return _render(request, "datastore", {"form": form, "rds": rds, "rds_error": rds_error,
                                          "zone": state.get("network").get("zone", "")})


# --- 4. hosts ----------------------------------------------------------------------------------


def _rows_from_post(post: QueryDict) -> list[dict[str, Any]]:
    """Each host row exactly as typed (for re-rendering after add/remove/test)."""
    try:
        total = int(post.get(f"{HOSTS_PREFIX}-TOTAL_FORMS", "0"))
    except ValueError:
        total = 0
    return [{name: post.get(f"{HOSTS_PREFIX}-{index}-{name}", "") for name in HOST_FIELDS}
            for index in range(min(total, 50))]


def _keep_host_secrets(state: wizard.WizardState, post: QueryDict) -> tuple[QueryDict,
                                                                               list[dict]]:
    """File each row's typed secrets server-side under the row's reference (a new row gets
    one); the POST with every reference filled in, and its rows without the secrets."""
    post = post.copy()
    rows = _rows_from_post(post)
    for index, row in enumerate(rows):
        if not row.get("secret_ref"):
            row["secret_ref"] = wizard.new_secret_ref()
            post[f"{HOSTS_PREFIX}-{index}-secret_ref"] = row["secret_ref"]
        state.keep_draft(f"hosts:{row['secret_ref']}", row)
        for name in HOST_SECRETS:
            row.pop(name, None)
    return post, rows


def _keep_uploaded_key(state: wizard.WizardState, form: Any) -> None:
    """An uploaded key file is kept like a pasted key: the page will not show it again, and
    the row says it is saved."""
    data = getattr(form, "cleaned_data", None) or {}
    if data.get("key_file") and data.get("private_key") and data.get("secret_ref"):
        state.keep_draft(f"hosts:{data['secret_ref']}", {"private_key": data["private_key"]})
        keep_saved_secrets(form, ("private_key",), {"private_key": data["private_key"]})


def _forget_failed(state: wizard.WizardState, form: Any) -> None:
    ref = str(form.data.get(form.add_prefix("secret_ref")) or "")
    if ref:
        state.drop_draft(f"hosts:{ref}", failed_secrets(form, HOST_SECRETS))


class _VpcInstances:
    """The chosen VPC's ECS instances, asked once per request (DescribeInstances), or why not."""

    def __init__(self, request: SignedInRequest, state: wizard.WizardState) -> None:
        self.vpc_id = str(state.get("network").get("vpc") or "")
        self.error = ""
        self.instances: list[Any] = []
        try:
            account = _account(request, state)
        except DecryptionError:
            # The account's secret was encrypted with keys since removed: the page still
            # works (addresses can be typed), and says why the list is missing.
            self.error = _("This cloud account's AccessKey secret can no longer be read "
                           "(the panel's encryption keys were changed): enter it again on the "
                           "Cloud accounts page.")
            return
        if not self.vpc_id:
            return  # a VPC the create run makes (network page): nothing is in it yet
        try:
            self.instances = wizard_checks.vpc_instances(
                account, state.get("account")["region"], self.vpc_id)
        except wizard_checks.CheckFailed as exc:
            self.error = str(exc)


def _order_form(request: SignedInRequest, state: wizard.WizardState,
                data: Any = None) -> tuple[InstanceOrderForm | None, str]:
    """The "create instances" form with what the zone sells now, or why it cannot be shown."""
    try:
        choices = wizard_checks.instance_choices(
            _account(request, state), state.get("account")["region"],
            state.get("network").get("zone", ""))
    except (wizard_checks.CheckFailed, DecryptionError) as exc:
        return None, str(exc) if isinstance(exc, wizard_checks.CheckFailed) else _(
            "This cloud account's AccessKey secret can no longer be read (the panel's "
            "encryption keys were changed): enter it again on the Cloud accounts page.")
    saved = state.get("hosts").get("order") or None
    if data is not None:
        return InstanceOrderForm(data, types=choices.types, images=choices.images,
                                 key_pairs=choices.key_pairs,
                                 datastore=state.get("datastore"),
                                 vpc_cidr=str(state.get("network").get("vpc_cidr") or "")), ""
    # The pasted private key is never shown again: choosing the pair again asks for it.
    initial = {f: saved.get(f) for f in ("servers", "agents", "instance_type", "image_id",
                                         "system_disk_gb", "public_bandwidth_mbps",
                                         "key_pair")} if saved else None
    return InstanceOrderForm(initial=initial, types=choices.types, images=choices.images,
                             key_pairs=choices.key_pairs), ""


def hosts_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    """Hosts typed or picked (rows), or instances the panel buys (the order form)."""
    if request.method == "POST" and request.POST.get("action") == "order":
        order_form, _error = _order_form(request, state, request.POST)
        if order_form is not None and order_form.is_valid():
            state.put("hosts", {"hosts": [], "order": order_form.order(), "warnings": [],
                                "order_key": order_form.private_key(),
                                "order_network": wizard.order_network(state.get("network"))})
            return _next("hosts")
    return _host_rows_step(request, state)


def _host_rows_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    tests: dict[int, tuple[bool, str]] = {}
    keypair = state.keypair()
    listed = _VpcInstances(request, state)
    if request.method != "POST":
        rows = []
        for saved in state.get("hosts").get("hosts") or []:
            host = saved
            if not host.get("secret_ref"):  # saved before rows carried a reference
                host = {**saved, "secret_ref": wizard.new_secret_ref()}
                state.keep_draft(f"hosts:{host['secret_ref']}", host)
            rows.append({k: v for k, v in host.items() if k not in HOST_SECRETS})
        # Embedded etcd starts with the 3 servers it needs (an odd number), others with 2.
        servers = 3 if is_etcd(state.get("datastore").get("kind")) else 2
        rows = rows or [host_rows.blank_row(NodeRole.SERVER) for _ in range(servers)]
        formset = HostFormSet(prefix=HOSTS_PREFIX, initial=rows,
                              form_kwargs={"saved": state.host_secrets()})
        return _hosts_page(request, formset, tests, keypair, listed=listed, typed=rows)

    action = request.POST.get("action", "next")
    post, rows = _keep_host_secrets(state, request.POST)
    saved_secrets = state.host_secrets()
    if host_rows.is_row_action(action):
        rows = _edit_rows(request, action, rows, listed)
    elif action == "generate_key":
        state.generate_keypair()
        keypair = state.keypair()
        for row in rows:
            has_key = saved_secrets.get(row["secret_ref"], {}).get("private_key")
            if row.get("auth") == "key" and not has_key:
                row["auth"] = "generated"
    elif action.startswith("test-") and action[5:].isdigit():
        index = int(action[5:])
        tests[index] = _test_host(state, post, request, index, keypair)
        saved_secrets = state.host_secrets()
    elif action == "next" and state.get("network").get("network_order"):
        # A VPC the panel creates holds no host yet: only instances bought in it can be.
        messages.error(request, _("The panel creates this cluster's VPC, so it has no hosts "
                                  "yet: create the instances with the form above (or go back "
                                  "to the network page and choose a VPC you have)."))
    elif action == "next":
        formset = HostFormSet(post, request.FILES, prefix=HOSTS_PREFIX,
                              form_kwargs={"saved": saved_secrets},
                              datastore=state.get("datastore"))
        if formset.is_valid() and hosts_fit(formset, state.get("network").get("vpc_cidr", ""),
                                             has_keypair=keypair is not None):
            hosts = [f.cleaned_data for f in formset.forms if f.cleaned_data]
            state.put("hosts", {"hosts": hosts, "warnings": formset.warnings,
                                "join_group": request.POST.get("join_group") == "on"})
            _flash_warnings(request, formset.warnings)
            return _next("hosts")
        for form in formset.forms:
            _keep_uploaded_key(state, form)
            _forget_failed(state, form)
        return _hosts_page(request, formset, tests, keypair, listed=listed, typed=rows)
    formset = HostFormSet(prefix=HOSTS_PREFIX, initial=rows,
                          form_kwargs={"saved": saved_secrets})
    return _hosts_page(request, formset, tests, keypair, listed=listed, typed=rows)


def _edit_rows(request: SignedInRequest, action: str, rows: list[dict[str, Any]],
               listed: _VpcInstances) -> list[dict[str, Any]]:
    """Add, remove or pick rows (clusters.interface.host_rows) and say what came of it."""
    edited = host_rows.edit_rows(action, rows, request.POST, listed.instances)
    for problem in edited.errors:
        messages.error(request, problem)
    _flash_warnings(request, edited.warnings)
    return edited.rows


def _test_host(state: wizard.WizardState, post: QueryDict, request: SignedInRequest,
               index: int, keypair: Any) -> tuple[bool, str]:
    """Log in to one host with what its row says; the result is shown at the row, and the
    host key it showed is kept for Create to pin. A few tests a minute per user at most."""
    form = HostForm(post, request.FILES, prefix=f"{HOSTS_PREFIX}-{index}",
                    saved=state.host_secrets())
    valid = form.is_valid()
    _keep_uploaded_key(state, form)
    _forget_failed(state, form)
    if not valid:
        problems = "; ".join(f"{form.fields[name].label}: {' '.join(map(str, errors))}"
                             if name in form.fields else " ".join(map(str, errors))
                             for name, errors in form.errors.items())
        return False, _("Fix this host first: %(problems)s") % {"problems": problems}
    data = form.cleaned_data
    key = data.get("private_key", "") if data["auth"] == "key" else ""
    if data["auth"] == "generated":
        if keypair is None:
            return False, _("Generate the key pair first (the button above).")
        key = keypair[0]
    if not ratelimit.allow(request.user, "host-test"):
        return False, _("Too many connection tests in a minute: wait a minute, then test "
                        "again.")
    address = data.get("public_ip") or data["private_ip"]
    try:
        report = wizard_checks.test_ssh(
            address, data["ssh_port"], data["ssh_user"],
            password=data.get("password", "") if data["auth"] == "password" else "",
            private_key=key, passphrase=data.get("passphrase", ""))
    except wizard_checks.CheckFailed as exc:
        return False, str(exc)
    state.remember_host_key(address, data["ssh_port"], report.fingerprint)
    return True, _("Connected: %(system)s; sudo: %(sudo)s; host key %(fingerprint)s (the "
                   "cluster will accept only this key from this host)") % {
        "system": report.system or "?", "sudo": report.sudo or "?",
        "fingerprint": report.fingerprint}


def _hosts_page(request: SignedInRequest, formset: Any, tests: dict[int, tuple[bool, str]],
                keypair: Any, *, listed: _VpcInstances,
                typed: list[dict[str, Any]]) -> HttpResponse:
    state = wizard.WizardState(request.session)
    if request.method == "POST" and request.POST.get("action") == "order":
        order_form, order_error = _order_form(request, state, request.POST)
    else:
        order_form, order_error = _order_form(request, state)
    choices = instance_choices(listed.instances, typed)
    by_ip = {c.instance.private_ip: c.instance for c in choices if c.instance.private_ip}
    rows = [(index, form, tests.get(index),
             by_ip.get(str((typed[index] if index < len(typed) else {}).get("private_ip")
                           or "").strip()))
            for index, form in enumerate(formset.forms)]
    return _render(request, "hosts", {"formset": formset, "rows": rows,
                                      "public_key": keypair[1] if keypair else "",
                                      "instances": choices, "vpc_id": listed.vpc_id,
                                      "instances_error": listed.error,
                                      "any_pickable": any(c.pickable for c in choices),
                                      "order_form": order_form, "order_error": order_error,
                                      "ordered": bool(state.get("hosts").get("order")),
                                      "join_group": request.POST.get("join_group") == "on"
                                      if request.method == "POST"
                                      else bool(state.get("hosts").get("join_group")),
                                      "etcd": is_etcd(state.get("datastore").get("kind"))})


# --- 5. K3s ------------------------------------------------------------------------------------


def k3s_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    if request.method == "POST":
        form = K3sStepForm(request.POST)
        if form.is_valid():
            data = dict(form.cleaned_data)
            state.put("k3s", data)
            _flash_warnings(request, form.warnings)
            return _next("k3s")
    else:
        saved = dict(state.get("k3s"))
        if saved.get("extra_tls_sans"):
            saved["extra_tls_sans"] = "\n".join(saved["extra_tls_sans"])
        if not saved:
            region = state.get("account").get("region", "")
            saved = {"install_source": wizard.default_install_source(region)}
        form = K3sStepForm(initial=saved)
    return _render(request, "k3s", {"form": form})


# --- 6. review and Create ----------------------------------------------------------------------


def _already_created(request: SignedInRequest, code: str) -> HttpResponse:
    """Send a repeated Create to the cluster the first one made (never a second cluster)."""
    cluster = get_object_or_404(Cluster, code=code, owner=request.user)
    messages.info(request, _("%(name)s was already created; this is its page.")
                  % {"name": cluster.name})
    return redirect("clusters:cluster", code=cluster.code)


def review_step(request: SignedInRequest, state: wizard.WizardState) -> HttpResponse:
    """Check the answers again (clusters.interface.review), then Create, or show the page."""
    form = ReviewStepForm(request.POST if request.method == "POST" else None)
    back = review.answers_problem(state)
    if back is not None:
        messages.error(request, back.message)
        return redirect("clusters:wizard-step", step=back.step)
    account = _account(request, state)
    checked = review.order_problem(state, account)
    if checked.back is not None:  # the saved order no longer fits the zone: the hosts page
        messages.error(request, checked.back.message)
        return redirect("clusters:wizard-step", step=checked.back.step)
    # Shown on a Create too (on the cluster's page it lands on), not only on the review.
    if checked.note:
        messages.info(request, checked.note)
    if checked.warning:
        messages.warning(request, checked.warning)
    if request.method == "POST" and form.is_valid():
        created = review.create(state, request.user)
        cluster = created.cluster
        if cluster is None:
            if created.existing is not None:
                return _already_created(request, str(created.existing.code))
            messages.error(request, created.name_taken)
            return redirect("clusters:wizard-step", step="account")
        return start_operation(
            request, cluster, lambda: review.start(state, cluster, request.user),
            action=AuditAction.CLUSTER_CREATE, show_run=False,
            success=lambda run: _("Creating %(name)s: follow each step below.")
            % {"name": cluster.name})
    return _render(request, "review", {"form": form, **review.page_context(state, account)})


_HANDLERS = {
    "account": account_step,
    "network": network_step,
    "datastore": datastore_step,
    "hosts": hosts_step,
    "k3s": k3s_step,
    "review": review_step,
}
