package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/internal/testenv/s3test"
)

// Outages of the production backends, with real PostgreSQL and a real S3
// server that the tests stop and start.

// postStatus sends a webhook body and returns the status code.
func (in *instance) postStatus(body string) int {
	in.t.Helper()
	resp, err := http.Post(in.url+"/hooks/acme/orders", "application/json", strings.NewReader(body))
	if err != nil {
		in.t.Fatalf("post: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sinkFailures reads the failed-attempt counter of the integration's sink.
func (in *instance) sinkFailures(key string) int {
	var got struct {
		Status struct {
			Sinks []struct{ Failures int } `json:"sinks"`
		} `json:"status"`
	}
	in.call("GET", "/api/v1/integrations/orders", key, "", "", http.StatusOK, &got)
	if len(got.Status.Sinks) == 0 {
		return 0
	}
	return got.Status.Sinks[0].Failures
}

func bigBody(n int) string { return `"` + strings.Repeat("z", n) + `"` }

func TestObjectStoreOutage(t *testing.T) {
	srv := s3test.Start(t)
	cfg := srv.NewBucket(t)
	be := backends{s3: &cfg}
	sink := newGatedSink(t, true)
	in := startServe(t, t.TempDir(), freeAddr(t), be)
	key := in.setup(sink.srv.URL)

	// Healthy: a claim-checked payload goes through.
	first := in.post(bigBody(300 << 10))
	waitFor(t, 15*time.Second, "the 300 KiB delivery", func() bool { return sink.count() == 1 })

	// Down during the write: the edge answers 503, small payloads still flow.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if code := in.postStatus(bigBody(300 << 10)); code != http.StatusServiceUnavailable {
		t.Fatalf("claim-checked post with S3 down answered %d, want 503", code)
	}
	in.post(`{"small": true}`)
	waitFor(t, 15*time.Second, "the inline delivery while S3 is down", func() bool { return sink.count() == 2 })

	// Down during the read: the delivery is retried, not dropped.
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	sink.setOpen(false)
	pending := in.post(bigBody(400 << 10))
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	sink.setOpen(true)
	waitFor(t, 15*time.Second, "a delivery attempt to fail on the stopped S3 server", func() bool {
		return in.sinkFailures(key) > 0
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the delivery once S3 is back", func() bool {
		sink.mu.Lock()
		defer sink.mu.Unlock()
		return sink.got[pending] == 1
	})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if sink.got[first] != 1 {
		t.Fatalf("first message delivered %d times", sink.got[first])
	}
}

func TestBadS3CredentialsFailAtStart(t *testing.T) {
	cfg := s3test.New(t)
	cfg.SecretKey = "not-the-secret"
	in := serveCmd(t, t.TempDir(), freeAddr(t), backends{s3: &cfg})
	done := make(chan error, 1)
	go func() { done <- in.cmd.Run() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("vrsky serve started with bad S3 credentials")
		}
	case <-time.After(60 * time.Second):
		_ = in.cmd.Process.Kill()
		t.Fatalf("vrsky serve neither started nor failed with bad credentials:\n%s", in.log)
	}
	out := in.log.String()
	if !strings.Contains(out, "--s3-endpoint") || !strings.Contains(strings.ToLower(out), "credential") {
		t.Fatalf("the error does not name the setting and the credentials:\n%s", out)
	}
}

func TestPostgresOutageAnswers503AndRecovers(t *testing.T) {
	pg := pgtest.Start(t)
	be := backends{databaseURL: pgtest.NewDatabase(t, pg)}
	sink := newGatedSink(t, true)
	in := startServe(t, t.TempDir(), freeAddr(t), be)
	key := in.setup(sink.srv.URL)
	in.post(`{"n": 1}`)
	waitFor(t, 15*time.Second, "delivery", func() bool { return sink.count() == 1 })

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	in.call("GET", "/api/v1/integrations/orders", key, "", "", http.StatusServiceUnavailable, nil)
	// The node stays ready, degraded: a database every node shares must
	// not take them all out of the load balancer.
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	in.call("GET", "/readyz", "", "", "", http.StatusOK, &ready)
	if ready.Status != "degraded" || ready.Checks["store"] == "ok" || ready.Checks["nats"] != "ok" {
		t.Fatalf("/readyz with PostgreSQL down: %+v, want degraded, the store failing and NATS ok", ready)
	}
	// The data plane does not need the control plane to move messages.
	in.post(`{"n": 2}`)
	waitFor(t, 15*time.Second, "delivery while PostgreSQL is down", func() bool { return sink.count() == 2 })

	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the API back without a restart", func() bool {
		req, _ := http.NewRequest("GET", in.url+"/api/v1/integrations/orders", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	in.call("GET", "/readyz", "", "", "", http.StatusOK, &ready)
	if ready.Status != "ready" || ready.Checks["store"] != "ok" {
		t.Fatalf("/readyz with PostgreSQL back: %+v", ready)
	}
}

func TestTwoNodesMigrateOneDatabase(t *testing.T) {
	dsn := pgtest.New(t)
	var wg sync.WaitGroup
	nodes := make([]*instance, 2)
	for i := range nodes {
		nodes[i] = serveCmd(t, t.TempDir(), freeAddr(t), backends{databaseURL: dsn})
		if err := nodes[i].cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		wg.Go(func() { n.waitReady() })
	}
	wg.Wait()
	out, err := runCLI(t, "migrate", "status", "--database-url", dsn)
	if err != nil {
		t.Fatalf("migrate status: %v\n%s", err, out)
	}
	if strings.Contains(out, "pending") || !strings.Contains(out, "applied") {
		t.Fatalf("migrate status after two concurrent starts:\n%s", out)
	}
	out, err = runCLI(t, "migrate", "status", "--database-url", dsn, "-o", "json")
	var doc struct {
		Migrations []migrationView `json:"migrations"`
	}
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || len(doc.Migrations) == 0 ||
		doc.Migrations[0].State != "applied" || doc.Migrations[0].AppliedAt == nil {
		t.Fatalf("migrate status -o json: %v\n%s", err, out)
	}
}

func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(args)
	cmd.SetOut(&buf)
	cmd.SetErr(&buf)
	err := cmd.Execute()
	return buf.String(), err
}
