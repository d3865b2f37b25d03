"""Loads every private key file (`*.key`) under a directory with Python's `cryptography`,
as a DMS or an operator's tooling would: the CA key, node keys and agency keys that
`lienthong dev` and `lienthong pki` write. Exits non-zero if any does not load or none is
found.

Usage: python check_key_files.py DIR
"""

import glob
import os
import sys

from cryptography.hazmat.primitives import serialization


def main(directory):
    paths = sorted(glob.glob(os.path.join(directory, "**", "*.key"), recursive=True))
    if not paths:
        sys.exit(f"no *.key files under {directory}")
    kinds = {}
    for path in paths:
        with open(path, "rb") as f:
            try:
                key = serialization.load_pem_private_key(f.read(), password=None)
            except ValueError as e:
                sys.exit(f"{path}: cryptography cannot load it: {e}")
        kind = type(key).__name__.removeprefix("_")
        kinds.setdefault(kind, []).append(os.path.relpath(path, directory))
    for kind, files in kinds.items():
        print(f"ok   cryptography loads {len(files)} {kind} file(s): {', '.join(files)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
