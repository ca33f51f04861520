package blob_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/platform/blob"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true},
		{"payloads/acme/orders/01J9Z", true},
		{"modules/jq/1.0.0/module.wasm", true},
		{"a..b/c", true},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"a/./b", false},
		{"../a", false},
		{"a b", false},
		{"a\\b", false},
		{"ü", false},
		{strings.Repeat("a", blob.MaxKeyLen), true},
		{strings.Repeat("a", blob.MaxKeyLen+1), false},
	} {
		err := blob.ValidateKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
		if err != nil && !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", tc.key, err)
		}
	}
}

// FuzzValidateKey checks that accepted keys are safe as S3 keys and as
// relative file paths under a posix gateway.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", ".", "a/.", "x\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if blob.ValidateKey(key) != nil {
			return
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
		for _, c := range key {
			if c > 127 || c < 32 || c == '\\' || c == ' ' {
				t.Fatalf("accepted %q with character %q", key, c)
			}
		}
	})
}
