"""The Node side of K3s's embedded etcd: role label, member annotations, member removal.

Why: the panel removes a dead server by deleting its Node (or annotating it), and reads the
roles `control-plane,etcd,master`; both must behave as K3s's controllers do
(k3s-io/k3s pkg/etcd/metadata_controller.go, member_controller.go):
  - every etcd server's Node carries node-role.kubernetes.io/etcd=true and the annotations
    etcd.k3s.cattle.io/node-name (the member name) and etcd.k3s.cattle.io/node-address;
  - wrangler's OnRemove handler "managed-etcd-controller" keeps the finalizer
    wrangler.cattle.io/managed-etcd-controller on the Node, so a deleted Node stays (with a
    deletionTimestamp) until its member is removed ("Removing etcd member <node> from
    cluster"), then goes;
  - etcd.k3s.cattle.io/remove=true removes the member and records
    etcd.k3s.cattle.io/removed-node-name, dropping the name/address annotations.
"""

from __future__ import annotations

import contextlib
import json

from sandbox.k3s import logs, nodes
from sandbox.k3s.etcd import (
    ETCD_ROLE_LABEL,
    MEMBER_FINALIZER,
    NODE_ADDRESS_ANNOTATION,
    NODE_NAME_ANNOTATION,
    REMOVE_ANNOTATION,
    REMOVED_NODE_NAME_ANNOTATION,
    Member,
)
from sandbox.k3s.kine import DatastoreError, KeyExists, Kine


def etcd_node_metadata(node: dict, member: Member) -> None:
    meta = node["metadata"]
    meta["labels"][ETCD_ROLE_LABEL] = "true"
    meta.setdefault("annotations", {})[NODE_NAME_ANNOTATION] = member.name
    meta["annotations"][NODE_ADDRESS_ANNOTATION] = member.address
    finalizers = meta.setdefault("finalizers", [])
    if MEMBER_FINALIZER not in finalizers:
        finalizers.append(MEMBER_FINALIZER)


def is_etcd_node(node: dict) -> bool:
    return ETCD_ROLE_LABEL in node["metadata"].get("labels", {})


def remove_member_of(member: Member, node: dict) -> None:
    """onRemove: the member named by the Node's annotations leaves the cluster."""
    meta = node["metadata"]
    annotations = meta.get("annotations", {})
    key = meta["name"]
    logs.info(f"Removing etcd member {key} from cluster")
    if annotations.get(REMOVED_NODE_NAME_ANNOTATION):
        logs.info(f"etcd member {key} was already removed as member name "
                  f"{annotations[REMOVED_NODE_NAME_ANNOTATION]} via annotation from the cluster")
        return
    name = annotations.get(NODE_NAME_ANNOTATION)
    if name is None:
        raise DatastoreError(f"node name annotation for node {key} not found")
    address = annotations.get(NODE_ADDRESS_ANNOTATION)
    if address is None:
        raise DatastoreError(f"node address annotation for node {key} not found")
    member.remove_peer(name, address, allow_self=True)


def finalize(member: Member, kine: Kine, name: str) -> bool:
    """Remove the deleted Node's member, then its finalizer; the Node goes. True if gone."""
    row = kine.get(nodes.NODE_PREFIX + name)
    if row is None:
        return True
    node = json.loads(row.value)
    if MEMBER_FINALIZER in node["metadata"].get("finalizers", []):
        remove_member_of(member, node)
        node["metadata"]["finalizers"].remove(MEMBER_FINALIZER)
    if node["metadata"].get("finalizers"):
        try:
            kine.update(nodes.NODE_PREFIX + name, json.dumps(node).encode(), row.id)
        except KeyExists:
            return False
        return False
    kine.delete(nodes.NODE_PREFIX + name)
    kine.delete(nodes.LEASE_PREFIX + name)
    kine.delete(f"{nodes.NODE_PASSWORD_PREFIX}{name}.node-password.k3s")
    return True


# rpctypes.ErrMemberNotEnoughStarted, as etcd's JSON gateway words it.
NOT_ENOUGH_STARTED = "etcdserver: re-configuration failed due to not enough started members"


def reconcile(member: Member, kine: Kine) -> None:
    """One pass of the controller over every Node; a Node's error is wrangler's requeue."""
    for row in kine.list(nodes.NODE_PREFIX):
        node = json.loads(row.value)
        if not is_etcd_node(node):
            continue
        try:
            if node["metadata"].get("deletionTimestamp"):
                finalize(member, kine, node["metadata"]["name"])
            else:
                sync(member, kine, row.name, row.id, node)
        except DatastoreError as exc:
            logs.error(f"error syncing '{node['metadata']['name']}': handler "
                       f"managed-etcd-controller: {exc}, requeuing")


def sync(member: Member, kine: Kine, key: str, revision: int, node: dict) -> None:
    """etcdMemberHandler.sync (pkg/etcd/member_controller.go) for a Node with the remove
    annotation:
      - the name and address annotations must be there (else an error, retried);
      - removed-node-name set and different from the current member name: the server rejoined
        under a new name, so both removal annotations are cleared (it can be removed again);
      - remove=true: RemovePeer; if etcd refuses for lack of started members
        (ErrMemberNotEnoughStarted) the remove annotation is cleared (re-request later);
        else removed-node-name=<name> and the name/address annotations go."""
    meta = node["metadata"]
    annotations = meta.get("annotations", {})
    if REMOVE_ANNOTATION not in annotations:
        return
    name = annotations.get(NODE_NAME_ANNOTATION)
    if name is None:
        raise DatastoreError(f"node name annotation for node {meta['name']} not found")
    address = annotations.get(NODE_ADDRESS_ANNOTATION)
    if address is None:
        raise DatastoreError(f"node address annotation for node {meta['name']} not found")
    fields = {"name": name, "address": address}
    removed = annotations.get(REMOVED_NODE_NAME_ANNOTATION)
    if removed is not None:
        if removed != name:
            logs.info("Resetting removed node flag as removed node name does not match "
                      "current node name", fields)
            annotations.pop(REMOVED_NODE_NAME_ANNOTATION, None)
            annotations.pop(REMOVE_ANNOTATION, None)
            _update(kine, key, node, revision)
        return
    if annotations[REMOVE_ANNOTATION].lower() != "true":
        return
    logs.info("Removing etcd member from cluster due to remove annotation", fields)
    try:
        member.remove_peer(name, address, allow_self=True)
    except DatastoreError as exc:
        if NOT_ENOUGH_STARTED not in str(exc):
            raise
        logs.error(f"etcd member removal rejected, clearing remove annotation: {exc}", fields)
        annotations.pop(REMOVE_ANNOTATION, None)
        _update(kine, key, node, revision)
        return
    logs.info("etcd emember removed successfully", fields)  # (sic) K3s's own spelling
    annotations[REMOVED_NODE_NAME_ANNOTATION] = name
    annotations.pop(NODE_NAME_ANNOTATION, None)
    annotations.pop(NODE_ADDRESS_ANNOTATION, None)
    _update(kine, key, node, revision)


def _update(kine: Kine, key: str, node: dict, revision: int) -> None:
    """nodeController.Update: a conflict is retried on the next pass."""
    with contextlib.suppress(KeyExists):
        kine.update(key, json.dumps(node).encode(), revision)
