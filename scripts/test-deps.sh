#!/bin/sh
# test-deps.sh installs what VRSky's tests need on a Debian/Ubuntu machine:
#   - PostgreSQL server binaries (initdb, postgres), with apt-get, only when
#     initdb is found neither in PATH nor in /usr/lib/postgresql/*/bin;
#   - curl and jq, with apt-get, only when missing: the test that runs the
#     README's getting started (cmd/vrsky) pastes its commands into bash;
#   - Prometheus and promtool (Debian's prometheus package), with apt-get,
#     only when missing: the observability test (cmd/vrsky) runs them;
#   - chromium, with apt-get, only when missing: the web UI's tests
#     (cmd/vrsky/ui_test.go) drive it headless;
#   - Versity's S3 gateway, built with `go install` into the user's cache
#     (outside the checkout), only when that binary is missing.
# It is idempotent and returns at once when everything is there.
# Override the gateway location with VRSKY_VERSITYGW=/path/to/versitygw.
set -eu

VERSITYGW_VERSION=v1.8.0
VERSITYGW_MODULE=github.com/versity/versitygw/cmd/versitygw
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}
VERSITYGW_BIN=${VRSKY_VERSITYGW:-$CACHE_DIR/vrsky/tools/versitygw-$VERSITYGW_VERSION/versitygw}

say() { printf 'test-deps: %s\n' "$*"; }

# apt_install WHAT PACKAGE... installs Debian packages, with sudo when not
# root (and sets SUDO for later commands); WHAT names them for a user
# without apt-get.
apt_install() {
	what=$1
	shift
	if ! command -v apt-get >/dev/null 2>&1; then
		say "apt-get not found: install $what yourself" >&2
		exit 1
	fi
	SUDO=
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	# ui/build.sh may be installing Node.js at the same time (make -j):
	# wait for dpkg's lock rather than fail on it.
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
	$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

have_initdb() {
	command -v initdb >/dev/null 2>&1 && return 0
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && [ -x "$d/postgres" ] && return 0
	done
	return 1
}

if have_initdb; then
	say "PostgreSQL binaries: present"
else
	say "PostgreSQL binaries missing: installing the postgresql package with apt-get"
	# The package's own cluster is not needed: tests start their own.
	apt_install "PostgreSQL 15+ server binaries (initdb, postgres)" postgresql
	if command -v pg_ctlcluster >/dev/null 2>&1; then
		$SUDO sh -c 'for c in /etc/postgresql/*/main; do [ -d "$c" ] || continue; v=$(basename "$(dirname "$c")"); pg_ctlcluster "$v" main stop 2>/dev/null || true; done'
	fi
	have_initdb || { say "postgresql installed but initdb still not found" >&2; exit 1; }
	say "PostgreSQL binaries: installed"
fi

missing=
for tool in curl jq; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -z "$missing" ]; then
	say "curl and jq: present"
else
	say "missing:$missing: installing it with apt-get"
	# shellcheck disable=SC2086 # one word per package
	apt_install "$missing" $missing
	for tool in $missing; do
		command -v "$tool" >/dev/null 2>&1 || { say "$tool installed but still not found" >&2; exit 1; }
	done
	say "curl and jq: installed"
fi

# Debian's prometheus package (it ships promtool too): the observability
# test (cmd/vrsky) scrapes vrsky serve with it and runs the rules' tests.
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
	say "prometheus and promtool: present"
else
	say "prometheus or promtool missing: installing the prometheus package with apt-get"
	apt_install "Prometheus (prometheus, promtool)" prometheus
	# The package's own service is not needed: the test starts its own.
	if command -v systemctl >/dev/null 2>&1; then
		$SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
	fi
	command -v promtool >/dev/null 2>&1 || { say "prometheus installed but promtool still not found" >&2; exit 1; }
	say "prometheus and promtool: installed"
fi

# Debian's chromium: the web UI's tests (cmd/vrsky/ui_test.go) drive it headless.
if command -v chromium >/dev/null 2>&1; then
	say "chromium: present"
else
	say "chromium missing: installing it with apt-get (the web UI's tests drive it)"
	apt_install "chromium" chromium
	command -v chromium >/dev/null 2>&1 || { say "chromium installed but still not found" >&2; exit 1; }
	say "chromium: installed"
fi

if [ -x "$VERSITYGW_BIN" ]; then
	say "versitygw $VERSITYGW_VERSION: present ($VERSITYGW_BIN)"
else
	say "versitygw $VERSITYGW_VERSION missing: building it into $(dirname "$VERSITYGW_BIN") (about a minute, once)"
	mkdir -p "$(dirname "$VERSITYGW_BIN")"
	# Build outside the checkout so its go.mod is not touched.
	(cd "${TMPDIR:-/tmp}" && GOBIN="$(dirname "$VERSITYGW_BIN")" GOFLAGS=-mod=mod GOWORK=off \
		go install "$VERSITYGW_MODULE@$VERSITYGW_VERSION")
	if [ "$(basename "$VERSITYGW_BIN")" != versitygw ]; then
		mv "$(dirname "$VERSITYGW_BIN")/versitygw" "$VERSITYGW_BIN"
	fi
	say "versitygw $VERSITYGW_VERSION: built ($VERSITYGW_BIN)"
fi
