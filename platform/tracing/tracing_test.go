package tracing

import "testing"

func TestEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		bad            bool
	}{
		{name: "no path gets the traces path", in: "http://collector:4318", want: "http://collector:4318/v1/traces"},
		{name: "root path too", in: "https://collector:4318/", want: "https://collector:4318/v1/traces"},
		{name: "own path kept", in: "http://gw/otlp/v1/traces", want: "http://gw/otlp/v1/traces"},
		{name: "no scheme", in: "collector:4318", bad: true},
		{name: "grpc scheme", in: "grpc://collector:4317", bad: true},
		{name: "no host", in: "http:///v1/traces", bad: true},
		{name: "empty", in: "", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := endpointURL(tc.in)
			if tc.bad {
				if err == nil {
					t.Fatalf("endpointURL(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("endpointURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
