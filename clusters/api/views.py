"""The API's endpoints: thin, like the pages' views.

Owner rule: every object is looked up through clusters.interface.queries (another user's
cluster, run, step or node is 404, never 403). Every operation is started through
clusters.operations, audited with clusters.interface.audit (the row names the token), and
answered 202 with the run and where to follow it, the way AWX answers a launch. A refusal
(busy, not ready, last server...) is 409 with the operations' own sentence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters import operations
from clusters.adapters import wizard_checks
from clusters.api import serializers as s
from clusters.api.errors import FieldErrors, Refused
from clusters.interface import audit, cluster_spec, generated_key, queries, run_actions
from clusters.interface.forms import (
    AddInstancesForm,
    AddNodeForm,
    CloudAccountForm,
    K3sStepForm,
    UpgradeForm,
    with_initials,
)
from clusters.interface.forms.wizard_datastore import DEFAULT_VERSIONS, ENGINE_LABELS
from clusters.models import (
    ApiToken,
    AuditAction,
    AuditEvent,
    CloudAccount,
    Cluster,
    KubeCredential,
    Node,
    Run,
)
from clusters.operations import kube_credentials

# --- helpers -----------------------------------------------------------------------------


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ParseError(_("Send a JSON object."))
    return dict(request.data)


def _form_errors(form: Any) -> dict[str, list[str]]:
    return {("non_field_errors" if name == "__all__" else name): [str(m) for m in messages]
            for name, messages in form.errors.items()}


def run_url(run: Run) -> str:
    return reverse("api:run", args=[run.cluster.code, run.pk])


def started(request: Request, cluster: Cluster, start: Callable[[], Run], *,
            action: AuditAction, details: Callable[[Run], dict[str, Any]] | None = None,
            extra: dict[str, Any] | None = None) -> Response:
    """What every operation endpoint does (clusters.web.actions.start_operation's twin):
    start, a refusal as 409, the audit row, 202 with the run."""
    try:
        run = start()
    except operations.OperationRefused as exc:
        raise Refused(str(exc)) from None
    audit.record(request, action, cluster, run=run.pk, **(details(run) if details else {}))
    url = run_url(run)
    body = {"run": s.RunSerializer(run).data, "run_url": url, **(extra or {})}
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": url})


def owned_cluster(request: Request, code: Any) -> Cluster:
    return queries.owned_cluster(request.user, code)


def owned_account(request: Request, pk: Any) -> CloudAccount:
    return get_object_or_404(CloudAccount, pk=pk, owner_id=request.user.pk)


# --- who am I ------------------------------------------------------------------------------


class MeView(APIView):
    @extend_schema(responses=s.MeSerializer, summary="The signed-in user and token")
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        return Response({"username": request.user.get_username(),
                         "token": token.name if token else None,
                         "scope": token.scope if token else None,
                         "expires_at": token.expires_at if token else None})


# --- cloud accounts ---------------------------------------------------------------------------


class CloudAccountList(generics.ListAPIView):
    serializer_class = s.CloudAccountSerializer

    def get_queryset(self) -> QuerySet[CloudAccount]:
        return CloudAccount.objects.filter(owner_id=self.request.user.pk).order_by("name", "pk")

    @extend_schema(request=s.CloudAccountCreateSerializer,
                   responses={201: s.CloudAccountSerializer},
                   summary="Add credentials (checked live; the secret is never returned)")
    def post(self, request: Request) -> Response:
        form = CloudAccountForm(with_initials(CloudAccountForm, _body(request),
                                              owner=request.user), owner=request.user)
        if not form.is_valid():
            raise FieldErrors(_form_errors(form))
        account = form.save()
        audit.record(request, AuditAction.CLOUD_ACCOUNT_ADD, None, account=account.name,
                     identity=account.identity)
        return Response(s.CloudAccountSerializer(account).data, status=status.HTTP_201_CREATED)


class CloudAccountDetail(generics.RetrieveAPIView):
    serializer_class = s.CloudAccountSerializer

    def get_object(self) -> CloudAccount:
        return owned_account(self.request, self.kwargs["account_id"])


def _region(request: Request, account: CloudAccount) -> str:
    return request.query_params.get("region") or account.default_region


def _lookup(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except wizard_checks.CheckFailed as exc:
        raise Refused(str(exc), code="lookup_failed") from None


REGION = OpenApiParameter("region", str, description="Default: the account's region.")


class RegionList(APIView):
    @extend_schema(responses=s.RegionSerializer(many=True), summary="Regions the account sees")
    def get(self, request: Request, account_id: int) -> Response:
        account = owned_account(request, account_id)
        regions = _lookup(lambda: wizard_checks.list_regions(account, account.default_region))
        return Response([{"region_id": r.region_id, "local_name": r.local_name}
                         for r in regions])


class NetworkChoices(APIView):
    @extend_schema(parameters=[REGION], responses=s.NetworkChoicesSerializer,
                   summary="Zones, VPCs and vSwitches of a region (the wizard's network step)")
    def get(self, request: Request, account_id: int) -> Response:
        account = owned_account(request, account_id)
        found = _lookup(lambda: wizard_checks.network_choices(account, _region(request,
                                                                               account)))
        return Response({
            "zones": found.zones,
            "nlb_zones": found.nlb_zones,
            "vpcs": [{"vpc_id": v.vpc_id, "cidr": v.cidr, "name": v.name} for v in found.vpcs],
            "vswitches": [{"vswitch_id": v.vswitch_id, "vpc_id": v.vpc_id,
                           "zone_id": v.zone_id, "cidr": v.cidr, "name": v.name,
                           "available_ips": v.available_ips} for v in found.vswitches],
        })


class RdsChoices(APIView):
    @extend_schema(parameters=[REGION, OpenApiParameter("zone", str, required=True),
                               OpenApiParameter("engine", str, enum=["MySQL", "PostgreSQL"],
                                                description="Default MySQL"),
                               OpenApiParameter("version", str,
                                                description="Default: the engine's default")],
                   responses=s.RdsChoicesSerializer,
                   summary="Versions and instance classes RDS sells of an engine in a zone")
    def get(self, request: Request, account_id: int) -> Response:
        account = owned_account(request, account_id)
        zone = request.query_params.get("zone", "")
        if not zone:
            raise FieldErrors({"zone": [_("This field is required.")]})
        engine = request.query_params.get("engine") or "MySQL"
        kinds = {label: kind for kind, label in ENGINE_LABELS.items()}
        if engine not in kinds:
            raise FieldErrors({"engine": [_("Choose MySQL or PostgreSQL.")]})
        version = request.query_params.get("version") or DEFAULT_VERSIONS[kinds[engine]]
        found = _lookup(lambda: wizard_checks.rds_choices(account, _region(request, account),
                                                          zone, version, engine))
        return Response({"zone": found.zone, "versions": found.versions, "classes": [
            {"instance_class": c.instance_class, "storage_min": c.storage_min,
             "storage_max": c.storage_max, "storage_step": c.storage_step}
            for c in found.classes]})


class K3sVersionCheck(APIView):
    @extend_schema(parameters=[OpenApiParameter("version", str, required=True),
                               OpenApiParameter("install_source", str),
                               OpenApiParameter("install_base_url", str)],
                   responses=s.K3sVersionSerializer,
                   summary="Is this K3s release or channel at the install source? (the "
                           "wizard's K3s step)")
    def get(self, request: Request) -> Response:
        params = request.query_params
        form = K3sStepForm({"version": params.get("version", ""),
                            "install_source": params.get("install_source") or "official",
                            "install_base_url": params.get("install_base_url", "")})
        if not form.is_valid():
            raise FieldErrors(_form_errors(form))
        data = form.cleaned_data
        return Response({"version": data.get("k3s_version", ""),
                         "channel": data.get("k3s_channel", ""),
                         "exists": None if form.warnings else True,
                         "install_source": data["install_source"],
                         "warnings": form.warnings})


# --- clusters -------------------------------------------------------------------------------


def _with_active_runs(clusters: QuerySet[Cluster]) -> QuerySet[Cluster]:
    return clusters.prefetch_related(Prefetch("runs", queryset=Run.objects.active()
                                              .order_by("-created_at"), to_attr="active_runs"))


class ClusterList(generics.ListAPIView):
    serializer_class = s.ClusterSerializer

    @extend_schema(parameters=[OpenApiParameter("name", str), OpenApiParameter("status", str)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Cluster]:
        clusters = queries.owned_clusters(self.request.user)
        for name in ("name", "status"):
            if self.request.query_params.get(name):
                clusters = clusters.filter(**{name: self.request.query_params[name]})
        return _with_active_runs(clusters.order_by("-created_at", "-pk"))

    @extend_schema(
        request=s.ClusterSpec,
        parameters=[OpenApiParameter("dry_run", bool, description="Only check the spec.")],
        responses={202: s.CreatedSerializer, 200: s.DryRunSerializer,
                   400: OpenApiResponse(description="Field errors, the wizard's messages")},
        summary="Create a cluster from what the wizard collects (checked by the same rules)")
    def post(self, request: Request) -> Response:
        spec = _body(request)
        try:
            checked = cluster_spec.check(spec, request.user)
            if request.query_params.get("dry_run") in ("1", "true", "yes"):
                return Response({"valid": True, "warnings": checked.warnings,
                                 "billed": cluster_spec.billed(checked, request.user)})
            cluster = cluster_spec.build(checked, request.user)
        except cluster_spec.SpecInvalid as exc:
            raise FieldErrors(exc.errors) from None
        return started(request, cluster, lambda: operations.start_create(cluster, request.user),
                       action=AuditAction.CLUSTER_CREATE,
                       extra={"cluster": s.ClusterSerializer(cluster).data,
                              "warnings": checked.warnings})


class ClusterDetail(generics.RetrieveAPIView):
    serializer_class = s.ClusterDetailSerializer

    def get_object(self) -> Cluster:
        return owned_cluster(self.request, self.kwargs["code"])


class ClusterHealth(APIView):
    @extend_schema(responses=s.HealthSerializer, summary="The last health judgment")
    def get(self, request: Request, code: Any) -> Response:
        return Response(s.HealthSerializer(owned_cluster(request, code)).data)


class ClusterHealthCheck(APIView):
    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT},
                   summary="Check health now (queued like beat's checks)")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        queued = operations.request_health_check(cluster)
        audit.record(request, AuditAction.HEALTH_CHECK, cluster, queued=queued)
        return Response({"queued": queued}, status=status.HTTP_202_ACCEPTED)


class KubeconfigDownload(APIView):
    #: The cluster-admin kubeconfig is a credential: read-write tokens only (permissions.py).
    hands_out_credentials = True

    @extend_schema(responses={(200, "application/yaml"): OpenApiTypes.STR},
                   summary="The admin kubeconfig (audited; the one secret the API hands out)")
    def get(self, request: Request, code: Any) -> HttpResponse:
        cluster = owned_cluster(request, code)
        if not cluster.kubeconfig:
            raise NotFound(_("This cluster has no kubeconfig yet: it is written when the "
                             "create run verifies the API through the SLB."))
        audit.record(request, AuditAction.KUBECONFIG_DOWNLOAD, cluster)
        response = HttpResponse(cluster.kubeconfig,
                                content_type="application/yaml; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{cluster.name}.yaml"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "no-store"
        return response


class GeneratedKeyDownload(APIView):
    """The private key of the key pair the panel generated for the cluster's instances, as
    the destroy form hands it out (web views.generated_key_download): the owner's, POST
    only (a credential: never fetched by a link), read-write tokens only, no-store, each
    download in the audit trail with the fingerprint, never the key. It is what lets
    "keep the instances" (destroy) and "keep the instance" (a removed node) go ahead
    (operations.keep_instances_problem), so the API alone can keep them."""

    hands_out_credentials = True

    @extend_schema(request=None, responses={200: s.GeneratedKeySerializer},
                   summary="Download the generated SSH private key of the cluster's "
                           "instances (audited; needed to keep them)")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        try:
            key, fingerprint = generated_key.take(request, cluster)
        except operations.OperationRefused as exc:
            raise Refused(str(exc)) from None
        response = Response({"private_key": key, "fingerprint": fingerprint})
        response["Cache-Control"] = "no-store"
        return response


# --- personal kubeconfigs (clusters/operations/kube_credentials) ---------------------------


def owned_credential(request: Request, code: Any, credential_id: Any) -> KubeCredential:
    return get_object_or_404(owned_cluster(request, code).kube_credentials, pk=credential_id)


class KubeCredentialList(generics.ListAPIView):
    """A cluster's personal kubeconfigs, newest first; `?live=1` for the revocable ones only
    (every live one, however many ended ones there are)."""

    serializer_class = s.KubeCredentialSerializer

    def get_queryset(self) -> QuerySet[KubeCredential]:
        rows = owned_cluster(self.request, self.kwargs["code"]).kube_credentials.all()
        if self.request.query_params.get("live") in ("1", "true"):
            rows = rows.filter(status__in=kube_credentials.LIVE)
        return rows

    @extend_schema(parameters=[OpenApiParameter("live", bool)],
                   summary="Personal kubeconfigs issued for the cluster (no tokens)")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.KubeCredentialIssueSerializer,
                   responses={201: s.KubeCredentialIssuedSerializer},
                   summary="Issue a personal, revocable kubeconfig (its token in this answer "
                           "only)")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        body = s.KubeCredentialIssueSerializer(data=_body(request))
        body.is_valid(raise_exception=True)
        lifetime = body.validated_data["lifetime"]
        try:
            issued = operations.issue_kube_credential(cluster, request.user, lifetime)
        except operations.OperationRefused as exc:
            raise Refused(str(exc)) from None
        credential = issued.credential
        audit.record(request, AuditAction.KUBE_CREDENTIAL_ISSUE, cluster, lifetime=lifetime,
                     **operations.kube_credential_details(credential))
        url = reverse("api:kube-credential", args=[cluster.code, credential.pk])
        response = Response({"credential": s.KubeCredentialSerializer(credential).data,
                             "kubeconfig": issued.kubeconfig},
                            status=status.HTTP_201_CREATED, headers={"Location": url})
        response["Cache-Control"] = "no-store"
        return response


class KubeCredentialDetail(generics.RetrieveAPIView):
    serializer_class = s.KubeCredentialSerializer

    def get_object(self) -> KubeCredential:
        return owned_credential(self.request, self.kwargs["code"], self.kwargs["credential_id"])


class KubeCredentialRevoke(APIView):
    @extend_schema(request=None, responses={200: s.KubeCredentialSerializer},
                   summary="Revoke a personal kubeconfig (its token is refused within seconds)")
    def post(self, request: Request, code: Any, credential_id: int) -> Response:
        credential = owned_credential(request, code, credential_id)
        try:
            credential = operations.revoke_kube_credential(credential, request.user)
        except operations.OperationRefused as exc:
            raise Refused(str(exc)) from None
        audit.record(request, AuditAction.KUBE_CREDENTIAL_REVOKE, credential.cluster,
                     **operations.kube_credential_details(credential))
        return Response(s.KubeCredentialSerializer(credential).data)


class KubeconfigRenew(APIView):
    @extend_schema(request=None, responses={202: s.OperationSerializer},
                   summary="Fetch the kubeconfig again from a server")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        return started(request, cluster,
                       lambda: operations.start_kubeconfig_renewal(cluster, request.user),
                       action=AuditAction.KUBECONFIG_RENEW)


class ClusterDestroy(APIView):
    @extend_schema(request=s.DestroySerializer, responses={202: s.OperationSerializer},
                   summary="Delete everything the cluster bought (type its name to confirm)")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        body = _body(request)
        problem = operations.confirm_problem(cluster, str(body.get("confirm_name") or ""))
        if problem:
            raise FieldErrors({"confirm_name": [problem]})
        # Validated as booleans: "false" is false, null is refused, never truthy by accident.
        flags = s.DestroySerializer(data={"confirm_name": cluster.name, **body})
        flags.is_valid(raise_exception=True)
        keep = flags.validated_data["keep_database"]
        keep_instances = flags.validated_data["keep_instances"]
        return started(request, cluster,
                       lambda: operations.start_destroy(cluster, request.user,
                                                        confirm_name=cluster.name,
                                                        keep_database=keep,
                                                        keep_instances=keep_instances),
                       action=AuditAction.CLUSTER_DESTROY,
                       details=lambda run: {"keep_database": keep,
                                            "keep_instances": keep_instances})


class ClusterUpgrade(APIView):
    @extend_schema(request=s.UpgradeSerializer, responses={202: s.OperationSerializer},
                   summary="Upgrade K3s, servers one at a time, then agents")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        form = UpgradeForm(_body(request), cluster=cluster)
        if not form.is_valid():
            raise FieldErrors(_form_errors(form))
        version = form.cleaned_data["version"]
        return started(request, cluster,
                       lambda: operations.start_upgrade(cluster, version, request.user),
                       action=AuditAction.CLUSTER_UPGRADE,
                       details=lambda run: {"from_version": run.params["from_version"],
                                            "to_version": run.params["to_version"]})


# --- nodes -----------------------------------------------------------------------------------


class NodeList(generics.ListAPIView):
    serializer_class = s.NodeSerializer

    def get_queryset(self) -> QuerySet[Node]:
        cluster = owned_cluster(self.request, self.kwargs["code"])
        return cluster.nodes.order_by("pk")

    @extend_schema(request=s.AddNodeSerializer, responses={202: s.OperationSerializer},
                   summary="Add a server or an agent (checked as the wizard checks hosts)")
    def post(self, request: Request, code: Any) -> Response:
        cluster = owned_cluster(request, code)
        body = _body(request)
        data = {f"node-{name}": value for name, value in body.items() if value is not None}
        data.setdefault("node-ssh_port", 22)
        data.setdefault("node-ssh_user", "root")
        data.setdefault("node-auth", "key")
        form = AddNodeForm(data, cluster=cluster)
        if not form.is_valid():
            raise FieldErrors(_form_errors(form))
        role, address = form.cleaned_data["role"], form.cleaned_data["private_ip"]
        return started(request, cluster,
                       lambda: operations.start_add_nodes(cluster, [form.host()], request.user),
                       action=AuditAction.NODE_ADD,
                       details=lambda run: {"role": role, "private_ip": address})


class NodeDetail(generics.RetrieveAPIView):
    serializer_class = s.NodeSerializer

    def get_object(self) -> Node:
        cluster = owned_cluster(self.request, self.kwargs["code"])
        return get_object_or_404(Node, pk=self.kwargs["node_id"], cluster=cluster)


class NodeInstances(APIView):
    @extend_schema(request=s.AddInstancesSerializer,
                   responses={202: s.AddInstancesStartedSerializer},
                   summary="Add nodes by buying ECS instances like the cluster's first ones")
    def post(self, request: Request, code: Any) -> Response:
        """The page's "Add instances": the same form (at least one node; the billing
        confirmed), the same operation (a DryRun first, one RunInstances per node through
        the ledger, then preflight and K3s), the same audit row."""
        cluster = owned_cluster(request, code)
        body = _body(request)
        data = {f"instances-{name}": value for name, value in body.items()
                if value is not None}
        data.setdefault("instances-servers", 0)
        data.setdefault("instances-agents", 0)
        form = AddInstancesForm(data, cluster=cluster)
        if not form.is_valid():
            raise FieldErrors(_form_errors(form))
        servers, agents = form.cleaned_data["servers"], form.cleaned_data["agents"]
        billed = operations.billed_summary(cluster, servers, agents)
        even = operations.etcd_even_warning(cluster, servers) if servers else ""
        return started(request, cluster,
                       lambda: operations.start_add_instances(cluster, servers, agents,
                                                              request.user),
                       action=AuditAction.NODE_ADD,
                       details=lambda run: {"servers": servers, "agents": agents,
                                            "instance_type": (cluster.instance_order or {})
                                            .get("instance_type")},
                       extra={"billed": billed, **({"warnings": [even]} if even else {})})


class NodeRemove(APIView):
    @extend_schema(request=s.NodeRemoveSerializer, responses={202: s.OperationSerializer},
                   summary="Remove a node (drained, K3s uninstalled, out of the SLB; an "
                           "instance the panel bought is released unless kept)")
    def post(self, request: Request, code: Any, node_id: int) -> Response:
        cluster = owned_cluster(request, code)
        node = get_object_or_404(Node, pk=node_id, cluster=cluster)
        body = s.NodeRemoveSerializer(data=_body(request) if request.data else {})
        body.is_valid(raise_exception=True)
        keep = body.validated_data["keep_instance"]
        problem = operations.not_bought_problem(cluster, node) if keep else ""
        if problem:
            raise FieldErrors({"keep_instance": [problem]})
        return started(request, cluster,
                       lambda: operations.start_remove_node(cluster, node, request.user,
                                                            keep_instance=keep),
                       action=AuditAction.NODE_REMOVE,
                       details=lambda run: {"role": node.role, "private_ip": node.private_ip,
                                            **operations.removal_details(run)})


# --- runs and steps --------------------------------------------------------------------------


class RunList(generics.ListAPIView):
    serializer_class = s.RunSerializer

    def get_queryset(self) -> QuerySet[Run]:
        cluster = owned_cluster(self.request, self.kwargs["code"])
        return (Run.objects.filter(cluster=cluster).select_related("cluster", "created_by")
                .order_by("-created_at", "-pk"))


class RunDetail(APIView):
    @extend_schema(responses=s.RunDetailSerializer, summary="A run and its steps")
    def get(self, request: Request, code: Any, run_id: int) -> Response:
        return Response(s.RunDetailSerializer(queries.owned_run(request.user, code,
                                                                run_id)).data)


class RunRetry(APIView):
    @extend_schema(request=None, responses={202: s.OperationSerializer},
                   summary="Resume a failed or cancelled run from where it stopped")
    def post(self, request: Request, code: Any, run_id: int) -> Response:
        run = queries.owned_run(request.user, code, run_id)
        try:
            run_actions.retry(request, run)
        except operations.OperationRefused as exc:
            raise Refused(str(exc)) from None
        run.refresh_from_db()
        return Response({"run": s.RunSerializer(run).data, "run_url": run_url(run)},
                        status=status.HTTP_202_ACCEPTED)


class RunCancel(APIView):
    @extend_schema(request=None, responses={202: s.OperationSerializer},
                   summary="Cancel a run (the running step finishes first)")
    def post(self, request: Request, code: Any, run_id: int) -> Response:
        run = queries.owned_run(request.user, code, run_id)
        try:
            run_actions.cancel(request, run)
        except operations.OperationRefused as exc:
            raise Refused(str(exc)) from None
        run.refresh_from_db()
        return Response({"run": s.RunSerializer(run).data, "run_url": run_url(run)},
                        status=status.HTTP_202_ACCEPTED)


class StepLog(APIView):
    @extend_schema(parameters=[OpenApiParameter("after", int, description=(
        "Lines after this sequence number (0: from the start); continue with `next`."))],
        responses=s.LogPageSerializer, summary="A step's log lines, oldest first, 500 at most")
    def get(self, request: Request, code: Any, run_id: int, step_id: int) -> Response:
        run = queries.owned_run(request.user, code, run_id)
        text = request.query_params.get("after", "0")
        after = int(text) if text.isdigit() else 0
        return Response(queries.log_page(run, step_id, after=after))


# --- the audit trail -------------------------------------------------------------------------


class AuditEventList(generics.ListAPIView):
    """What the user did (or a token of theirs did), newest first; ?cluster=<id> narrows it
    to one of their clusters."""

    serializer_class = s.AuditEventSerializer

    @extend_schema(parameters=[OpenApiParameter("cluster", OpenApiTypes.UUID)])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AuditEvent]:
        events = AuditEvent.objects.filter(user_id=self.request.user.pk)
        code = self.request.query_params.get("cluster")
        if code:
            events = events.filter(cluster=owned_cluster(self.request, code))
        return events.select_related("cluster").order_by("-time", "-pk")


class NoSuchEndpoint(APIView):
    """Any other path under /api/v1/: 404 in the API's error shape, not an HTML page."""

    permission_classes = ()
    authentication_classes = ()

    @extend_schema(exclude=True)
    def get(self, request: Request, rest: str = "") -> Response:
        raise NotFound()

    post = put = patch = delete = get
