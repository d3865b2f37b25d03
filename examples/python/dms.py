"""A small DMS client of lienthong's AgencyService, written from the README, the .proto
comments and docs/signing.md (not from the Rust code).

- the gRPC stubs are generated from proto/ with grpcio-tools when the program starts
  (`generate_stubs`), never committed;
- a client profile (the TOML file `lienthong dev` writes) names the node's endpoint and
  id, the agency, and the CA, certificate and key files (`Profile`);
- signatures are made and checked with `cryptography` over the canonical bytes of
  canonical.py (`sign`, `Trust`);
- `Dms` sends, receives and verifies end to end: the sender's signature, each
  attachment's digest, the origin node's receipt, and every hop of the trace
  (docs/signing.md, "Verifying a message end to end").
"""

import datetime
import hashlib
import importlib
import os
import socket
import ssl
import sys
import time
import tomllib
import uuid
from urllib.parse import urlparse

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from google.protobuf import json_format

import canonical

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))

# Filled by generate_stubs.
types_pb2 = agency_pb2 = agency_pb2_grpc = directory_pb2 = directory_pb2_grpc = None


def generate_stubs(out_dir, proto_dir=PROTO_DIR):
    """Compiles proto/lienthong/v1/*.proto into `out_dir` with grpcio-tools' protoc and
    imports the modules this client uses."""
    from grpc_tools import protoc
    import grpc_tools

    protos = sorted(
        os.path.join(proto_dir, "lienthong", "v1", f)
        for f in os.listdir(os.path.join(proto_dir, "lienthong", "v1"))
        if f.endswith(".proto")
    )
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    args = ["protoc", f"-I{proto_dir}", f"-I{well_known}",
            f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto_dir}")
    sys.path.insert(0, out_dir)
    global types_pb2, agency_pb2, agency_pb2_grpc, directory_pb2, directory_pb2_grpc
    types_pb2 = importlib.import_module("lienthong.v1.types_pb2")
    agency_pb2 = importlib.import_module("lienthong.v1.agency_pb2")
    agency_pb2_grpc = importlib.import_module("lienthong.v1.agency_pb2_grpc")
    directory_pb2 = importlib.import_module("lienthong.v1.directory_pb2")
    directory_pb2_grpc = importlib.import_module("lienthong.v1.directory_pb2_grpc")


def now_ms():
    return int(time.time() * 1000)


def as_dict(message):
    """The proto3-JSON shape canonical.py reads: .proto field names, enums as numbers."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     use_integers_for_enums=True)


class Refused(Exception):
    """A message that does not verify."""


# ---- the profile -----------------------------------------------------------------------

class Profile:
    """A client profile (README, "A DMS or an operator uses a client profile"): relative
    paths are relative to the profile file."""

    def __init__(self, path):
        with open(path, "rb") as f:
            p = tomllib.load(f)
        base = os.path.dirname(os.path.abspath(path))
        resolve = lambda f: f if os.path.isabs(f) else os.path.join(base, f)
        self.path = path
        self.endpoint = p["endpoint"]
        self.node = p["node"]
        self.agency = p["agency"]
        self.ca = resolve(p["ca"])
        self.cert = resolve(p["cert"])
        self.key = resolve(p["key"])
        self.crls = [resolve(c) for c in p.get("crls", [])]


# ---- signatures and certificates -------------------------------------------------------

URI_PREFIX = "urn:lienthong:"


def algorithm_of(public_key):
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
        return "ecdsa-p256-sha256"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa-pkcs1-sha256"
    raise Refused(f"unsupported key {type(public_key).__name__}")


def sign(private_key, cert_der, data):
    """A Signature message over `data` (canonical bytes), per docs/signing.md."""
    algorithm = algorithm_of(private_key.public_key())
    if algorithm == "ed25519":
        value = private_key.sign(data)
    elif algorithm == "ecdsa-p256-sha256":
        value = private_key.sign(data, ec.ECDSA(hashes.SHA256()))  # ASN.1 DER
    else:
        value = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return types_pb2.Signature(algorithm=algorithm, signer_cert=cert_der, value=value)


def identity_of(cert):
    """The one `urn:lienthong:` SAN URI of a certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise Refused("the certificate has no subjectAltName")
    uris = [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(URI_PREFIX)]
    if len(uris) != 1:
        raise Refused(f"the certificate names {len(uris)} lienthong identities, not one")
    return uris[0]


class Trust:
    """The network's CA: who signed a signature, checked as docs/signing.md says."""

    def __init__(self, ca_path):
        with open(ca_path, "rb") as f:
            cas = x509.load_pem_x509_certificates(f.read())
        self.verifier = PolicyBuilder().store(Store(cas)).build_client_verifier()

    def signer(self, signature, data, expected):
        """Checks that `signature` verifies over `data` and was made by `expected`
        (`urn:lienthong:agency:<code>` or `urn:lienthong:node:<id>`)."""
        if not signature.signer_cert:
            raise Refused(f"not signed; expected a signature by {expected}")
        cert = x509.load_der_x509_certificate(signature.signer_cert)
        try:
            # Chains to the CA, valid now, usable for client authentication.
            self.verifier.verify(cert, [])
        except VerificationError as e:
            raise Refused(f"the signer certificate does not verify: {e}")
        who = identity_of(cert)
        if who != expected:
            raise Refused(f"signed by {who}, not by {expected}")
        public = cert.public_key()
        if algorithm_of(public) != signature.algorithm:
            raise Refused(f"signature.algorithm {signature.algorithm!r} but the certificate "
                          f"holds a {algorithm_of(public)} key")
        try:
            if signature.algorithm == "ed25519":
                public.verify(signature.value, data)
            elif signature.algorithm == "ecdsa-p256-sha256":
                public.verify(signature.value, data, ec.ECDSA(hashes.SHA256()))
            else:
                public.verify(signature.value, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise Refused(f"the signature of {expected} does not verify")
        return who


def agency_uri(code):
    return f"{URI_PREFIX}agency:{code}"


def node_uri(node):
    return f"{URI_PREFIX}node:{node}"


# ---- the client ------------------------------------------------------------------------

class Dms:
    """One agency's DMS, connected to its home node."""

    def __init__(self, profile, national="VN"):
        self.profile = profile
        self.national = national
        self.agency = profile.agency
        self.trust = Trust(profile.ca)
        read = lambda p: open(p, "rb").read()
        self.cert_der = x509.load_pem_x509_certificate(read(profile.cert)).public_bytes(
            serialization.Encoding.DER)
        self.key = serialization.load_pem_private_key(read(profile.key), None)
        url = urlparse(profile.endpoint)
        self.host, self.port = url.hostname, url.port
        self.check_node_identity()
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(profile.ca),
            private_key=read(profile.key),
            certificate_chain=read(profile.cert),
        )
        self.channel = grpc.secure_channel(f"{self.host}:{self.port}", credentials)
        self.api = agency_pb2_grpc.AgencyServiceStub(self.channel)

    def check_node_identity(self):
        """The node must present the certificate of the node the profile names: gRPC
        checks the chain and the host name, this checks the lienthong identity."""
        context = ssl.create_default_context(cafile=self.profile.ca)
        context.load_cert_chain(self.profile.cert, self.profile.key)
        context.set_alpn_protocols(["h2"])
        with socket.create_connection((self.host, self.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=self.host) as tls:
                cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        who = identity_of(cert)
        if who != node_uri(self.profile.node):
            raise Refused(f"{self.profile.endpoint} presents {who}, not node {self.profile.node}")

    def close(self):
        self.channel.close()

    # -- sending

    def new_document(self, to, subject, attachments):
        """A document from this agency to the agency codes `to`, with `attachments`
        [(name, content_type, bytes)] inline."""
        d = types_pb2.Document(
            id=str(uuid.uuid4()),
            created_at_unix_ms=now_ms(),
        )
        d.to.extend(types_pb2.Organization(code=c) for c in to)
        getattr(d, "from").code = self.agency  # `from` is a Python keyword
        h = d.header
        h.code.number, h.code.notation = "15", "UBND-VP"
        h.promulgation.place, h.promulgation.date = "Vinh", time.strftime("%Y/%m/%d")
        h.document_type.kind, h.document_type.name = 2, "Công văn"
        h.subject = subject
        h.signer.position, h.signer.full_name = "Chủ tịch", "Nguyễn Văn A"
        h.other.priority = 1
        for i, (name, content_type, content) in enumerate(attachments):
            d.attachments.add(
                content_id=f"att{i}", name=name, content_type=content_type,
                size=len(content), sha256=hashlib.sha256(content).digest(), content=content,
            )
        return d

    def send_document(self, document):
        """Signs and sends; returns the origin node's receipt, verified."""
        data = canonical.document_bytes(as_dict(document))
        document.signature.CopyFrom(sign(self.key, self.cert_der, data))
        r = self.api.SendDocument(agency_pb2.SendDocumentRequest(document=document), timeout=30)
        self.verify_receipt(r.receipt, document.id, data, self.profile.node)
        return r.receipt, r.duplicate

    def send_status(self, document, code, description):
        """A status notice about `document` (fetched from this inbox) back to its sender."""
        n = types_pb2.StatusNotice(
            id=str(uuid.uuid4()), to=getattr(document, "from").code,
            status_code=code, description=description, at_unix_ms=now_ms(),
        )
        getattr(n, "from").code = self.agency
        n.response_for.organ_id = getattr(document, "from").code
        n.response_for.code = f"{document.header.code.number}/{document.header.code.notation}"
        n.response_for.promulgation_date = document.header.promulgation.date
        n.response_for.document_id = document.id
        n.staff.department, n.staff.staff = "Văn thư", "Trần Thị B"
        data = canonical.status_bytes(as_dict(n))
        n.signature.CopyFrom(sign(self.key, self.cert_der, data))
        r = self.api.SendStatus(agency_pb2.SendStatusRequest(notice=n), timeout=30)
        self.verify_receipt(r.receipt, n.id, data, self.profile.node)
        return n, r.receipt

    # -- receiving

    def wait_on_subscription(self, message_id, timeout):
        """Subscribes (push mode) and returns the inbox entry of `message_id`."""
        stream = self.api.Subscribe(agency_pb2.SubscribeRequest(after_cursor=0), timeout=timeout)
        try:
            for entry in stream:
                if entry.id == message_id:
                    return entry
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
        finally:
            stream.cancel()
        raise Refused(f"{message_id} did not reach {self.agency} within {timeout} s")

    def wait_in_inbox(self, message_id, timeout):
        """Lists the inbox (pull mode) until `message_id` is in it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page = self.api.ListInbox(agency_pb2.ListInboxRequest(limit=1000), timeout=10)
            for entry in page.entries:
                if entry.id == message_id:
                    return entry
            time.sleep(0.1)
        raise Refused(f"{message_id} did not reach {self.agency} within {timeout} s")

    def fetch(self, message_id, sender=""):
        """Fetches a message and verifies it end to end; returns (message, receipt)."""
        r = self.api.FetchDocument(agency_pb2.FetchDocumentRequest(id=message_id, **{"from": sender}),
                                   timeout=30)
        kind = r.WhichOneof("message")
        if kind == "document":
            message = r.document
            for a in message.attachments:
                if a.size > 0 and not a.content:  # large: streamed, not inline
                    a.content = self.fetch_attachment(message.id, a)
            self.verify_document(message)
            data = canonical.document_bytes(as_dict(message))
        elif kind == "status":
            message = r.status
            data = canonical.status_bytes(as_dict(message))
            self.trust.signer(message.signature, data, agency_uri(getattr(message, "from").code))
        else:
            raise Refused("the node sent no message")
        origin = r.receipt.node
        self.verify_receipt(r.receipt, message.id, data, origin)
        self.verify_trace(message, data, origin)
        return message, r.receipt

    def fetch_attachment(self, document_id, attachment):
        content = bytearray()
        request = agency_pb2.FetchAttachmentRequest(document_id=document_id,
                                                    sha256=attachment.sha256)
        for chunk in self.api.FetchAttachment(request, timeout=300):
            if chunk.offset != len(content):
                raise Refused(f"chunk at {chunk.offset}, expected {len(content)}")
            content += chunk.data
        return bytes(content)

    def ack(self, message_id):
        self.api.Ack(agency_pb2.AckRequest(id=message_id), timeout=10)

    def track(self, message_id):
        return self.api.Track(agency_pb2.TrackRequest(id=message_id), timeout=10)

    # -- verification (docs/signing.md, "Verifying a message end to end")

    def verify_document(self, d):
        data = canonical.document_bytes(as_dict(d))
        sender = getattr(d, "from").code
        self.trust.signer(d.signature, data, agency_uri(sender))
        for a in d.attachments:
            if len(a.content) != a.size or hashlib.sha256(a.content).digest() != a.sha256:
                raise Refused(f"attachment {a.name!r} does not match its size and SHA-256")

    def verify_receipt(self, receipt, message_id, data, origin):
        """The receipt of the node that accepted the message from its sender: for this
        message's id and canonical bytes, signed by the node it names."""
        if receipt.document_id != message_id:
            raise Refused(f"the receipt is for {receipt.document_id}, not {message_id}")
        if receipt.content_digest != hashlib.sha256(data).digest():
            raise Refused("the receipt names other content")
        if receipt.node != origin:
            raise Refused(f"the receipt is by node {receipt.node}, not {origin}")
        rb = canonical.receipt_bytes(receipt.document_id, receipt.content_digest,
                                     receipt.node, receipt.accepted_at_unix_ms)
        self.trust.signer(receipt.signature, rb, node_uri(receipt.node))

    def verify_trace(self, message, data, origin):
        """Every hop: each entry signed by the node it names over the message's id and
        content digest; the first by the origin node, the last by this agency's home
        node, each next one a neighbour of the one before in the signed directory."""
        digest = hashlib.sha256(data).digest()
        trace = list(message.trace)
        if not trace:
            raise Refused(f"{message.id} carries no trace")
        for entry in trace:
            tb = canonical.trace_entry_bytes(message.id, digest, entry.node, entry.at_unix_ms)
            self.trust.signer(entry.signature, tb, node_uri(entry.node))
        nodes = [e.node for e in trace]
        if nodes[0] != origin:
            raise Refused(f"the trace starts at {nodes[0]}, not at the origin node {origin}")
        if nodes[-1] != self.profile.node:
            raise Refused(f"the trace ends at {nodes[-1]}, not at this agency's node "
                          f"{self.profile.node}")
        if len(set(nodes)) != len(nodes):
            raise Refused(f"the trace visits a node twice: {nodes}")
        parents = self.directory_parents()
        if parents is not None:
            for a, b in zip(nodes, nodes[1:]):
                if parents.get(a) != b and parents.get(b) != a:
                    raise Refused(f"hop {a} → {b}: not neighbours in the directory")
        return nodes

    def directory_parents(self):
        """{node: parent} from the home node's directory, checked to be signed by the
        national gateway (the root of the tree, `self.national`); None for a single node
        without a network directory."""
        national = self.national
        api = directory_pb2_grpc.DirectoryServiceStub(self.channel)
        r = api.GetDirectory(directory_pb2.GetDirectoryRequest(known_version=0), timeout=10)
        if not r.HasField("directory"):
            return None
        d = r.directory
        roots = [n.id for n in d.nodes if not n.parent]
        if roots != [national]:
            raise Refused(f"the directory's root is {roots}, not the national gateway {national}")
        self.trust.signer(d.signature, canonical.directory_bytes(as_dict(d)), node_uri(national))
        return {n.id: n.parent for n in d.nodes if n.parent}


def reason(error):
    """`CODE (lienthong-reason): message` of a refused call (README, "Refusals")."""
    why = dict(error.trailing_metadata() or ()).get("lienthong-reason", "no reason")
    return f"{error.code().name} ({why}): {error.details()}"


def utc(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime(
        "%H:%M:%S.%f")[:-3]
