#!/usr/bin/env python3
"""A DMS speaking the national platform's VXP protocol (written from its description:
signed XroadVnpt-* headers, HMAC-SHA256 over the sign-header, hash-file in unpadded hex,
a sendEdoc body of the file and one CRLF) sends one large edXML message through a
lienthong VXP gateway and downloads it at the other end, with nothing but the standard
library; it streams both ways, so its own memory stays small, and reports the peak
resident memory of the process serving the gateway (VmHWM) before and after.

    target/release/lienthong dev --tiers 1 &     # prints `vxp <agency> <url> <system> <secret file>`
    python3 examples/python/vxp_large_message.py --size-mib 500 --pid <dev's pid> \\
        --ca <dev dir>/ca/ca.pem \\
        --sender "<the vxp line of one agency>" --recipient "<the vxp line of another>"

Not run by CI (it moves hundreds of MiB); the numbers it printed are in the closing note
of issue #12.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.parse

TIMESTAMP = "05122026T075731+0700"


class Dms:
    def __init__(self, line, ca):
        # vxp <agency code> <endpoint URL> <system id> <secret file>
        _, self.agency, url, self.system, secret_file = line.split()
        with open(secret_file) as f:
            self.secret = f.read().strip()
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.tls = ssl.create_default_context(cafile=ca)

    def headers(self, entries):
        """The signed headers: each entry as XroadVnpt-<key>, the sign-header (compact
        JSON in the order given), its key list, and its HMAC-SHA256 under the secret."""
        sign_header = "{" + ",".join(f'"XroadVnpt-{k}":"{v}"' for k, v in entries) + "}"
        mac = hmac.new(self.secret.encode(), sign_header.encode(), hashlib.sha256).hexdigest()
        out = {f"XroadVnpt-{k}": v for k, v in entries}
        out["Content-Type"] = dict(entries)["Content-Type"]
        out["XroadVnpt-sign-header-key"] = ";".join(k for k, _ in entries)
        out["XroadVnpt-sign-header"] = sign_header
        out["XroadVnpt-hash-header"] = mac
        return out

    def call(self, op, entries, body=b"", length=None, content_type="application/json"):
        signed = [("systemid", self.system)] + entries + [
            ("timestamp", TIMESTAMP),
            ("Content-Type", content_type),
        ]
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=600)
        headers = self.headers(signed)
        if length is not None:
            headers["Content-Length"] = str(length)
        conn.request("POST", "/" + op, body=body, headers=headers)
        return conn, conn.getresponse()

    def json_call(self, op, entries, body=b"{}"):
        conn, response = self.call(op, entries, body)
        answer = json.loads(response.read())
        conn.close()
        return answer


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def write_message(path, template, sender, recipient, size):
    """The sample message of the reference from `sender` to `recipient`, its attachment
    replaced by `size` random bytes; returns the attachment's SHA-256."""
    with open(template, encoding="utf-8") as f:
        text = f.read()
    text = text.replace("<edXML:OrganId>002.00.20.H13</edXML:OrganId>",
                        f"<edXML:OrganId>{sender}</edXML:OrganId>", 1)
    text = text.replace("<edXML:OrganId>000.00.15.H51</edXML:OrganId>",
                        f"<edXML:OrganId>{recipient}</edXML:OrganId>", 1)
    start = text.index(">", text.index("<edXML:ContentTransferEncoded")) + 1
    end = text.index("</edXML:ContentTransferEncoded>")
    digest = hashlib.sha256()
    chunk = 3 * 1024 * 1024  # a multiple of 3: no base64 padding inside
    with open(path, "wb") as out:
        out.write(text[:start].encode())
        left = size
        while left:
            data = os.urandom(min(chunk, left))
            digest.update(data)
            out.write(base64.b64encode(data))
            left -= len(data)
        out.write(text[end:].encode())
    return digest.hexdigest()


def hash_file(path):
    """hash-file as the SDK writes it: each byte of the SHA-256 in hex, unpadded."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            digest.update(block)
    return "".join("%x" % b for b in digest.digest())


def attachment_digest(edxml_stream):
    """The SHA-256 of the first attachment's content in an edXML stream, decoded as it
    passes (memory: a few MiB)."""
    open_tag, close_tag = b"<edXML:ContentTransferEncoded", b"</edXML:ContentTransferEncoded>"
    digest, buf, inside, pending = hashlib.sha256(), b"", False, b""
    for block in edxml_stream:
        buf += block
        if not inside:
            i = buf.find(open_tag)
            if i < 0:
                buf = buf[-len(open_tag):]
                continue
            j = buf.find(b">", i)
            if j < 0:
                continue
            buf, inside = buf[j + 1:], True
        k = buf.find(close_tag)
        text = buf if k < 0 else buf[:k]
        if k < 0:
            keep = len(close_tag)
            text, buf = buf[:-keep], buf[-keep:]
        pending += b"".join(text.split())
        usable = len(pending) - len(pending) % 4
        digest.update(base64.b64decode(pending[:usable]))
        pending = pending[usable:]
        if k >= 0:
            digest.update(base64.b64decode(pending))
            return digest.hexdigest()
    raise RuntimeError("no attachment content in the message")


def get_edoc_stream(response):
    """Yields the edXML of a getEdoc answer, decoding its base64 `data` as it arrives."""
    marker, buf, inside, pending = b'"data":"', b"", False, b""
    while True:
        block = response.read(4 << 20)
        if not block:
            break
        buf += block
        if not inside:
            i = buf.find(marker)
            if i < 0:
                buf = buf[-len(marker):]
                continue
            buf, inside = buf[i + len(marker):], True
        end = buf.find(b'"')
        text = buf if end < 0 else buf[:end]
        buf = b"" if end < 0 else buf[end:]
        pending += text
        usable = len(pending) - len(pending) % 4
        yield base64.b64decode(pending[:usable])
        pending = pending[usable:]
        if end >= 0:
            yield base64.b64decode(pending)
            return


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sender", required=True, help="the sender's `vxp …` line from lienthong dev")
    p.add_argument("--recipient", required=True, help="the recipient's `vxp …` line")
    p.add_argument("--ca", required=True, help="the CA certificate the gateway's certificate chains to")
    p.add_argument("--pid", type=int, required=True, help="the process serving the gateway")
    p.add_argument("--size-mib", type=int, default=500)
    p.add_argument("--template", default=os.path.join(
        os.path.dirname(__file__), "../../crates/lienthong-vxp/tests/fixtures/edoc_attachment.edxml"))
    args = p.parse_args()
    sender, recipient = Dms(args.sender, args.ca), Dms(args.recipient, args.ca)
    size = args.size_mib << 20

    with tempfile.TemporaryDirectory() as work:
        message = os.path.join(work, "message.edxml")
        sent_digest = write_message(message, args.template, sender.agency, recipient.agency, size)
        length = os.path.getsize(message)
        print(f"message: {length} bytes of edXML, attachment {size} bytes, sha256 {sent_digest}")
        before = vm_hwm_kib(args.pid)
        print(f"peak RSS of the serving process before: {before / 1024:.1f} MiB")

        t = time.monotonic()
        with open(message, "rb") as f:
            body = _Body(f, b"\r\n")
            conn, response = sender.call(
                "sendEdoc",
                [("servicetype", "eDoc"), ("messagetype", "edoc"),
                 ("hash-file", hash_file(message)), ("from", sender.agency)],
                body, length=length + 2, content_type="application/octet-stream")
            answer = json.loads(response.read())
            conn.close()
        assert answer["status"] == "OK", answer
        doc_id = answer["DocId"]
        print(f"sendEdoc: OK, DocId {doc_id}, {time.monotonic() - t:.1f} s")
        print(f"peak RSS after sendEdoc: {vm_hwm_kib(args.pid) / 1024:.1f} MiB")

        deadline = time.monotonic() + 600
        while True:
            listed = recipient.json_call(
                "getReceivedEdocList", [("servicetype", "eDoc"), ("messagetype", "edoc")], b"")
            if any(d.get("docId") == doc_id for d in listed.get("data", [])):
                break
            assert time.monotonic() < deadline, listed
            time.sleep(0.5)
        t = time.monotonic()
        conn, response = recipient.call("getEdoc", [("docId", doc_id), ("filePath", "/tmp/in")], b"{}")
        got_digest = attachment_digest(get_edoc_stream(response))
        conn.close()
        print(f"getEdoc: {time.monotonic() - t:.1f} s, attachment sha256 {got_digest}")
        assert got_digest == sent_digest, "the attachment changed on the way"
        done = recipient.json_call("updateStatus", [("docId", doc_id), ("status", "done")])
        assert done["status"] == "OK", done
        after = vm_hwm_kib(args.pid)
        print(f"peak RSS of the serving process after: {after / 1024:.1f} MiB "
              f"(+{(after - before) / 1024:.1f} MiB for a {args.size_mib} MiB attachment sent and received)")


class _Body:
    """A file followed by a trailer, read in blocks (http.client streams file-likes)."""

    def __init__(self, f, trailer):
        self.f, self.trailer = f, trailer

    def read(self, n=-1):
        data = self.f.read(n if n and n > 0 else 1 << 20)
        if data:
            return data
        data, self.trailer = self.trailer, b""
        return data


if __name__ == "__main__":
    sys.exit(main())
