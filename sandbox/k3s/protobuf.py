"""Read the protobuf bodies kubectl sends for the objects the stand-in creates.

Why: kubectl's typed clients (`kubectl create serviceaccount|clusterrolebinding|token`) send
`Content-Type: application/vnd.kubernetes.protobuf`, which kube-apiserver accepts for built-in
types. The body is K8s's envelope (k8s.io/apimachinery pkg/runtime/serializer/protobuf: the
magic `k8s\\x00`, then runtime.Unknown {typeMeta=1 {apiVersion=1, kind=2}, raw=2}) around the
object's generated.proto message. Only the fields these three kinds need are mapped (field
numbers from k8s.io/api core/v1, rbac/v1, authentication/v1 and apimachinery meta/v1
generated.proto); the answer is JSON, which the client's Accept header also allows.
"""

from __future__ import annotations

from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class DecodeError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(data: bytes) -> dict[int, list[Any]]:
    """Field number -> values (ints for varints, bytes for length-delimited)."""
    if not isinstance(data, bytes):  # a varint where a message was expected
        raise DecodeError("expected an embedded message, got wire type varint")
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise DecodeError("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise DecodeError(f"unsupported wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def _text(found: dict[int, list[Any]], number: int) -> str:
    """A string field; a varint or fixed field under a string's number is a bad body (400),
    not a crash."""
    values = found.get(number)
    if not values:
        return ""
    value = values[-1]
    if not isinstance(value, bytes):
        raise DecodeError(f"field {number}: expected a string, got wire type varint")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise DecodeError(f"field {number}: not UTF-8") from None


def _map(found: dict[int, list[Any]], number: int) -> dict[str, str]:
    entries = {}
    for raw in found.get(number, []):
        entry = fields(raw)
        entries[_text(entry, 1)] = _text(entry, 2)
    return entries


def _meta(raw: bytes) -> dict[str, Any]:
    found = fields(raw)
    meta: dict[str, Any] = {}
    for key, number in (("name", 1), ("generateName", 2), ("namespace", 3)):
        if found.get(number):
            meta[key] = _text(found, number)
    for key, number in (("labels", 11), ("annotations", 12)):
        if found.get(number):
            meta[key] = _map(found, number)
    return meta


def _object(found: dict[int, list[Any]]) -> dict[str, Any]:
    return {"metadata": _meta(found[1][-1]) if found.get(1) else {}}


def _service_account(found: dict[int, list[Any]]) -> dict[str, Any]:
    return _object(found)


def _cluster_role_binding(found: dict[int, list[Any]]) -> dict[str, Any]:
    obj = _object(found)
    subjects = []
    for raw in found.get(2, []):
        subject = fields(raw)
        item = {"kind": _text(subject, 1), "name": _text(subject, 3)}
        if subject.get(2):
            item["apiGroup"] = _text(subject, 2)
        if subject.get(4):
            item["namespace"] = _text(subject, 4)
        subjects.append(item)
    obj["subjects"] = subjects
    if found.get(3):
        ref = fields(found[3][-1])
        obj["roleRef"] = {"apiGroup": _text(ref, 1), "kind": _text(ref, 2),
                          "name": _text(ref, 3)}
    return obj


def _token_request(found: dict[int, list[Any]]) -> dict[str, Any]:
    obj = _object(found)
    spec: dict[str, Any] = {}
    if found.get(2):
        raw_spec = fields(found[2][-1])
        audiences = [value.decode() for value in raw_spec.get(1, [])
                     if isinstance(value, bytes)]
        if audiences:
            spec["audiences"] = audiences
        if raw_spec.get(4):
            seconds = raw_spec[4][-1]
            if not isinstance(seconds, int):
                raise DecodeError("spec.expirationSeconds: expected a varint")
            spec["expirationSeconds"] = seconds - (1 << 64) if seconds >= 1 << 63 else seconds
    obj["spec"] = spec
    return obj


KINDS = {"ServiceAccount": _service_account, "ClusterRoleBinding": _cluster_role_binding,
         "TokenRequest": _token_request}


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object of one of KINDS as its JSON-shaped dict."""
    if not body.startswith(MAGIC):
        raise DecodeError("the body does not start with the k8s protobuf magic")
    envelope = fields(body[len(MAGIC):])
    type_meta = fields(envelope[1][-1]) if envelope.get(1) else {}
    kind = _text(type_meta, 2)
    if kind not in KINDS:
        raise DecodeError(f"no protobuf decoding for kind {kind!r}")
    obj = KINDS[kind](fields(envelope[2][-1]) if envelope.get(2) else {})
    obj["kind"], obj["apiVersion"] = kind, _text(type_meta, 1)
    return obj
