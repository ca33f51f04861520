#!/bin/sh
# build.sh builds the web UI into ui/dist (what ui/embed.go embeds), and
# stamps dist/build-hash.txt with the hash of the sources it was built from
# (TestBundleIsFresh fails when they differ). It does nothing when the
# bundle is already built from these sources. It installs Node.js and npm
# from Debian's packages when they are missing, and the npm packages pinned
# in package-lock.json (npm ci) when node_modules is missing or stale.
set -eu
cd "$(dirname "$0")"

say() { printf 'ui: %s\n' "$*"; }

# hash_sources prints the SHA-256 of the UI's sources: sha256sum's lines
# ("<hex>  <path>") for every source file, sorted by path, hashed again.
# ui/hash.go computes the same.
hash_sources() {
	{ ls index.html package.json package-lock.json tsconfig.json vite.config.ts; find src -type f; } |
		LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1
}

want=$(hash_sources)
if [ -f dist/index.html ] && [ "$(cat dist/build-hash.txt 2>/dev/null)" = "$want" ]; then
	say "bundle up to date ($want)"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	say "npm not found: installing nodejs and npm with apt-get"
	command -v apt-get >/dev/null 2>&1 || { say "apt-get not found: install Node.js 20+ and npm yourself" >&2; exit 1; }
	SUDO=
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	# scripts/test-deps.sh may be installing at the same time (make -j):
	# wait for dpkg's lock rather than fail on it.
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
	$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.vrsky-lock; then
	say "installing the pinned npm packages (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json node_modules/.vrsky-lock
fi

# Vite writes into .dist-new, and the finished bundle replaces dist with two
# renames: a go build, vet or test running meanwhile (ui/embed.go embeds
# dist) sees the old bundle or the new one, never a half-written one.
say "building the bundle (vite build)"
rm -rf .dist-new .dist-old
npm run --silent build -- --outDir .dist-new
: > .dist-new/.keep
printf '%s\n' "$want" > .dist-new/build-hash.txt
[ -d dist ] && mv dist .dist-old
mv .dist-new dist
rm -rf .dist-old
say "bundle built ($want)"
