"""Who the embedded broker lets in, as whom, and who must be let go when the registry changes.

    user name in SERVICE_ACCOUNTS   Outpost's own clients: the password is the one this process drew at
                                    random (`service_password`) and handed to its clients only
                                    (`EmbeddedBroker.service_url`); a local process cannot know it.
    any other user name             a device, the user name being its id: its secret is checked against the
                                    registry's hash (ingest.http.auth.DeviceAuth, as for HTTP). A device
                                    without credentials, or not registered, is let in only in open mode
                                    on loopback, like an anonymous client (anyone could claim its name).
    no user name                    anonymous: only in open mode (OUTPOST_REGISTER_UNKNOWN_DEVICES) and only
                                    from the loopback interface; never from the network.

Client ids are bound to who holds them: the services' client ids (the ingest's, and the channel's which
begins with it) are refused to anyone but a service, and a client id whose session the broker still holds can
be taken over only by the principal that opened it (else a device could take the ingest's session, or
another device's queued offers). The ACL itself is ingest.broker_acl.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable

from prometheus_client import Counter

from ingest.broker_acl import ANONYMOUS, SERVICE, Principal
from ingest.devices import DeviceDirectory
from ingest.http.auth import DeviceAuth, identify_device
from schemas.accounts import SERVICE_ACCOUNTS
from schemas.config import is_loopback

log = logging.getLogger(__name__)

SERVICE_USER = "outpost"
DEFAULT_SERVICE_CLIENT_ID = "outpost-ingest"  # IngestSettings.mqtt_client_id's default

REFUSED = Counter(
    "outpost_ingest_mqtt_refused",
    "MQTT connections the embedded broker refused, by reason.",
    ["reason"],
)


class BrokerAccess:
    """Admission and the principal of each client id, for one embedded broker."""

    def __init__(
        self,
        *,
        open_mode: bool = False,
        service_password: str | None = None,
        service_client_ids: tuple[str, ...] = (DEFAULT_SERVICE_CLIENT_ID,),
    ) -> None:
        """`open_mode`: anonymous (and credential-less) clients are let in on loopback.
        `service_client_ids`: client ids (and their prefixes) only services may use: the ingest's
        (OUTPOST_MQTT_CLIENT_ID), of which the device channel's is `{id}-notify`."""
        self.open_mode = open_mode
        self._service_client_ids = service_client_ids
        self.service_password = service_password or secrets.token_urlsafe(32)
        self._service_key = self.service_password.encode()
        self._directory: DeviceDirectory | None = None
        self._auth: DeviceAuth | None = None
        self._principals: dict[str, Principal] = {}  # client id -> who opened its session

    def attach(self, directory: DeviceDirectory, auth_cache_s: float) -> None:
        """Check devices against `directory` from now on (until then only services are let in)."""
        self._directory = directory
        self._auth = DeviceAuth(directory, auth_cache_s)

    def has_credentials(self, device_id: str) -> bool:
        """Whether `device_id` has a secret (only that secret may speak for it, even in open mode)."""
        return self._directory is not None and self._directory.secret_hash(device_id) is not None

    def principal(self, client_id: str | None) -> Principal | None:
        """Who holds `client_id`'s session, if it was admitted."""
        return self._principals.get(client_id) if client_id is not None else None

    async def admit(
        self,
        client_id: str,
        username: str | None,
        password: str | None,
        remote_address: str | None,
        *,
        held: bool,
    ) -> Principal | None:
        """The principal of a connecting client, or None (refused, logged and counted); `bind` it to the
        client id the session gets. `held`: the broker holds a session of `client_id` already."""
        principal, reason = await self._identify(username, password, is_loopback(remote_address))
        if principal is not None and principal.kind != "service" and self._is_services(client_id):
            principal, reason = None, "reserved_client_id"
        if principal is not None and held:
            owner = self._principals.get(client_id)
            if owner is not None and (owner.kind, owner.device_id) != (principal.kind, principal.device_id):
                principal, reason = None, "client_id_taken"
        if principal is None:
            REFUSED.labels(reason).inc()
            log.info("MQTT client %s (%s) from %s refused: %s", client_id, username, remote_address, reason)
            return None
        return principal

    def _is_services(self, client_id: str) -> bool:
        return client_id.startswith(self._service_client_ids)

    def bind(self, client_id: str, principal: Principal) -> None:
        """`client_id`'s session is `principal`'s from now on."""
        self._principals[client_id] = principal

    def client_ids(self) -> list[str]:
        """The client ids bound to a principal."""
        return list(self._principals)

    async def _identify(
        self, username: str | None, password: str | None, loopback: bool
    ) -> tuple[Principal | None, str]:
        if not username:
            if self.open_mode and loopback:
                return ANONYMOUS, ""
            return None, "anonymous"
        if username in SERVICE_ACCOUNTS:
            ok = password is not None and hmac.compare_digest(
                password.encode(), self.service_password.encode()
            )
            return (SERVICE, "") if ok else (None, "bad_service_password")
        if self._directory is None or self._auth is None:
            return None, "registry_not_loaded"
        return await identify_device(
            self._directory, self._auth, username, password, open_ok=self.open_mode and loopback
        )

    def revoked(self, client_ids: Iterable[str]) -> list[str]:
        """Those of `client_ids` whose device was disabled, deleted or given new credentials since it
        was admitted (by the directory as it is now)."""
        directory = self._directory
        if directory is None:
            return []
        out = []
        for client_id in client_ids:
            principal = self._principals.get(client_id)
            if principal is None or principal.kind != "device":
                continue
            info = directory.get(principal.device_id)
            if (
                (info is None and principal.known)
                or (info is not None and not info.enabled)
                or directory.secret_hash(principal.device_id) != principal.secret_hash
            ):
                out.append(client_id)
        return out

    def forget(self, client_ids: Iterable[str]) -> None:
        """The broker no longer holds these sessions."""
        for client_id in client_ids:
            self._principals.pop(client_id, None)
