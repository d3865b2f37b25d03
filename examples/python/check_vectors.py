"""Checks docs/vectors/*.json with canonical.py and Python's `cryptography`: the
canonical bytes, their digest, and each signature. Exits non-zero on any mismatch."""

import glob
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

import canonical

HERE = os.path.dirname(os.path.abspath(__file__))


def sign_and_verify(v, data):
    key = serialization.load_pem_private_key(v["private_key_pkcs8_pem"].encode(), None)
    sig = bytes.fromhex(v["signature_hex"])
    public = key.public_key()
    if v["algorithm"] == "ed25519":
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        public.verify(sig, data)
        assert key.sign(data) == sig, "Ed25519 is deterministic"
    elif v["algorithm"] == "ecdsa-p256-sha256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        raw = public.public_bytes(serialization.Encoding.X962,
                                  serialization.PublicFormat.UncompressedPoint)
        public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
        mine = key.sign(data, ec.ECDSA(hashes.SHA256()))
        public.verify(mine, data, ec.ECDSA(hashes.SHA256()))
    elif v["algorithm"] == "rsa-pkcs1-sha256":
        assert isinstance(key, rsa.RSAPrivateKey)
        raw = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        assert key.sign(data, padding.PKCS1v15(), hashes.SHA256()) == sig
    else:
        raise AssertionError(f"unknown algorithm {v['algorithm']}")
    assert raw.hex() == v["public_key_hex"], "public key form"
    try:
        bad = bytearray(data)
        bad[-1] ^= 1
        if v["algorithm"] == "ed25519":
            public.verify(sig, bytes(bad))
        elif v["algorithm"] == "ecdsa-p256-sha256":
            public.verify(sig, bytes(bad), ec.ECDSA(hashes.SHA256()))
        else:
            public.verify(sig, bytes(bad), padding.PKCS1v15(), hashes.SHA256())
        raise AssertionError("a changed byte verified")
    except InvalidSignature:
        pass


def main(directory):
    paths = sorted(glob.glob(os.path.join(directory, "*.json")))
    if not paths:
        sys.exit(f"no vectors in {directory}")
    for path in paths:
        v = json.load(open(path, encoding="utf-8"))
        if v["kind"] == "document":
            data = canonical.document_bytes(v["message"])
        else:
            data = canonical.status_bytes(v["message"])
        if data.hex() != v["canonical_hex"]:
            sys.exit(f"{v['name']}: canonical bytes differ\n  mine: {data.hex()}\n  want: {v['canonical_hex']}")
        assert hashlib.sha256(data).hexdigest() == v["sha256_hex"], v["name"]
        sign_and_verify(v, data)
        print(f"ok {v['name']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "docs", "vectors"))
