#!/bin/sh
# Creates the broker's password file if needed and sets the password of Outpost's service user `outpost`.
# Device entries already in the file are kept. Run by the one-shot `mosquitto-passwd` compose service.
set -eu
file="${MOSQUITTO_PASSWD_FILE:-/mosquitto/auth/passwd}"
: "${MQTT_SERVICE_PASSWORD:?MQTT_SERVICE_PASSWORD must be set (see .env.example)}"
umask 077
[ -f "$file" ] || : > "$file"
mosquitto_passwd -b "$file" outpost "$MQTT_SERVICE_PASSWORD"
chmod 600 "$file"
if [ "$(id -u)" = 0 ]; then
    # The broker drops root privileges to the `mosquitto` user and must still read the file.
    chown mosquitto:mosquitto "$file"
fi
echo "password file $file ready ($(wc -l < "$file") users)"
