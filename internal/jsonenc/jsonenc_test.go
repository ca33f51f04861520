package jsonenc

import (
	"encoding/json"
	"testing"
)

// FuzzAppendString: any input becomes a valid JSON string that decodes to
// what encoding/json makes of it (invalid UTF-8 replaced), in both forms.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" backslash \\ nl \n tab \t", "\x00\x1f\x7f", "é ü 漢字 🙂 𝄞", "bad \xff\xfe utf8", "\u2028<>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := AppendString(nil, s)
		var got string
		if err := json.Unmarshal(enc, &got); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, enc, err)
		}
		ref, _ := json.Marshal(s)
		var want string
		_ = json.Unmarshal(ref, &want)
		if got != want {
			t.Fatalf("%q round-trips to %q, want %q", s, got, want)
		}
		if string(AppendString(nil, []byte(s))) != string(enc) {
			t.Fatal("the string and []byte forms differ")
		}
	})
}
