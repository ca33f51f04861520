// Command vrsky is VRSky's one binary: `vrsky serve` runs the platform
// (embedded NATS, control plane, data plane, REST API) and the other
// commands are clients of its REST API (integration, tenant, key, dlq,
// message, connector), with saved contexts (context) and an offline spec
// check (integration validate).
package main

import (
	"fmt"
	"os"
)

// version (a semver, "v1.2.0") and commit are set at build time:
// go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse --short HEAD)".
// Left unset, they come from the module and VCS data Go records in the
// binary (see currentBuild).
var (
	version = ""
	commit  = ""
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vrsky:", err)
		os.Exit(1)
	}
}
