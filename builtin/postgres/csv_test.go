package postgres

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fileconn "github.com/vrsky/vrsky/builtin/file"
	"github.com/vrsky/vrsky/runtime"
	"github.com/vrsky/vrsky/runtime/runtimetest"
)

// csvPipeline runs file (csv mode) → postgres on a real engine and
// returns the directory to drop files into.
func csvPipeline(t testing.TB, db *testDB, name string, perMessage, batch int) string {
	t.Helper()
	dir := t.TempDir()
	h := runtimetest.Start(t, []runtime.Connector{fileconn.Source, Sink})
	h.Create(t, fmt.Sprintf(`
name: %s
source:
  connector: file
  config: {dir: %q, mode: csv, records_per_message: %d, stable_for: 50ms, rescan_interval: 100ms}
sinks:
  - name: db
    connector: postgres
    config: {dsn_env: %s, table: bench, batch_size: %d}
`, name, dir, perMessage, db.env, batch))
	return dir
}

// writeCSV drops a CSV file of rows from..to-1 into dir atomically.
func writeCSV(t testing.TB, dir, name string, from, to int) {
	t.Helper()
	tmp := prepareCSV(t, dir, name, from, to)
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// prepareCSV writes the file under a hidden name in dir and returns that
// name; renaming it to name hands it to the source.
func prepareCSV(t testing.TB, dir, name string, from, to int) string {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("id,name,amount,day,active,at\n")
	for id := from; id < to; id++ {
		fmt.Fprintf(&sb, "%d,\"customer %d, inc\",%d.%02d,2024-01-%02d,%t,2024-01-02T10:%02d:00Z\n",
			id, id, id%10000, id%100, id%28+1, id%2 == 0, id%60)
	}
	tmp := filepath.Join(dir, "."+name+".part")
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestEndToEndCSVFile: a CSV file through the file source (100 rows per
// message) lands in the table, every row once and intact.
func TestEndToEndCSVFile(t *testing.T) {
	db := newDB(t, benchDDL)
	dir := csvPipeline(t, db, "csv", 100, 50)
	const n = 5000
	writeCSV(t, dir, "orders.csv", 0, n)
	runtimetest.WaitFor(t, 60*time.Second, "5000 rows", func() bool {
		return db.int64(t, `SELECT count(*) FROM bench`) == n
	})
	if got := db.int64(t, `SELECT sum(id) FROM bench`); got != n*(n-1)/2 {
		t.Fatalf("sum(id): got %d, want %d", got, n*(n-1)/2)
	}
	if got := db.int64(t, `SELECT count(*) FROM bench WHERE name = 'customer ' || id || ', inc'
		AND amount = (id % 10000) + (id % 100) / 100.0 AND day = make_date(2024, 1, (id % 28)::int + 1)
		AND active = (id % 2 = 0) AND at = '2024-01-02T10:00:00Z'::timestamptz + make_interval(mins => (id % 60)::int)`); got != n {
		t.Fatalf("intact rows: got %d, want %d", got, n)
	}
}

// BenchmarkCSVToPostgres: rows/s end to end, CSV file → file source (1000
// rows per message) → JetStream → postgres sink (default batching), on
// the embedded NATS server and the test PostgreSQL. Each iteration loads
// one file of 100,000 rows.
func BenchmarkCSVToPostgres(b *testing.B) {
	db := newDB(b, benchDDL)
	dir := csvPipeline(b, db, "csvbench", 1000, 1000)
	const rows = 100_000
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db.exec(b, `TRUNCATE bench`)
		name := fmt.Sprintf("load%d.csv", i)
		tmp := prepareCSV(b, dir, name, i*rows, (i+1)*rows)
		b.StartTimer()
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Minute)
		for db.int64(b, `SELECT count(*) FROM bench`) != rows { // polled every 100ms: count(*) costs the server too
			if time.Now().After(deadline) {
				b.Fatal("the load did not arrive in 10 minutes")
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
