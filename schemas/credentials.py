"""Secrets for devices and API tokens: generated once, shown once, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# scrypt parameters for device secrets (verified once per HTTP connection or MQTT auth, not per fix).
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def new_secret(nbytes: int = 24) -> str:
    """A random URL-safe secret (device password or API token)."""
    return secrets.token_urlsafe(nbytes)


def hash_secret(secret: str) -> str:
    """`scrypt$<salt hex>$<hash hex>` of a device secret."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    """Whether `secret` matches a `hash_secret` value, in constant time."""
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    salt = bytes.fromhex(salt_hex)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return hmac.compare_digest(digest.hex(), digest_hex)


def token_digest(token: str) -> str:
    """sha256 of an API token: tokens are 192-bit random, so a fast hash suffices and lookup is by digest."""
    return hashlib.sha256(token.encode()).hexdigest()
