package main

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// With --egress public a tenant's HTTP sink cannot reach the server's own
// network: a sink on loopback fails for good on its first attempt, and the
// dead letter says why. (Every other test runs the default, private, which
// reaches loopback sinks.) A wrong value stops the server with the flag.
func TestServeEgressPolicy(t *testing.T) {
	sink := newGatedSink(t, true)
	in := serveCmd(t, t.TempDir(), freeAddr(t))
	in.cmd.Args = append(in.cmd.Args, "--egress", "public")
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in.waitReady()
	key := in.setup(sink.srv.URL)
	id := in.post(`{"order_id": 7}`)
	waitTraceState(t, in, key, id, "dead_lettered")
	if n := sink.count(); n != 0 {
		t.Fatalf("the loopback sink got %d messages under --egress public", n)
	}
	var page struct {
		Items []struct {
			MessageID string `json:"message_id"`
			Attempts  int    `json:"attempts"`
			Error     string `json:"error"`
		} `json:"items"`
	}
	in.call("GET", "/api/v1/integrations/orders/dlq", key, "", "", http.StatusOK, &page)
	if len(page.Items) != 1 || page.Items[0].MessageID != id || page.Items[0].Attempts != 1 ||
		!strings.Contains(page.Items[0].Error, "egress policy") {
		t.Fatalf("dead letters = %+v, want %s after 1 attempt, refused by the egress policy", page.Items, id)
	}

	t.Run("bad value", func(t *testing.T) {
		out, err := exec.Command(vrskyBin, "serve", "--data", t.TempDir(), "--listen", freeAddr(t), "--egress", "open").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--egress") {
			t.Fatalf("serve with --egress open: %v\n%s\nwant a failure naming the flag", err, out)
		}
	})
}
