"""TLS contexts from the PEM files settings name: a listener's (certificate and key) and an MQTT client's
(the certificates it trusts). TLS 1.2 or newer either way. A file that cannot be used is a ConfigError
naming the setting and what to do: one line at start (see outpost.tls_checks), never a traceback.

Here rather than in `outpost` because the embedded broker's own clients (ingest.mqtt) build theirs here too.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from schemas.config import ConfigError, is_loopback

# OpenSSL's words for a key that belongs to another certificate (another key, or another key type).
_MISMATCH = {"KEY_VALUES_MISMATCH", "KEY_TYPE_MISMATCH", "NO_CERTIFICATE_ASSIGNED"}

# A named setting and its value: ("OUTPOST_HTTP_TLS_CERT", "/etc/outpost/api.crt").
Named = tuple[str, str]


class _EncryptedKeyError(Exception):
    """Raised from the passphrase callback: nobody is there to type one."""


def server_context(cert: Named, key: Named) -> ssl.SSLContext | None:
    """A listener's context from its certificate and key files; None when both settings are empty."""
    (cert_var, cert_path), (key_var, key_path) = cert, key
    if not cert_path and not key_path:
        return None
    if not (cert_path and key_path):
        given, empty = (cert_var, key_var) if cert_path else (key_var, cert_var)
        raise ConfigError(
            f"{given} is set but {empty} is empty: set both (the certificate and its private key, "
            "PEM files) or neither"
        )
    for variable, path in (cert, key):
        readable(variable, path)
    certificates(cert_var, cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path, password=_no_passphrase)
    except _EncryptedKeyError:
        raise ConfigError(
            f"{key_var}={key_path}: the key is encrypted; decrypt it (openssl pkey -in KEY -out KEY.plain) "
            "and keep it readable by Outpost only"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason in _MISMATCH:
            raise ConfigError(
                f"{key_var}={key_path}: the key does not belong to the certificate {cert_var}={cert_path}; "
                "name the private key the certificate was issued for"
            ) from None
        raise ConfigError(
            f"{key_var}={key_path}: not a PEM private key ({exc.reason or exc.library}); "
            "name the certificate's private key (-----BEGIN PRIVATE KEY-----)"
        ) from None
    return context


def client_context(ca: Named, host: str) -> ssl.SSLContext:
    """A client's context for a TLS server at `host`: trusting the certificates in the file `ca` names (any
    of them, also a server's own, self-signed one), or the system's trust store when it is empty."""
    variable, path = ca
    if path:
        readable(variable, path)
        certificates(variable, path)
    context = ssl.create_default_context(cafile=path or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if path:
        # Every certificate in the file is a trust anchor, also a server's own certificate (pinned) or an
        # intermediate CA's; without this OpenSSL would insist on a chain up to a self-signed root.
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if is_loopback(host):
            # A broker on this machine is dialled as 127.0.0.1 (the embedded broker's own clients always
            # are), while its certificate names the station's host name. Skipping the name check there
            # trusts nothing new: nothing on the network can sit on the loopback interface, and the peer
            # must still present a certificate that chains to one in this file.
            context.check_hostname = False
    return context


def readable(variable: str, path: str) -> None:
    """Raise a ConfigError unless the file `path` can be read."""
    try:
        Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{variable}={path}: cannot read it ({exc.strerror or exc}); name a PEM file Outpost may read"
        ) from None


def certificates(variable: str, path: str) -> None:
    """Raise a ConfigError unless the file `path` holds at least one PEM certificate."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"{variable}={path}: no PEM certificate in it ({exc.reason or exc.library}); "
            "name a certificate file (-----BEGIN CERTIFICATE-----)"
        ) from None


def _no_passphrase() -> bytes:
    raise _EncryptedKeyError
