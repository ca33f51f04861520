package postgres

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	vrsky "github.com/vrsky/vrsky/runtime"
)

const benchDDL = `CREATE TABLE bench (id bigint PRIMARY KEY, name text, amount numeric(12,2), day date, active bool, at timestamptz)`

// benchMessages are CSV-style rows (every value a string), as the file
// source sends them.
func benchMessages(n, offset int) []*vrsky.Message {
	msgs := make([]*vrsky.Message, n)
	for i := range msgs {
		id := offset + i
		msgs[i] = &vrsky.Message{ID: fmt.Sprint(id), Data: fmt.Appendf(nil,
			`{"id":"%d","name":"customer %d","amount":"%d.%02d","day":"2024-01-%02d","active":"true","at":"2024-01-02T10:%02d:00Z"}`,
			id, id, id%10000, id%100, id%28+1, id%60)}
	}
	return msgs
}

func benchDeliver(b *testing.B, mode string, batchSize int) {
	db := newDB(b, benchDDL)
	cfg := map[string]any{"table": "bench", "mode": mode}
	if mode == ModeUpsert {
		cfg["key"] = []string{"id"}
	}
	s := newSinkFor(b, db, cfg)
	// Upserts rewrite the same keys (half updates once the table is
	// warm); inserts need fresh keys every batch.
	const distinct = 100_000
	pool := benchMessages(distinct, 0)
	ctx := context.Background()
	b.ResetTimer()
	rows := 0
	for i := 0; i < b.N; i++ {
		var msgs []*vrsky.Message
		if mode == ModeUpsert {
			off := (i * batchSize) % (distinct - batchSize)
			msgs = pool[off : off+batchSize]
		} else {
			b.StopTimer()
			msgs = benchMessages(batchSize, i*batchSize)
			b.StartTimer()
		}
		if errs := s.DeliverBatch(ctx, msgs); errs != nil {
			b.Fatalf("deliver: %v", errs)
		}
		rows += batchSize
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkCopyInsert: rows/s of DeliverBatch in insert mode (COPY) into
// a real table, CSV-style string values converted to six typed columns.
func BenchmarkCopyInsert(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchDeliver(b, ModeInsert, n) })
	}
}

// BenchmarkCopyInsertParallel: as BenchmarkCopyInsert with four batches
// in flight, as the pipeline runs the sink (concurrency 4). Building the
// messages is inside the timer here (about 1 µs a row).
func BenchmarkCopyInsertParallel(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d/workers=4", n), func(b *testing.B) {
			db := newDB(b, benchDDL)
			s := newSinkFor(b, db, map[string]any{"table": "bench"})
			var next atomic.Int64
			b.SetParallelism((4 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					msgs := benchMessages(n, int(next.Add(1))*n)
					if errs := s.DeliverBatch(context.Background(), msgs); errs != nil {
						b.Errorf("deliver: %v", errs[0])
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkUpsert: rows/s of DeliverBatch in upsert mode (COPY into a
// temporary table, INSERT ... ON CONFLICT DO UPDATE).
func BenchmarkUpsert(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) { benchDeliver(b, ModeUpsert, n) })
	}
}

// BenchmarkCopyReference is the machine's reference for the figures
// above: pgx CopyFrom of the same rows, already typed (no JSON, no
// conversion, no transaction), into the same table.
func BenchmarkCopyReference(b *testing.B) {
	for _, n := range []int{1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			db := newDB(b, benchDDL)
			day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
			rows := 0
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				vals := make([][]any, n)
				for j := range vals {
					id := int64(i*n + j)
					vals[j] = []any{id, fmt.Sprintf("customer %d", id), fmt.Sprintf("%d.%02d", id%10000, id%100), day, true, day}
				}
				b.StartTimer()
				if _, err := db.conn.CopyFrom(context.Background(), pgx.Identifier{"bench"},
					[]string{"id", "name", "amount", "day", "active", "at"}, pgx.CopyFromRows(vals)); err != nil {
					b.Fatal(err)
				}
				rows += n
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkBuild: rows/s of the sink's own work, parsing JSON and
// converting six CSV-style values per row, without the database.
func BenchmarkBuild(b *testing.B) {
	t := &table{byName: map[string]*column{}}
	for _, c := range []*column{
		{name: "id", typeName: "bigint", kind: kInt8, insertable: true},
		{name: "name", typeName: "text", kind: kText, insertable: true},
		{name: "amount", typeName: "numeric(12,2)", kind: kNumeric, insertable: true},
		{name: "day", typeName: "date", kind: kDate, insertable: true},
		{name: "active", typeName: "boolean", kind: kBool, insertable: true},
		{name: "at", typeName: "timestamp with time zone", kind: kTimestamptz, insertable: true},
	} {
		t.cols = append(t.cols, c)
		t.byName[c.name] = c
	}
	cfg := Config{Schema: "public", Table: "bench", Mode: ModeInsert}
	p, err := newPlan(&cfg, t)
	if err != nil {
		b.Fatal(err)
	}
	s := &sink{cfg: cfg}
	msgs := benchMessages(1000, 0)
	errs := make([]error, len(msgs))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.build(context.Background(), p, msgs, errs)
	}
	b.ReportMetric(float64(b.N*len(msgs))/b.Elapsed().Seconds(), "rows/s")
}
