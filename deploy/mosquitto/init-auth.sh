#!/bin/sh
# Sets up the broker's accounts, run by the one-shot `mosquitto-init` compose service before the broker:
#   services-passwd        Outpost's service user `outpost` only (the service listener 1884 reads it),
#                          rewritten on every run from MQTT_SERVICE_PASSWORD;
#   dynamic-security.json  the device listener's (1883) logins and ACLs: created on first start with the
#                          admin account `outpost-broker` (MQTT_ADMIN_PASSWORD), through which Outpost then
#                          writes one login and one role per device from its registry. Kept across runs:
#                          the devices in it are Outpost's; changing the admin password later is done at the
#                          running broker (deploy/README.md).
set -eu
services="${MOSQUITTO_SERVICES_PASSWD_FILE:-/mosquitto/auth/services-passwd}"
dynsec="${MOSQUITTO_DYNSEC_FILE:-/mosquitto/data/dynamic-security.json}"
: "${MQTT_SERVICE_PASSWORD:?MQTT_SERVICE_PASSWORD must be set (see .env.example)}"
: "${MQTT_ADMIN_PASSWORD:?MQTT_ADMIN_PASSWORD must be set (see .env.example)}"
umask 077
: > "$services"
mosquitto_passwd -b "$services" outpost "$MQTT_SERVICE_PASSWORD"
if [ ! -s "$dynsec" ]; then
    mosquitto_ctrl dynsec init "$dynsec" outpost-broker "$MQTT_ADMIN_PASSWORD" > /dev/null
    echo "created $dynsec with the admin account outpost-broker"
fi
if [ "$(id -u)" = 0 ]; then
    # The broker drops root privileges to the `mosquitto` user: it must read both and rewrite the plugin's.
    chown mosquitto:mosquitto "$services" "$dynsec"
fi
echo "broker accounts ready: $services (service accounts), $dynsec (devices, kept by Outpost)"
