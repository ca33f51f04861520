package msgtmpl_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/builtin/internal/msgtmpl"
	"github.com/vrsky/vrsky/runtime"
)

func TestRender(t *testing.T) {
	msg := &runtime.Message{ID: "id-1", Header: runtime.Header{"X-Shop": {"s1"}},
		Data: []byte(`{"a":"x","n":12.50,"big":12345678901234567890,"t":true,"z":null,"o":{"k":[1,"<b>"]},"arr":[{"v":"first"}],"dot.key":1}`)}
	for _, tc := range []struct {
		name, tmpl, want, err string
	}{
		{"literal", "plain text", "plain text", ""},
		{"string", "a={{a}}", "a=x", ""},
		{"spaces", "{{ a }}-{{  header:X-Shop }}", "x-s1", ""},
		{"number as written", "{{n}} {{big}}", "12.50 12345678901234567890", ""},
		{"bool and null", "{{t}}/{{z}}", "true/", ""},
		{"object as JSON", "{{o}}", `{"k":[1,"<b>"]}`, ""},
		{"array index", "{{arr.0.v}} {{o.k.1}}", "first <b>", ""},
		{"message id header", "{{header:Vrsky-Msg-Id}}", "id-1", ""},
		{"missing field", "{{nope}}", "", "field nope is missing from the payload"},
		{"missing nested", "{{o.k.5}}", "", "field o.k.5 is missing from the payload"},
		{"walk into a string", "{{a.b}}", "", "field a.b is missing from the payload"},
		{"missing header", "{{header:X-None}}", "", "header X-None is missing from the message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm, err := msgtmpl.Parse(tc.tmpl)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tm.Render(&msgtmpl.Vars{Msg: msg, Payload: msg.Data}, nil)
			if tc.err != "" {
				var me *msgtmpl.MissingError
				if err == nil || err.Error() != tc.err || !errors.As(err, &me) {
					t.Fatalf("err = %v, want MissingError %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		tmpl                     string
		ok, static, needsPayload bool
	}{
		{"https://x/y", true, true, false},
		{"{{a}}", true, false, true},
		{"{{header:A}}", true, false, false},
		{"{{a", false, false, false},
		{"{{}}", false, false, false},
		{"{{a..b}}", false, false, false},
		{"{{header:}}", false, false, false},
		{"{{a b}}", false, false, false},
	} {
		tm, err := msgtmpl.Parse(tc.tmpl)
		if (err == nil) != tc.ok {
			t.Errorf("Parse(%q) err = %v, want ok=%v", tc.tmpl, err, tc.ok)
			continue
		}
		if err == nil && (tm.Static() != tc.static || tm.NeedsPayload() != tc.needsPayload || tm.String() != tc.tmpl) {
			t.Errorf("Parse(%q): static %v needsPayload %v", tc.tmpl, tm.Static(), tm.NeedsPayload())
		}
	}
}

func TestPayloadErrors(t *testing.T) {
	tm := msgtmpl.MustParse("{{a}}")
	for _, data := range []string{"", "a=1", `{"a":1} {"a":2}`, `{"a":`} {
		m := &runtime.Message{Header: runtime.Header{}, Data: []byte(data)}
		if _, err := tm.Render(&msgtmpl.Vars{Msg: m, Payload: m.Data}, nil); err == nil || !strings.Contains(err.Error(), "JSON") {
			t.Errorf("payload %q: err = %v, want a JSON error", data, err)
		}
	}
}

func TestEscaperSeesQueryPosition(t *testing.T) {
	tm := msgtmpl.MustParse("http://h/{{a}}?q={{a}}&r={{a}}")
	m := &runtime.Message{Header: runtime.Header{}, Data: []byte(`{"a":"x y/z&"}`)}
	got, err := tm.Render(&msgtmpl.Vars{Msg: m, Payload: m.Data}, func(v string, q bool) string {
		if q {
			return url.QueryEscape(v)
		}
		return url.PathEscape(v)
	})
	if want := "http://h/x%20y%2Fz&?q=x+y%2Fz%26&r=x+y%2Fz%26"; err != nil || got != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

// FuzzRender: no template and payload make Parse or Render panic, and a
// template without references renders as written.
func FuzzRender(f *testing.F) {
	f.Add("a {{b.c}} {{header:X}}", `{"b":{"c":1}}`)
	f.Add("{{", "")
	f.Add("}}{{ x }}", `[1,2]`)
	f.Fuzz(func(t *testing.T, tmpl, payload string) {
		tm, err := msgtmpl.Parse(tmpl)
		if err != nil {
			return
		}
		m := &runtime.Message{Header: runtime.Header{"X": {"v"}}, Data: []byte(payload)}
		out, err := tm.Render(&msgtmpl.Vars{Msg: m, Payload: m.Data}, nil)
		if tm.Static() && (err != nil || out != tmpl) {
			t.Fatalf("static %q rendered %q, %v", tmpl, out, err)
		}
	})
}

// BenchmarkRender: a URL template with two payload fields and a header,
// over a 200-byte payload (the decode is part of it).
func BenchmarkRender(b *testing.B) {
	tm := msgtmpl.MustParse("https://api.example.com/shops/{{customer.tier}}/orders/{{order_id}}?src={{header:X-Src}}")
	m := &runtime.Message{Header: runtime.Header{"X-Src": {"hook"}},
		Data: []byte(`{"order_id":"ord-000123","customer":{"name":"Ada Lovelace","tier":"gold"},"amount":129.95,"qty":3,"currency":"EUR","note":"` + strings.Repeat("x", 64) + `"}`)}
	b.ReportAllocs()
	for b.Loop() {
		v := &msgtmpl.Vars{Msg: m, Payload: m.Data}
		if _, err := tm.Render(v, nil); err != nil {
			b.Fatal(err)
		}
		v.Release()
	}
}
