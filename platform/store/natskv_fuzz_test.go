package store

import (
	"encoding/base64"
	"regexp"
	"strings"
	"testing"
)

var validToken = regexp.MustCompile(`^[-_=A-Za-z0-9]+$`)

// FuzzSeg checks that every name maps to one valid KV key token (no ".",
// "*" or ">" that would change a subject filter) and that the mapping can
// be undone, so two names never share a key.
func FuzzSeg(f *testing.F) {
	for _, s := range []string{"", "acme", "a.b", "a*", "a>", "=x", "ünï", "with space", "a-b_c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		tok := seg(name)
		if !validToken.MatchString(tok) {
			t.Fatalf("seg(%q) = %q: not a single KV key token", name, tok)
		}
		back := tok
		if enc, ok := strings.CutPrefix(tok, "="); ok {
			b, err := base64.RawURLEncoding.DecodeString(enc)
			if err != nil {
				t.Fatalf("seg(%q) = %q: cannot decode: %v", name, tok, err)
			}
			back = string(b)
		}
		if back != name {
			t.Fatalf("seg(%q) = %q decodes to %q", name, tok, back)
		}
	})
}
