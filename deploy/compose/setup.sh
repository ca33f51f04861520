#!/usr/bin/env bash
# Run once before `docker compose up` (again does no harm): builds the vrsky
# image, makes VRSky's NATS operator keys in the nats-keys volume (kept
# there, never on the host: they sign every tenant's account) and writes
# nats/vrsky-operator.conf, the block `vrsky nats server-config` prints,
# which each NATS server includes. The keys are made only when the volume
# has none. COMPOSE picks the tool (default: docker compose; podman compose
# works too).
set -euo pipefail
cd "$(dirname "$0")"
read -r -a compose <<<"${COMPOSE:-docker compose}"
run=("${compose[@]}" --profile setup run --rm --no-deps -T nats-keys)
config=(nats server-config --keys /data/nats-operator.json --resolver-dir /data/accounts)

echo "==> building the vrsky image (deploy/docker/Dockerfile)"
"${compose[@]}" --profile setup build nats-keys
tmp=nats/vrsky-operator.conf.tmp
trap 'rm -f "$tmp"' EXIT
if "${run[@]}" "${config[@]}" >"$tmp" 2>/dev/null; then
	echo "==> operator keys already in the nats-keys volume: kept"
else
	echo "==> making the operator keys (vrsky nats keys, in the nats-keys volume)"
	"${run[@]}" nats keys /data/nats-operator.json
	"${run[@]}" "${config[@]}" >"$tmp"
fi
mv "$tmp" nats/vrsky-operator.conf
echo "==> wrote nats/vrsky-operator.conf; now: docker compose up -d"
