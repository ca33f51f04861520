// Package natsxtest starts real, embedded NATS servers with JetStream for
// tests: on a random loopback port, in t.TempDir(), stopped by t.Cleanup.
package natsxtest

import (
	"context"
	"testing"

	"github.com/vrsky/vrsky/platform/natsx"
)

// Start runs an embedded nats-server with JetStream for the test and
// returns a connection to it.
func Start(t testing.TB) *natsx.Conn {
	t.Helper()
	return StartIn(t, t.TempDir())
}

// StartIn is Start with a chosen data directory, so a test can restart a
// server on the same JetStream files.
func StartIn(t testing.TB, dir string) *natsx.Conn {
	t.Helper()
	c, err := natsx.Connect(context.Background(), natsx.Options{DataDir: dir, Name: t.Name()})
	if err != nil {
		t.Fatalf("start embedded NATS: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
