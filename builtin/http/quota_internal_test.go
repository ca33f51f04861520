package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/runtime/connector"
)

// TestEmitFailedNamesTheQuota: what the webhook answers an emit the
// engine refused. A quota answers quota_exceeded naming it with
// Retry-After: 429 for the rate and for the storage quota's back-pressure
// (the engine refuses at 90%), 507 when JetStream refused the write at
// the quota; a stream at its own bounds keeps its back-pressure answer.
func TestEmitFailedNamesTheQuota(t *testing.T) {
	jsFull := &jetstream.APIError{Code: 400, ErrorCode: 10047, Description: "insufficient storage resources available"}
	tests := []struct {
		name       string
		err        error
		status     int
		code       string
		field      string
		retryAfter string
	}{
		{"rate quota",
			&connector.QuotaError{Quota: connector.QuotaMessagesPerSecond, Reason: "over", RetryAfter: 1500 * time.Millisecond},
			http.StatusTooManyRequests, "quota_exceeded", "quotas.max_messages_per_second", "2"},
		{"rate quota, no retry time known",
			&connector.QuotaError{Quota: connector.QuotaMessagesPerSecond, Reason: "over"},
			http.StatusTooManyRequests, "quota_exceeded", "quotas.max_messages_per_second", "1"},
		{"storage quota, back-pressure at 90%",
			fmt.Errorf("emit: %w", &connector.QuotaError{Quota: connector.QuotaStorageBytes, Reason: "nearly full", RetryAfter: time.Second, Err: connector.ErrBackpressure}),
			http.StatusTooManyRequests, "quota_exceeded", "quotas.max_storage_bytes", "1"},
		{"storage quota, JetStream refused",
			&connector.QuotaError{Quota: connector.QuotaStorageBytes, Reason: "full", Err: jsFull},
			http.StatusInsufficientStorage, "quota_exceeded", "quotas.max_storage_bytes", "1"},
		{"stream at its own bounds",
			fmt.Errorf("%w: %w", connector.ErrBackpressure, errors.New("maximum bytes exceeded")),
			http.StatusTooManyRequests, "backpressure", "", "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := emitFailed(tc.err, 0)
			if err != nil || r == nil {
				t.Fatalf("emitFailed = %v, %v: want an answer", r, err)
			}
			var body struct {
				Error struct{ Code, Field, Message string }
			}
			if err := json.Unmarshal(r.Body, &body); err != nil {
				t.Fatalf("body %q: %v", r.Body, err)
			}
			if r.Status != tc.status || body.Error.Code != tc.code || body.Error.Field != tc.field {
				t.Fatalf("answered %d %s (field %q), want %d %s (field %q)", r.Status, body.Error.Code, body.Error.Field, tc.status, tc.code, tc.field)
			}
			if body.Error.Message == "" {
				t.Error("no message")
			}
			if got := r.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
}
