package postgres

import (
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzConvert: no input makes a conversion panic, and a conversion either
// succeeds or says what the value was.
func FuzzConvert(f *testing.F) {
	for _, s := range []string{"42", " 7 ", "4.5", "1e3", "-1e-3", "1e", "+.5", "NaN", "-Infinity", "true", "yes",
		"2024-01-02", "2024-01-02T10:00:00+02:00", "2024-01-02 10:00:00.5", `\x0a0b`, "AQID",
		"0190a0c4-8f6e-7c3a-9b1d-2f4e5a6b7c8d", `{"a":1}`, "[1,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for k := kInt2; k <= kBytea; k++ {
			if _, err := convertString(s, k); err != nil && err.Error() == "" {
				t.Fatalf("kind %d: empty error for %q", k, s)
			}
			var p fastjson.Parser
			if v, err := p.Parse(s); err == nil {
				_, _ = convertJSON(v, k)
			}
		}
	})
}
