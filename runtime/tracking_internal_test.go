package runtime

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The hand-written encoder must say what encoding/json would.
func TestStageRecordJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 15, 4, 5, 123456789, time.UTC)
	for _, rec := range []StageRecord{
		{Stage: "accepted", Status: StatusAccepted, At: at},
		{Stage: "sink:api", Status: StatusFailed, At: at, Attempt: 2, Error: "POST http://x: 500 \"boom\"\n<html>\\ é \x01"},
		{Stage: "route", Status: StatusPassed, At: at, Outputs: []string{"api", "0191-id@db"}},
	} {
		got := rec.appendJSON(nil)
		want, _ := json.Marshal(rec)
		var g, w StageRecord
		if err := json.Unmarshal(got, &g); err != nil {
			t.Fatalf("%s is not JSON: %v", got, err)
		}
		_ = json.Unmarshal(want, &w)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("appendJSON = %s\nencoding/json = %s", got, want)
		}
	}
}

func BenchmarkTrackRecord(b *testing.B) {
	tr := &tracker{ch: make(chan trackEvent, 1)}
	rec := StageRecord{Stage: "sink:api", Status: StatusDelivered, Attempt: 1}
	b.ReportAllocs()
	for b.Loop() {
		tr.record("acme", "orders", "0191a3c4-1111-7000-8000-000000000000", rec)
		select {
		case <-tr.ch:
		default:
		}
	}
}
