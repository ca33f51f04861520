package jsonval

import (
	"encoding/json"
	"math"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"object sorted", `{"b":1,"a":[true,false,null],"c":"x"}`, `{"a":[true,false,null],"b":1,"c":"x"}`},
		{"numbers", `[1,-2,1.5,1e3,12345678901234567890]`, `[1,-2,1.5,1000,1.2345678901234567e+19]`},
		{"escapes", `"q\"\\\n\u0001é"`, `"q\"\\\n\u0001é"`},
		{"nested", `{"a":{"b":{"c":[{}]}}}`, `{"a":{"b":{"c":[{}]}}}`},
	}
	var d Decoder
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := d.Decode([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			out, err := Append(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tc.want {
				t.Fatalf("got %s want %s", out, tc.want)
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON %s", out)
			}
		})
	}
	if _, err := d.Decode([]byte(`{"a":`)); err == nil {
		t.Fatal("bad JSON accepted")
	}
	if b := AppendFloat(nil, math.NaN()); string(b) != "null" {
		t.Fatal(string(b))
	}
	if _, err := Append(nil, struct{}{}); err == nil {
		t.Fatal("struct accepted")
	}
}

func FuzzDecodeAppend(f *testing.F) {
	f.Add([]byte(`{"a":[1,"x",null]}`))
	f.Add([]byte(`"\ud800"`))
	var d Decoder
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := d.Decode(in)
		if err != nil {
			return
		}
		out, err := Append(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON %q from %q", out, in)
		}
	})
}
