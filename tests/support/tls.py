"""Test helper: self-signed certificates made at test time with the `openssl` command (the `cryptography`
package is not among the project's dependencies), and TLS contexts that trust them."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

# The name the test certificates are issued for: not 127.0.0.1, as a station's certificate names its host.
NAME = "outpost.test"


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, PEM files."""

    cert: Path
    key: Path


def self_signed(folder: Path, stem: str, *alt_names: str) -> Pair:
    """A fresh self-signed certificate for NAME (and `alt_names`, e.g. "IP:127.0.0.1") with an unencrypted
    key, written to folder/stem.crt and folder/stem.key."""
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("the openssl command is needed to make test certificates")
    pair = Pair(folder / f"{stem}.crt", folder / f"{stem}.key")
    names = ",".join([f"DNS:{NAME}", *alt_names])
    subprocess.run(
        [
            binary,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={NAME}",
            "-addext",
            f"subjectAltName={names}",
            "-keyout",
            str(pair.key),
            "-out",
            str(pair.cert),
        ],
        check=True,
        capture_output=True,
    )
    return pair


def trusting(cert: Path, *, check_hostname: bool = True) -> ssl.SSLContext:
    """A client context trusting exactly `cert`. `check_hostname` off for a test client dialling 127.0.0.1
    while the certificate names NAME (a real device dials the name)."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = check_hostname
    return context
