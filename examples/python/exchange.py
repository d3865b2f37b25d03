"""One exchange between two agencies' DMS over lienthong's gRPC API, in Python:

1. the sender signs a document with an attachment and sends it (the origin node's receipt
   verified);
2. the recipient receives it on a subscription, fetches it and verifies it end to end
   (sender signature, attachment digest, receipt, every hop of the trace), and
   acknowledges it;
3. the recipient sends status 03 (accepted and registered) back;
4. the sender finds the status in its inbox (pull mode), verifies it the same way and
   acknowledges it;
5. the sender tracks the document until every transport event is in.

Usage: python exchange.py --sender PROFILE --recipient PROFILE [--national VN]
Exits 0 only if every step held. See README.md.
"""

import argparse
import sys
import tempfile
import time

import grpc

import dms


def step(text):
    print(f"  ok   {text}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", required=True, help="client profile of the sending agency")
    parser.add_argument("--recipient", required=True, help="client profile of the receiving agency")
    parser.add_argument("--national", default="VN",
                        help="id of the national gateway, which signs the directory")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for each arrival")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lienthong-stubs-") as stubs:
        dms.generate_stubs(stubs)
        try:
            exchange(args)
        except dms.Refused as e:
            print(f"  FAIL {e}")
            return 1
        except grpc.RpcError as e:
            print(f"  FAIL the node refused: {dms.reason(e)}")
            return 1
    print("python example: all checks passed")
    return 0


def expect_refusal(call, code, reason):
    try:
        call()
    except grpc.RpcError as e:
        got = dict(e.trailing_metadata() or ()).get("lienthong-reason")
        if e.code() != code or got != reason:
            raise dms.Refused(f"expected {code.name} ({reason}), got {dms.reason(e)}")
        step(f"a document changed after signing is refused: {dms.reason(e)}")
        return
    raise dms.Refused(f"expected {code.name} ({reason}), but the call succeeded")


def check_verification_is_not_vacuous(recipient, document, receipt):
    """The checks above refuse a changed document, receipt or hop."""
    origin = receipt.node
    data = dms.canonical.document_bytes(dms.as_dict(document))
    changes = {
        "a changed subject": lambda d: setattr(d.header, "subject", d.header.subject + "!"),
        "a changed attachment byte": lambda d: setattr(
            d.attachments[0], "content",
            bytes([d.attachments[0].content[0] ^ 1]) + d.attachments[0].content[1:]),
        "a hop's changed time": lambda d: setattr(d.trace[1], "at_unix_ms",
                                                  d.trace[1].at_unix_ms + 1),
        "a hop left out": lambda d: d.trace.__delitem__(1),
        "a hop signed by its neighbour": lambda d: d.trace[1].signature.CopyFrom(
            d.trace[2].signature),
    }
    if len(document.trace) < 3:  # a single node: no hop between two others
        changes = {what: change for what, change in changes.items() if "hop" not in what}
    for what, change in changes.items():
        bad = dms.types_pb2.Document()
        bad.CopyFrom(document)
        change(bad)
        try:
            recipient.verify_document(bad)
            recipient.verify_trace(bad, data, origin)
        except dms.Refused:
            continue
        raise dms.Refused(f"{what} passed verification")
    bad_receipt = dms.types_pb2.Receipt()
    bad_receipt.CopyFrom(receipt)
    bad_receipt.accepted_at_unix_ms += 1
    try:
        recipient.verify_receipt(bad_receipt, document.id, data, origin)
        raise dms.Refused("a receipt with a changed time passed verification")
    except dms.Refused as e:
        if "passed" in str(e):
            raise
    step(f"the same checks refuse {', '.join(changes)} and a changed receipt")


def exchange(args):
    sender = dms.Dms(dms.Profile(args.sender), args.national)
    recipient = dms.Dms(dms.Profile(args.recipient), args.national)
    print(f"python DMS: {sender.agency} (node {sender.profile.node}) → "
          f"{recipient.agency} (node {recipient.profile.node})")
    step(f"connected to both home nodes; each presents its lienthong identity "
         f"(urn:lienthong:node:{sender.profile.node}, urn:lienthong:node:{recipient.profile.node})")

    # 1. Send.
    content = bytes(i % 251 for i in range(100_000))
    document = sender.new_document([recipient.agency], "Về việc thử nghiệm liên thông từ Python",
                                   [("cong-van.pdf", "application/pdf", content)])
    receipt, duplicate = sender.send_document(document)
    step(f"sent {document.id}: receipt of node {receipt.node} verified "
         f"(signature, id, content digest)")
    again, duplicate = sender.send_document(document)
    if not duplicate or again.accepted_at_unix_ms != receipt.accepted_at_unix_ms:
        raise dms.Refused("re-sending the same document did not return the original receipt")
    step("re-sending the same document returns the original receipt (duplicate=true)")

    # A document changed after it was signed is refused, with a stable reason.
    forged = sender.new_document([recipient.agency], "Văn bản bị sửa sau khi ký", [])
    data = dms.canonical.document_bytes(dms.as_dict(forged))
    forged.signature.CopyFrom(dms.sign(sender.key, sender.cert_der, data))
    forged.header.subject += "!"
    expect_refusal(lambda: sender.api.SendDocument(
        dms.agency_pb2.SendDocumentRequest(document=forged), timeout=30),
        grpc.StatusCode.INVALID_ARGUMENT, "bad-signature")

    # 2. Receive on a subscription, fetch, verify, acknowledge.
    entry = recipient.wait_on_subscription(document.id, args.timeout)
    step(f"arrived on {recipient.agency}'s subscription (cursor {entry.cursor}, "
         f"from {getattr(entry, 'from')}, subject {entry.subject!r})")
    got, got_receipt = recipient.fetch(document.id)
    path = [e.node for e in got.trace]
    if [a.content for a in got.attachments] != [content]:
        raise dms.Refused("the attachment bytes differ from what was sent")
    if got_receipt.accepted_at_unix_ms != receipt.accepted_at_unix_ms:
        raise dms.Refused("the fetched receipt is not the one the sender got")
    step("fetched and verified: sender signature (chain to the CA, urn:lienthong:agency:"
         f"{sender.agency}), attachment size and SHA-256, origin receipt")
    hops = ", ".join(f"{e.node} at {dms.utc(e.at_unix_ms)}" for e in got.trace)
    neighbours = ("neighbours in the directory signed by the national gateway"
                  if recipient.directory_parents() is not None else "a single node")
    step(f"every hop verified: {' → '.join(path)} ({hops}), each signed by its node, "
         f"{neighbours}")
    check_verification_is_not_vacuous(recipient, got, got_receipt)
    recipient.ack(document.id)
    recipient.ack(document.id)
    step("acknowledged (twice: Ack is idempotent)")

    # 3. Status back.
    notice, status_receipt = recipient.send_status(got, "03", "Văn thư: đã vào sổ văn bản đến")
    step(f"status 03 {notice.id} sent back, receipt of node {status_receipt.node} verified")

    # 4. The sender pulls it from its inbox.
    sender.wait_in_inbox(notice.id, args.timeout)
    status, _ = sender.fetch(notice.id)
    if status.status_code != "03" or status.response_for.document_id != document.id:
        raise dms.Refused("the status is not the one sent")
    step(f"status 03 arrived at {sender.agency}, verified end to end "
         f"({' → '.join(e.node for e in status.trace)})")
    sender.ack(notice.id)

    # 5. Track: every transport event comes back to the sender's home node.
    wanted = ["ACCEPTED", "DELIVERED", "FETCHED", "ACKNOWLEDGED", "STATUS_RECEIVED"]
    if len(path) > 1:
        wanted.insert(1, "FORWARDED")  # by each node that handed it on, and each that took it
    kind = lambda e: dms.types_pb2.TransportEventKind.Name(e.kind).removeprefix(
        "TRANSPORT_EVENT_KIND_")
    deadline = time.monotonic() + args.timeout
    while True:
        tracked = sender.track(document.id)
        kinds = [kind(e) for e in tracked.events]
        forwarded = kinds.count("FORWARDED")
        states = {r.agency: (r.transport, r.status_code) for r in tracked.recipients}
        if (all(k in kinds for k in wanted) and forwarded >= len(path) - 1
                and states.get(recipient.agency, ("", ""))[1] == "03"):
            break
        if time.monotonic() > deadline:
            raise dms.Refused(f"track shows {kinds} and {states} after {args.timeout} s")
        time.sleep(0.2)
    print(f"  track {document.id}:")
    for e in tracked.events:
        who = f" {e.agency}" if e.agency else ""
        print(f"    {dms.utc(e.at_unix_ms)}  {kind(e):<16} {e.node:<8}{who}  {e.detail}")
    step(f"track shows {', '.join(k.lower() for k in wanted)}; recipient {recipient.agency}: "
         f"{states[recipient.agency][0]}, status {states[recipient.agency][1]}")
    sender.close()
    recipient.close()


if __name__ == "__main__":
    sys.exit(main())
