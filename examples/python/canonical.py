"""Canonical bytes of lienthong messages, written from docs/signing.md (not from the
Rust code): what a DMS signs. Works on the proto3-JSON shape of a message (a dict with
the .proto field names), which is what json_format.MessageToDict(...,
preserving_proto_field_name=True) gives for a generated message too."""

import base64
import struct


class Canon:
    def __init__(self, tag):
        self.out = bytearray(tag.encode() + b"\n")

    def bytes(self, b):
        self.out += struct.pack(">I", len(b)) + b
        return self

    def str(self, s):
        return self.bytes((s or "").encode("utf-8"))

    def u64(self, n):
        self.out += struct.pack(">Q", int(n or 0))
        return self

    def i64(self, n):
        self.out += struct.pack(">q", int(n or 0))
        return self

    def flag(self, present):
        self.out.append(1 if present else 0)
        return self

    def count(self, n):
        self.out += struct.pack(">I", n)
        return self

    def strs(self, items):
        items = items or []
        self.count(len(items))
        for s in items:
            self.str(s)
        return self

    def organization(self, o):
        o = o or {}
        for f in ("code", "in_charge", "name", "address", "email", "telephone", "fax", "website"):
            self.str(o.get(f))
        return self

    def response_for(self, r):
        r = r or {}
        for f in ("organ_id", "code", "promulgation_date", "document_id"):
            self.str(r.get(f))
        return self

    def staff(self, s):
        self.flag(s is not None)
        if s is not None:
            for f in ("department", "staff", "email", "mobile"):
                self.str(s.get(f))
        return self


def _b64(s):
    return base64.b64decode(s or "")


def document_bytes(d):
    c = Canon("lienthong/document/v1")
    c.str(d.get("id")).organization(d.get("from"))
    to = d.get("to") or []
    c.count(len(to))
    for o in to:
        c.organization(o)
    h = d.get("header") or {}
    code, prom = h.get("code") or {}, h.get("promulgation") or {}
    dt, signer, other = h.get("document_type") or {}, h.get("signer") or {}, h.get("other") or {}
    c.str(code.get("number")).str(code.get("notation"))
    c.str(prom.get("place")).str(prom.get("date"))
    c.u64(dt.get("kind")).u64(dt.get("detail")).str(dt.get("name"))
    c.str(h.get("subject")).str(h.get("content"))
    c.str(signer.get("competence")).str(signer.get("position")).str(signer.get("full_name"))
    c.str(h.get("due_date")).strs(h.get("to_places"))
    c.u64(other.get("priority")).str(other.get("sphere_of_promulgation"))
    c.str(other.get("typist_notation")).u64(other.get("promulgation_amount"))
    c.u64(other.get("page_amount")).strs(other.get("appendixes"))
    rf = h.get("response_for") or []
    c.count(len(rf))
    for r in rf:
        c.response_for(r)
    c.u64(h.get("steering_type"))
    b = d.get("business") or {}
    c.u64(b.get("business_type")).str(b.get("reason")).str(b.get("referenced_document_id"))
    c.u64(b.get("paper"))
    info = b.get("document_info")
    c.flag(info is not None)
    if info is not None:
        c.u64(info.get("document_info")).u64(info.get("document_receiver"))
        receivers = info.get("receivers") or []
        c.count(len(receivers))
        for r in receivers:
            c.str(r.get("organ_id")).u64(r.get("receiver_type"))
    replacements = b.get("replacements") or []
    c.count(len(replacements))
    for r in replacements:
        c.str(r.get("document_id")).strs(r.get("organ_ids"))
    c.staff(b.get("staff"))
    attachments = d.get("attachments") or []
    c.count(len(attachments))
    for a in attachments:
        c.str(a.get("content_id")).str(a.get("name")).str(a.get("content_type"))
        c.str(a.get("description")).u64(a.get("size")).bytes(_b64(a.get("sha256")))
    c.i64(d.get("created_at_unix_ms"))
    expires = int(d.get("expires_at_unix_ms") or 0)
    c.flag(expires != 0)
    if expires != 0:
        c.i64(expires)
    c.bytes(_b64(d.get("edxml_preserved")))
    return bytes(c.out)


def status_bytes(n):
    c = Canon("lienthong/status/v1")
    c.str(n.get("id")).organization(n.get("from")).str(n.get("to"))
    c.response_for(n.get("response_for")).staff(n.get("staff"))
    c.str(n.get("status_code")).str(n.get("description")).i64(n.get("at_unix_ms"))
    c.bytes(_b64(n.get("edxml_preserved")))
    return bytes(c.out)


def receipt_bytes(document_id, content_digest, node, accepted_at):
    return bytes(Canon("lienthong/receipt/v1").str(document_id).bytes(content_digest)
                 .str(node).i64(accepted_at).out)


def trace_entry_bytes(document_id, content_digest, node, at):
    return bytes(Canon("lienthong/trace/v1").str(document_id).bytes(content_digest)
                 .str(node).i64(at).out)


def directory_bytes(d):
    c = Canon("lienthong/directory/v2")
    c.u64(d.get("version")).i64(d.get("issued_at_unix_ms"))
    nodes = d.get("nodes") or []
    c.count(len(nodes))
    for n in nodes:
        parent = n.get("parent") or ""
        c.str(n.get("id")).str(n.get("level")).flag(parent != "")
        if parent:
            c.str(parent)
        c.str(n.get("endpoint"))
    agencies = d.get("agencies") or []
    c.count(len(agencies))
    for a in agencies:
        edxml_id = a.get("edxml_id") or ""
        c.str(a.get("code")).str(a.get("name")).strs(a.get("aliases")).flag(edxml_id != "")
        if edxml_id:
            c.str(edxml_id)
        c.str(a.get("home"))
    return bytes(c.out)
