package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestTextMustBeUTF8: a JSON body whose text is not UTF-8, or holds an
// unpaired surrogate escape, is refused with a 400 naming the field, instead
// of being stored with U+FFFD in place of what was sent. Text that is valid
// is stored exactly as sent, U+FFFD written by the client included.
func TestTextMustBeUTF8(t *testing.T) {
	e := newTestEnv(t)
	key := e.createTenant("acme")
	keys := "/api/v1/tenants/acme/keys"
	refused := []struct {
		name, method, path, body, field string
	}{
		{"key name with a byte that is not UTF-8", "POST", keys, "{\"name\":\"ci\xff\"}", "name"},
		{"key name cut in a rune", "POST", keys, "{\"name\":\"d\xc3\"}", "name"},
		{"key name with a lone low surrogate", "POST", keys, `{"name":"ci\udc00"}`, "name"},
		{"key name with a lone high surrogate", "POST", keys, `{"name":"ci\ud83d-x"}`, "name"},
		{"key name with a high surrogate at its end", "POST", keys, `{"name":"ci\ud83d"}`, "name"},
		{"key name with two high surrogates", "POST", keys, `{"name":"\ud83d\ud83d"}`, "name"},
		{"display name not UTF-8", "PATCH", "/api/v1/tenants/acme", "{\"display_name\":\"Acme \xe9\"}", "display_name"},
		{"object key not UTF-8", "PATCH", "/api/v1/tenants/acme", "{\"quotas\":{\"max_\xff\":1}}", "quotas"},
		{"top-level key not UTF-8", "POST", keys, "{\"n\xffme\":\"ci\"}", "body"},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			k := key
			if c.method == "PATCH" {
				k = testAdminKey
			}
			r := e.with(t).must(http.StatusBadRequest, req{method: c.method, path: c.path, key: k, contentType: "application/json", body: c.body})
			if r.errField("field") != c.field || !strings.Contains(r.errField("message"), "UTF-8") {
				t.Errorf("field %q, message %q; want field %q and a message about UTF-8", r.errField("field"), r.errField("message"), c.field)
			}
		})
	}
	accepted := []struct {
		name, body, want string
	}{
		{"surrogate pair", `{"name":"ci \ud83d\ude00"}`, "ci 😀"},
		{"UTF-8 as is", `{"name":"café 😀"}`, "café 😀"},
		{"U+FFFD written by the client", `{"name":"a\ufffd b�"}`, "a\ufffd b\ufffd"},
		{"an escaped backslash before u", `{"name":"\\ud800"}`, `\ud800`},
		{"escaped quote and newline", `{"name":"a\"b\n\u00e9"}`, "a\"b\né"},
	}
	for _, c := range accepted {
		t.Run(c.name, func(t *testing.T) {
			r := e.with(t).must(http.StatusCreated, req{method: "POST", path: keys, key: key, contentType: "application/json", body: c.body})
			if got := r.str("name"); got != c.want {
				t.Errorf("stored name %q, want %q", got, c.want)
			}
		})
	}
	// Only what was accepted is stored, as sent.
	list := e.must(http.StatusOK, req{method: "GET", path: keys, key: key})
	var names []string
	for _, k := range list.body["keys"].([]any) {
		if n, _ := k.(map[string]any)["name"].(string); n != "" && n != "initial" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var want []string
	for _, c := range accepted {
		want = append(want, c.want)
	}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("stored key names %q, want %q", names, want)
	}
	if got := e.must(http.StatusOK, req{method: "GET", path: "/api/v1/tenants/acme", key: testAdminKey}).str("display_name"); got != "" {
		t.Errorf("display name %q stored from a refused request", got)
	}
}

// FuzzMangledText checks mangledText against encoding/json itself: for a
// valid JSON document that writes no U+FFFD of its own, it reports a field
// exactly when decoding puts a U+FFFD in some key or string.
func FuzzMangledText(f *testing.F) {
	for _, seed := range []string{
		`{"name":"ci"}`, "{\"name\":\"ci\xff\"}", `{"a":["x","\udc00"]}`, `{"a":{"\ud83d\ude00":1}}`,
		`["\\ud800", "\ud800\udc00"]`, "{\"k\xc3\":[1,{\"b\":\"\\\"\"}]}", `"\ud83d"`, `{"a":"\ud83d\u0041"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var doc any
		if json.Unmarshal(body, &doc) != nil || bytes.Contains(body, []byte("\ufffd")) ||
			bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
			return
		}
		field, bad := mangledText(body)
		if mangled := hasFFFD(doc); bad != mangled {
			t.Errorf("mangledText(%q) = %q, %v; decoding mangles it: %v", body, field, bad, mangled)
		}
	})
}

// hasFFFD reports whether a decoded JSON value holds U+FFFD in a key or string.
func hasFFFD(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, '\ufffd')
	case []any:
		return slices.ContainsFunc(v, hasFFFD)
	case map[string]any:
		for k, x := range v {
			if strings.ContainsRune(k, '\ufffd') || hasFFFD(x) {
				return true
			}
		}
	}
	return false
}
