#!/bin/sh
# Sets up the broker's two password files, run by the one-shot `mosquitto-passwd` compose service:
#   services-passwd  Outpost's service user `outpost` only (the service listener 1884 reads this one);
#   passwd           devices (the device listener 1883). Device entries already in it are kept, but a
#                    service account's or a reserved name (`outpost`, `outpost-…`) is removed from it:
#                    a device may never log in under a service's name.
set -eu
file="${MOSQUITTO_PASSWD_FILE:-/mosquitto/auth/passwd}"
services="${MOSQUITTO_SERVICES_PASSWD_FILE:-/mosquitto/auth/services-passwd}"
: "${MQTT_SERVICE_PASSWORD:?MQTT_SERVICE_PASSWORD must be set (see .env.example)}"
umask 077
[ -f "$file" ] || : > "$file"
for reserved in $(cut -d: -f1 "$file" | grep -E '^outpost(-|$)' || true); do
    mosquitto_passwd -D "$file" "$reserved"
    echo "removed the reserved name $reserved from the device password file"
done
: > "$services"
mosquitto_passwd -b "$services" outpost "$MQTT_SERVICE_PASSWORD"
chmod 600 "$file" "$services"
if [ "$(id -u)" = 0 ]; then
    # The broker drops root privileges to the `mosquitto` user and must still read the files.
    chown mosquitto:mosquitto "$file" "$services"
fi
echo "password files ready: $file ($(wc -l < "$file") devices), $services (service accounts)"
