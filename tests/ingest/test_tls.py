"""ingest.tls: contexts from PEM files, and a file that cannot be used is one ConfigError naming the
setting and the fix. Real files from the openssl command; the handshake itself is tested end to end
(tests/e2e/test_tls.py)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest

from ingest.tls import client_context, server_context
from schemas.config import ConfigError
from tests.support.tls import Pair, self_signed

CERT, KEY, CA = "OUTPOST_X_TLS_CERT", "OUTPOST_X_TLS_KEY", "OUTPOST_X_TLS_CA"


@pytest.fixture
def pair(tmp_path: Path) -> Pair:
    return self_signed(tmp_path, "a")


def _refused(cert: str, key: str) -> str:
    with pytest.raises(ConfigError) as caught:
        server_context((CERT, cert), (KEY, key))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_pair_serves_tls_1_2_or_newer(pair: Pair) -> None:
    context = server_context((CERT, str(pair.cert)), (KEY, str(pair.key)))
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_context((CERT, ""), (KEY, "")) is None


def test_both_or_neither(pair: Pair) -> None:
    assert _refused(str(pair.cert), "").startswith(f"{CERT} is set but {KEY} is empty: set both")
    assert _refused("", str(pair.key)).startswith(f"{KEY} is set but {CERT} is empty: set both")


def test_a_missing_or_unreadable_file_is_named(pair: Pair, tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.crt")
    assert _refused(missing, str(pair.key)) == (
        f"{CERT}={missing}: cannot read it (No such file or directory); name a PEM file Outpost may read"
    )
    assert _refused(str(pair.cert), str(tmp_path)).startswith(f"{KEY}={tmp_path}: cannot read it (Is a")


def test_a_certificate_that_is_none_is_named(pair: Pair) -> None:
    message = _refused(str(pair.key), str(pair.key))
    assert message.startswith(f"{CERT}={pair.key}: no PEM certificate in it")


def test_a_key_that_is_none_or_another_certificates_is_named(pair: Pair, tmp_path: Path) -> None:
    other = self_signed(tmp_path, "b")
    assert _refused(str(pair.cert), str(other.key)).startswith(
        f"{KEY}={other.key}: the key does not belong to the certificate {CERT}={pair.cert}"
    )
    assert _refused(str(pair.cert), str(pair.cert)).startswith(f"{KEY}={pair.cert}: not a PEM private key")


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(pair: Pair, tmp_path: Path) -> None:
    locked = tmp_path / "locked.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(pair.key), "-aes256", "-passout", "pass:x", "-out", str(locked)],
        check=True,
    )
    assert _refused(str(pair.cert), str(locked)).startswith(f"{KEY}={locked}: the key is encrypted")


def test_a_client_trusts_the_named_file_or_the_system_store(pair: Pair) -> None:
    system = client_context((CA, ""), "broker.example.org")
    assert system.check_hostname and system.verify_mode == ssl.CERT_REQUIRED
    assert system.get_ca_certs() == ssl.create_default_context().get_ca_certs()
    named = client_context((CA, str(pair.cert)), "broker.example.org")
    assert named.check_hostname and [c["subject"] for c in named.get_ca_certs()] == [
        ((("commonName", "outpost.test"),),)
    ]
    assert named.minimum_version == ssl.TLSVersion.TLSv1_2
    assert named.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN
    # Loopback: the certificate names the station, the client dials 127.0.0.1; trust is still required.
    loopback = client_context((CA, str(pair.cert)), "127.0.0.1")
    assert not loopback.check_hostname and loopback.verify_mode == ssl.CERT_REQUIRED
    assert client_context((CA, ""), "127.0.0.1").check_hostname  # the system's store: names are checked


def test_a_ca_file_without_certificates_is_named(pair: Pair) -> None:
    with pytest.raises(ConfigError, match=rf"^{CA}={pair.key}: no PEM certificate in it"):
        client_context((CA, str(pair.key)), "127.0.0.1")
