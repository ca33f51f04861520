package file

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vrsky/vrsky/runtime"
)

// discard is the fastest Emitter: it drops everything.
type discard struct{ n int }

func (d *discard) Emit(context.Context, *runtime.Message) error { d.n++; return nil }
func (d *discard) EmitBatch(_ context.Context, m []*runtime.Message) error {
	d.n += len(m)
	return nil
}
func (d *discard) EmitWait(context.Context, *runtime.Message) (runtime.Outcome, error) {
	return runtime.Outcome{Status: runtime.StatusPassed}, nil
}

// BenchmarkCSVSource reads a 100,000-row CSV file (5 columns, ~60 bytes a
// row) into messages, as the source does, into an Emitter that costs
// nothing: the source's own ceiling in rows/s.
func BenchmarkCSVSource(b *testing.B) {
	const rows = 100_000
	path := filepath.Join(b.TempDir(), "orders.csv")
	var sb strings.Builder
	sb.WriteString("id,customer,sku,qty,amount\n")
	for i := range rows {
		fmt.Fprintf(&sb, "%d,customer-%d,SKU-%05d,%d,%d.%02d\n", i, i%977, i%50000, i%9+1, i%1000, i%100)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	for _, per := range []int{1, 100} {
		b.Run(fmt.Sprintf("records_per_message=%d", per), func(b *testing.B) {
			c, err := parseSourceConfig(json.RawMessage(fmt.Sprintf(`{"dir":%q,"mode":"csv","records_per_message":%d}`, filepath.Dir(path), per)))
			if err != nil {
				b.Fatal(err)
			}
			s := newSource(c, runtime.Env{Tenant: "acme", Integration: "bench", Logger: slog.New(slog.DiscardHandler)})
			b.SetBytes(int64(sb.Len()))
			b.ReportAllocs()
			for b.Loop() {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				fi, _ := f.Stat()
				res := s.emitRecords(context.Background(), &discard{}, f, fi, "orders.csv", "bench")
				f.Close()
				if res.err != nil || res.retry != nil || res.records != rows {
					b.Fatalf("records %d, err %v %v", res.records, res.err, res.retry)
				}
			}
			b.ReportMetric(float64(rows*b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
