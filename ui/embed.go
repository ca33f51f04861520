// Package ui holds VRSky's web admin UI: a React + TypeScript single-page
// app built with Vite from this folder (build.sh, run by `make ui`), and
// the built bundle embedded into the binary. `vrsky serve` serves it at
// /ui/ (api.Config.UI).
//
// dist/ is not committed but for dist/.keep, so that a fresh clone compiles:
// such a binary's /ui/ says how to build the bundle. `make build`, `make
// run` and `make test` build it first, and TestBundleIsFresh fails when the
// embedded bundle was not built from the sources next to it, so a stale or
// missing bundle cannot ship through them.
package ui

import (
	"embed"
	"io/fs"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Bundle returns the built bundle: index.html, assets/, build-hash.txt.
// Without a build it holds only .keep.
func Bundle() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // "dist" is a valid path: cannot happen
	}
	return sub
}

// BuiltHash returns the sources' hash the embedded bundle was built from
// (dist/build-hash.txt), or "" when no bundle was built.
func BuiltHash() string {
	b, err := dist.ReadFile("dist/build-hash.txt")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
