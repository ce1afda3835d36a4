#!/bin/sh
# Writes the EMQX cluster's bootstrap users, run by the one-shot `emqx-init` compose service (profile
# `scale`) before the EMQX nodes: the one user of EMQX's built-in database, Outpost's service account
# `outpost` (MQTT_SERVICE_PASSWORD). Each node imports the file when it starts and never overwrites a user
# it already has (EMQX's bootstrap_file): a later change of the password is made at the broker
# (deploy/README.md). Devices are not in it: they log in through Outpost's registry.
set -eu
file="${EMQX_BOOTSTRAP_FILE:-/bootstrap/outpost-users.csv}"
: "${MQTT_SERVICE_PASSWORD:?MQTT_SERVICE_PASSWORD must be set (see .env.example)}"
case "$MQTT_SERVICE_PASSWORD" in
    *[!A-Za-z0-9._~-]*)
        echo "MQTT_SERVICE_PASSWORD must be URL-safe (letters, digits, . _ ~ -): generate it with openssl rand -hex 24" >&2
        exit 2
        ;;
esac
umask 077
printf 'user_id,password,is_superuser\noutpost,%s,false\n' "$MQTT_SERVICE_PASSWORD" > "$file"
if [ "$(id -u)" = 0 ]; then
    chown "${EMQX_UID:-1000}:${EMQX_UID:-1000}" "$file"  # the nodes run as the image's `emqx` user
fi
echo "EMQX bootstrap users ready: $file (the service account outpost)"
