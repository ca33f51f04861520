package runtime_test

import (
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// A stage's wire form parses back to the stage, and what the pipeline
// never writes is refused.
func TestParseStage(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want runtime.Stage
	}{
		{"accepted", runtime.Stage{Kind: runtime.StageAccepted}},
		{"route", runtime.Stage{Kind: runtime.StageRoute}},
		{"route:big", runtime.Stage{Kind: runtime.StageRoute, Name: "big"}},
		{"step:step-1", runtime.Stage{Kind: runtime.StageStep, Name: "step-1"}},
		{"sink:api", runtime.Stage{Kind: runtime.StageSink, Name: "api"}},
	} {
		got, err := runtime.ParseStage(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseStage(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if s := got.String(); s != tc.in {
			t.Errorf("ParseStage(%q).String() = %q", tc.in, s)
		}
	}
	for _, bad := range []string{"", "sink", "step", "sink:", "route:", "accepted:x", "dlq:x", "Sink:api", ":api"} {
		if st, err := runtime.ParseStage(bad); err == nil {
			t.Errorf("ParseStage(%q) = %+v, want an error", bad, st)
		}
	}
}
