package runtime

import (
	"encoding/json"
	"reflect"
	"strings"
	"sync/atomic"
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

// publishLog records what a trackWriter publishes.
type publishLog struct{ subjects, entries []string }

func (l *publishLog) Publish(subj string, data []byte) error {
	l.subjects = append(l.subjects, subj)
	l.entries = append(l.entries, string(data))
	return nil
}

// entryStages lists the stage:status pairs of written entry i.
func (l *publishLog) entryStages(t *testing.T, i int) []string {
	t.Helper()
	var recs []StageRecord
	if err := json.Unmarshal([]byte(l.entries[i]), &recs); err != nil {
		t.Fatalf("entry %d %s: %v", i, l.entries[i], err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.Stage+":"+r.Status)
	}
	return out
}

// The writer holds a message's records until it is delivered everywhere
// (or until they are old), and writes failures at once.
func TestTrackWriterCoalesces(t *testing.T) {
	route := func(outs ...string) StageRecord {
		return StageRecord{Stage: stageRoute.String(), Status: StatusPassed, Outputs: outs}
	}
	delivered := func(sink string) StageRecord { return StageRecord{Stage: "sink:" + sink, Status: StatusDelivered} }
	for _, tc := range []struct {
		name string
		recs []StageRecord
		// writes are the entries written before the final flush, then
		// after it.
		writes, afterFlush [][]string
	}{
		{
			name:   "routed and delivered: one entry",
			recs:   []StageRecord{route("api"), delivered("api")},
			writes: [][]string{{"route:passed", "sink:api:delivered"}},
		},
		{
			name:   "delivered before the route record is queued",
			recs:   []StageRecord{delivered("api"), route("api")},
			writes: [][]string{{"sink:api:delivered", "route:passed"}},
		},
		{
			name: "fan-out waits for every sink",
			recs: []StageRecord{
				{Stage: stageAccepted.String(), Status: StatusAccepted}, route("a", "b"), delivered("a"), delivered("b"),
			},
			writes: [][]string{{"accepted:accepted", "route:passed", "sink:a:delivered", "sink:b:delivered"}},
		},
		{
			name:       "in flight: held until flushed",
			recs:       []StageRecord{route("a", "b"), delivered("a")},
			afterFlush: [][]string{{"route:passed", "sink:a:delivered"}},
		},
		{
			name: "a failure is written at once, with what was held",
			recs: []StageRecord{
				route("api"),
				{Stage: "sink:api", Status: StatusFailed, Attempt: 1, Error: "500"},
				delivered("api"),
			},
			// The delivery after a failure is written at once too: the
			// route record went with the failure, so the delivery alone
			// could not tell it is the last one.
			writes: [][]string{{"route:passed", "sink:api:failed"}, {"sink:api:delivered"}},
		},
		{
			// The sink failed before the emit's acknowledgements were
			// awaited and its route record queued: a trace read after
			// the dead letter must find the route too, not 500 ms later.
			name: "a route record after its message's dead letter is written at once",
			recs: []StageRecord{
				{Stage: "sink:api", Status: StatusFailed, Attempt: 1, Error: "400"},
				{Stage: "sink:api", Status: StatusDeadLettered, Attempt: 1, Error: "400"},
				route("api"),
			},
			writes: [][]string{{"sink:api:failed"}, {"sink:api:dead_lettered"}, {"route:passed"}},
		},
		{
			name:   "filtered is final",
			recs:   []StageRecord{{Stage: stageRoute.String(), Status: StatusFiltered}},
			writes: [][]string{{"route:filtered"}},
		},
		{
			name: "dead-lettered and replayed are written at once",
			recs: []StageRecord{
				{Stage: "sink:api", Status: StatusDeadLettered, Attempt: 3, Error: "down"},
				{Stage: "sink:api", Status: StatusReplayed},
			},
			writes: [][]string{{"sink:api:dead_lettered"}, {"sink:api:replayed"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l publishLog
			var dropped atomic.Uint64
			w := trackWriter{nc: &l, writer: "w1", dropped: &dropped, held: map[string]*heldRecords{}}
			for _, r := range tc.recs {
				r.At = time.Now()
				w.add(trackEvent{key: "acme.orders.m1", rec: r})
			}
			w.flushOlder(time.Now().Add(-time.Hour)) // nothing is that old
			check := func(when string, want [][]string, from int) {
				t.Helper()
				if got := len(l.entries) - from; got != len(want) {
					t.Fatalf("%s: %d entries written, want %d: %q", when, got, len(want), l.entries[from:])
				}
				for i, stages := range want {
					if got := l.entryStages(t, from+i); !reflect.DeepEqual(got, stages) {
						t.Errorf("%s: entry %d = %q, want %q", when, i, got, stages)
					}
				}
			}
			check("before the flush", tc.writes, 0)
			w.flushOlder(time.Time{})
			check("after the flush", tc.afterFlush, len(tc.writes))
			seen := map[string]bool{}
			for _, s := range l.subjects {
				if !strings.HasPrefix(s, "$KV.vrsky_msgs.acme.orders.m1.gw1-") || seen[s] {
					t.Errorf("subject %q: not under the message's key, or written twice", s)
				}
				seen[s] = true
			}
			if len(w.held) != 0 || len(w.order) != 0 || len(w.early) != 0 {
				t.Errorf("still held after the flush: %d, order %d, early %d", len(w.held), len(w.order), len(w.early))
			}
		})
	}
}

// Records older than the hold are written by the periodic flush, oldest
// first, and the younger ones wait.
func TestTrackWriterFlushesByAge(t *testing.T) {
	var l publishLog
	w := trackWriter{nc: &l, writer: "w1", dropped: new(atomic.Uint64), held: map[string]*heldRecords{}}
	w.add(trackEvent{key: "t.i.old", rec: StageRecord{Stage: stageRoute.String(), Status: StatusPassed, Outputs: []string{"a"}}})
	w.add(trackEvent{key: "t.i.new", rec: StageRecord{Stage: stageRoute.String(), Status: StatusPassed, Outputs: []string{"a"}}})
	cut := time.Now()
	w.held["t.i.old"].since = cut.Add(-time.Minute) // held a minute already
	w.held["t.i.new"].since = cut                   // just now
	w.flushOlder(cut.Add(-time.Second))
	if len(l.subjects) != 1 || !strings.Contains(l.subjects[0], ".t.i.old.") {
		t.Fatalf("written %q, want only the old message", l.subjects)
	}
	if _, ok := w.held["t.i.new"]; !ok || len(w.order) != 1 {
		t.Fatalf("the young message is not held alone: %v %v", w.held, w.order)
	}
}

// A message written early (a failure) has its later records written at
// once only for the hold; after it, they are held as any others.
func TestTrackWriterEarlyExpires(t *testing.T) {
	var l publishLog
	w := trackWriter{nc: &l, writer: "w1", dropped: new(atomic.Uint64), held: map[string]*heldRecords{}}
	w.add(trackEvent{key: "t.i.m", rec: StageRecord{Stage: "sink:a", Status: StatusFailed}})
	if len(l.entries) != 1 || len(w.early) != 1 {
		t.Fatalf("after a failure: %d entries, %d early", len(l.entries), len(w.early))
	}
	w.flushOlder(time.Now().Add(time.Second)) // the hold has passed
	if len(w.early) != 0 {
		t.Fatalf("early %v kept past the hold", w.early)
	}
	w.add(trackEvent{key: "t.i.m", rec: StageRecord{Stage: stageRoute.String(), Status: StatusPassed, Outputs: []string{"a"}}})
	if len(l.entries) != 1 || len(w.held) != 1 {
		t.Fatalf("a route record after the hold: %d entries, %d held; want it held", len(l.entries), len(w.held))
	}
}
