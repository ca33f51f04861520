package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck runs `vrsky healthcheck` (the container image's
// HEALTHCHECK) against a real vrsky serve, and against a server that
// answers 503 and an address where nothing listens.
func TestHealthcheck(t *testing.T) {
	in := startServe(t, t.TempDir(), freeAddr(t))
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"status":"unready"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(unavailable.Close)
	c := newCLIEnv(t)
	tests := []struct {
		name   string
		args   []string
		env    []string
		code   int
		out    string
		errOut string
	}{
		{name: "healthz", args: []string{"--url", in.url + "/healthz"}, out: "200 OK"},
		{name: "readyz", args: []string{"--url", in.url + "/readyz"}, out: "200 OK"},
		{name: "url from the environment", env: []string{"VRSKY_HEALTHCHECK_URL=" + in.url + "/readyz"}, out: in.url + "/readyz: 200 OK"},
		{name: "the flag wins over the environment", args: []string{"--url", in.url + "/healthz"}, env: []string{"VRSKY_HEALTHCHECK_URL=http://127.0.0.1:1/"}, out: "/healthz: 200 OK"},
		{name: "not found", args: []string{"--url", in.url + "/nowhere"}, code: 1, errOut: "404"},
		{name: "unavailable", args: []string{"--url", unavailable.URL + "/readyz"}, code: 1, errOut: "503 Service Unavailable"},
		{name: "nothing listening", args: []string{"--url", "http://" + freeAddr(t) + "/healthz"}, code: 1, errOut: "connection refused"},
		{name: "not a URL", args: []string{"--url", "::"}, code: 1, errOut: "--url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := c.run(tt.env, "", append([]string{"healthcheck"}, tt.args...)...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tt.code, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tt.out) || !strings.Contains(r.stderr, tt.errOut) {
				t.Errorf("stdout %q (want %q), stderr %q (want %q)", r.stdout, tt.out, r.stderr, tt.errOut)
			}
		})
	}
}
