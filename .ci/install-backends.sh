#!/usr/bin/env bash
# Installs the object storage servers that the backends tests run against:
#   versitygw (S3 gateway)  -> $(go env GOPATH)/bin/versitygw
#   azurite   (Azure Blob)  -> /opt/agentfs-test/node_modules/.bin/azurite-blob
# fake-gcs-server needs no install: the GCS tests run it in-process.
#
# Idempotent: a tool already at the pinned version is not rebuilt. Run as root on
# Debian 12 with Go and Node/npm on PATH. Prints the env vars the tests read:
#   AGENTFS_VERSITYGW=... AGENTFS_AZURITE=...
set -euo pipefail

VERSITYGW_VERSION="${VERSITYGW_VERSION:-v1.8.0}"
AZURITE_VERSION="${AZURITE_VERSION:-3.37.0}"
PREFIX="${AGENTFS_TEST_PREFIX:-/opt/agentfs-test}"

command -v go >/dev/null || { echo "install-backends: go not on PATH" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-backends: npm not on PATH" >&2; exit 1; }

start=$(date +%s)
gobin="$(go env GOBIN)"
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
vgw="$gobin/versitygw"
stamp="$PREFIX/versitygw.version"
mkdir -p "$PREFIX"

if [ -x "$vgw" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$VERSITYGW_VERSION" ]; then
	echo "versitygw $VERSITYGW_VERSION already installed at $vgw"
else
	echo "installing versitygw $VERSITYGW_VERSION (go install, a few minutes)..."
	# Outside any module so that the repo's go.mod is not consulted or changed.
	(cd / && GOFLAGS=-mod=mod GOBIN="$gobin" go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
	echo "$VERSITYGW_VERSION" >"$stamp"
fi

az="$PREFIX/node_modules/.bin/azurite-blob"
have="$(node -p "require('$PREFIX/node_modules/azurite/package.json').version" 2>/dev/null || true)"
if [ -x "$az" ] && [ "$have" = "$AZURITE_VERSION" ]; then
	echo "azurite $AZURITE_VERSION already installed at $az"
else
	echo "installing azurite $AZURITE_VERSION (npm)..."
	[ -f "$PREFIX/package.json" ] || echo '{"name":"agentfs-test-servers","private":true}' >"$PREFIX/package.json"
	npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "azurite@$AZURITE_VERSION"
fi

echo "versitygw $(cat "$stamp") at $vgw"
echo "azurite $(node -p "require('$PREFIX/node_modules/azurite/package.json').version")"
echo "installed in $(( $(date +%s) - start ))s; point the tests at them with:"
echo "export AGENTFS_VERSITYGW=$vgw"
echo "export AGENTFS_AZURITE=$az"
