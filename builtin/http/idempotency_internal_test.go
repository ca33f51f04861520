package http

import (
	"strings"
	"testing"
)

// TestIdempotencyKey: a key that can be a KV token and an object key
// segment is kept; any other is hashed into one that can.
func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		key  string
		kept bool
	}{
		{"order-7", true},
		{"a.b_c-D9", true},
		{strings.Repeat("x", 128), true},
		{strings.Repeat("x", 129), false},
		{"a..b", false},
		{".", false},
		{"..", false},
		{".x", false},
		{"x.", false},
		{"a b", false},
		{"a/b", false},
		{"ünï", false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			got := idempotencyKey(tc.key)
			if (got == tc.key) != tc.kept {
				t.Fatalf("idempotencyKey(%q) = %q, kept %v, want kept %v", tc.key, got, got == tc.key, tc.kept)
			}
			if !tc.kept && (!strings.HasPrefix(got, "k-") || len(got) != 34) {
				t.Fatalf("idempotencyKey(%q) = %q, want k- and 32 hex digits", tc.key, got)
			}
		})
	}
	if idempotencyKey("a..b") == idempotencyKey("a..c") {
		t.Fatal("two keys hash alike")
	}
}
