package provision_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vrsky/vrsky/platform/provision"
)

// TestMain fails the package if a test leaves goroutines behind
// (supervisors, exit waiters, health checks, NATS clients). The children
// are processes, checked by the tests themselves.
//
// With parentEnv set, the test binary is instead a stand-in for VRSky
// (see TestChildDiesWithParent).
func TestMain(m *testing.M) {
	if path, ok := os.LookupEnv(parentEnv); ok {
		os.Exit(parentMain(path))
	}
	goleak.VerifyTestMain(m)
}

// parentEnv names the file of a parentJob.
const parentEnv = "VRSKY_PROVISION_TEST_PARENT"

// parentJob is what parentMain provisions.
type parentJob struct {
	Dir  string         `json:"dir"`
	Spec provision.Spec `json:"spec"`
}

// parentMain provisions the instance of the job in the file at path,
// prints "pid <child's pid> <url>" and waits to be killed.
func parentMain(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	var job parentJob
	if err := json.Unmarshal(b, &job); err != nil {
		fmt.Println("error", err)
		return 1
	}
	l, err := provision.NewLocal(job.Dir, nil)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), ensureTimeout)
	defer cancel()
	in, err := l.Ensure(ctx, job.Spec)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pid", l.PID(job.Spec.Tenant), in.URL)
	time.Sleep(time.Hour)
	return 1
}
