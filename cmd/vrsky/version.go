package main

import (
	"fmt"
	"io"
	goruntime "runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// devVersion is the version of a build that was given none and that Go
// knows no module version of (a `go build` in a checkout).
const devVersion = "v0.0.0-dev"

// buildInfo is what `vrsky version` reports.
type buildInfo struct {
	// Version is the release, a semver ("v1.2.0"; "v0.0.0-dev" for a
	// development build).
	Version string `json:"version"`
	// Commit is the VCS revision built, "-dirty" appended when the work
	// tree had changes; "unknown" when the build recorded none.
	Commit string `json:"commit"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
}

// currentBuild reads the ldflags-set version and commit, falling back on
// what Go recorded in the binary: the module version (`go install
// ...@v1.2.0`) and vcs.revision / vcs.modified (a build in a git checkout
// without -buildvcs=false).
func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: goruntime.Version(), Platform: goruntime.GOOS + "/" + goruntime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		if b.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if rev != "" && dirty {
				rev += "-dirty"
			}
			b.Commit = rev
		}
	}
	if b.Version == "" {
		b.Version = devVersion
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// String is the one line `vrsky --version` prints.
func (b buildInfo) String() string {
	return fmt.Sprintf("vrsky %s (commit %s, %s %s)", b.Version, b.Commit, b.GoVersion, b.Platform)
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print vrsky's version, commit and Go version",
		Args:  cobra.NoArgs,
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		b := currentBuild()
		return out.printValue(cmd.OutOrStdout(), b, func(w io.Writer) error {
			t := newTable(w)
			t.row("Version:", b.Version)
			t.row("Commit:", b.Commit)
			t.row("Go:", b.GoVersion)
			t.row("Platform:", b.Platform)
			return t.flush()
		})
	}
	return cmd
}
