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
    if annotations.get(REMOVE_ANNOTATION, "").lower() == "true" and \
            annotations.get(REMOVED_NODE_NAME_ANNOTATION):
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


def reconcile(member: Member, kine: Kine) -> None:
    """One pass of the controller over every Node."""
    for row in kine.list(nodes.NODE_PREFIX):
        node = json.loads(row.value)
        meta = node["metadata"]
        if not is_etcd_node(node):
            continue
        if meta.get("deletionTimestamp"):
            finalize(member, kine, meta["name"])
            continue
        annotations = meta.get("annotations", {})
        if annotations.get(REMOVE_ANNOTATION, "").lower() != "true" or \
                REMOVED_NODE_NAME_ANNOTATION in annotations:
            continue
        name = annotations.get(NODE_NAME_ANNOTATION)
        address = annotations.get(NODE_ADDRESS_ANNOTATION)
        if name is None or address is None:
            continue
        member.remove_peer(name, address, allow_self=True)
        annotations[REMOVED_NODE_NAME_ANNOTATION] = name
        annotations.pop(NODE_NAME_ANNOTATION, None)
        annotations.pop(NODE_ADDRESS_ANNOTATION, None)
        try:
            kine.update(row.name, json.dumps(node).encode(), row.id)
        except KeyExists:
            continue
