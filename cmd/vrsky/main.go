// Command vrsky is VRSky's one binary: `vrsky serve` runs the platform
// (embedded NATS, control plane, data plane, REST API) and the other
// commands are clients of its REST API.
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "vrsky:", err)
		os.Exit(1)
	}
}
