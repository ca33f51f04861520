#!/usr/bin/env bash
# Builds every shipped Wasm connector (wasm-connectors/<name>/) into
# wasm-connectors/build/<name>.wasm as a WASI reactor:
#   GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath
# Idempotent: a module is rebuilt only when a hash of its sources, the guest
# SDK (abi/), go.mod and go.sum and the Go version has changed.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
out=wasm-connectors/build
mkdir -p "$out"
# package wasmconnectors embeds build/; keep its committed placeholder even
# after a `rm -rf` of the folder, so go:embed always has a file to match.
[ -f "$out/README.md" ] || git checkout -- "$out/README.md" 2>/dev/null || printf '%s\n' \
	'`wasm-connectors/build.sh` (run by `make wasm`) writes the shipped modules here.' > "$out/README.md"
goversion=$("$GO" env GOVERSION)
abi_sum=$(find abi -name '*.go' ! -name '*_test.go' -type f -print0 | sort -z | xargs -0 -r cat | sha256sum | cut -c1-64)
built=0
for dir in wasm-connectors/*/; do
	name=$(basename "$dir")
	[ -f "$dir/vrsky-connector.yaml" ] || continue
	sum=$( { echo "$goversion $abi_sum"; cat go.mod go.sum; find "$dir" -name '*.go' ! -name '*_test.go' -type f -print0 | sort -z | xargs -0 -r cat; } | sha256sum | cut -c1-16)
	stamp="$out/.stamp-$name"
	if [ -f "$out/$name.wasm" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
		continue
	fi
	echo "wasm-connectors: building $name"
	# The temporary file's name starts with a dot: package wasmconnectors
	# embeds build/ (go:embed skips dot files), so a go build, vet or test
	# running meanwhile never lists a file this rename takes away.
	GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -trimpath -o "$out/.tmp-$name.wasm" "./$dir"
	mv "$out/.tmp-$name.wasm" "$out/$name.wasm"
	echo "$sum" > "$stamp"
	built=$((built + 1))
done
echo "wasm-connectors: $built built, modules in $out"
