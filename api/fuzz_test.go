package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// FuzzKeyID: the key parser never panics and only accepts what newKey makes.
func FuzzKeyID(f *testing.F) {
	text, _, err := newKey()
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{text, "", "vrsk_", "vrsk__", "vrsk_admin_x", text + "_", strings.ToUpper(text)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := keyID(s)
		if ok && (len(id) != 16 || !strings.HasPrefix(s, keyPrefix+id+"_") || len(s) != len(keyPrefix)+16+1+64) {
			t.Fatalf("keyID(%q) accepted id %q", s, id)
		}
	})
}

// FuzzUnknownField: for any JSON, the strict check never panics, and what
// it lets through decodes without unknown fields.
func FuzzUnknownField(f *testing.F) {
	for _, s := range []string{`{"name":"x"}`, `{"quotas":{"max_integrations":1,"x":2}}`, `{"quotas":[1]}`, `[]`, `null`, `{"display_name":{"a":1}}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc any
		if json.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		if _, found := unknownField(doc, reflect.TypeOf(&tenantCreate{}), ""); found {
			return
		}
		dec := json.NewDecoder(strings.NewReader(s))
		dec.DisallowUnknownFields()
		var v tenantCreate
		if err := dec.Decode(&v); err != nil && strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("unknownField let %s through: %v", s, err)
		}
	})
}
