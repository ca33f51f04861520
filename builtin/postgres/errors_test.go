package postgres

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/vrsky/vrsky/internal/testenv/pgtest"
	"github.com/vrsky/vrsky/runtime"
)

// TestLockTimeoutIsRetryable: an error that is not about the data (here
// lock_not_available, 55P03) fails the whole batch, retryably; the same
// batch goes in once the lock is gone.
func TestLockTimeoutIsRetryable(t *testing.T) {
	dsn := pgtest.New(t)
	db := openDB(t, dsn+"&options=-c%20lock_timeout%3D200ms", ordersDDL)
	s := newSinkFor(t, db, map[string]any{"table": "orders"})
	ctx := context.Background()
	msgs := []*runtime.Message{msg("a", `{"id":1,"customer":"a"}`), msg("b", `{"id":2,"customer":"b"}`)}
	deliverOK(t, s, []*runtime.Message{msg("warm", `{"id":0,"customer":"w"}`)}) // the plan is read before the lock
	locker := openDB(t, dsn)
	tx, err := locker.conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE orders IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	errs := s.DeliverBatch(ctx, msgs)
	if !slices.Equal(failures(errs), []int{0, 1}) {
		t.Fatalf("errors while locked: %v", errs)
	}
	for _, err := range errs {
		if runtime.IsPermanent(err) {
			t.Fatalf("permanent: %v", err)
		}
		mustContain(t, err.Error(), "55P03")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	deliverOK(t, s, msgs)
	if got := db.int64(t, `SELECT count(*) FROM orders`); got != 3 {
		t.Fatalf("rows: got %d, want 3", got)
	}
}

// TestDeferredConstraint: a deferred unique constraint fails at COMMIT;
// the bad message is still found and fails alone.
func TestDeferredConstraint(t *testing.T) {
	db := newDB(t, `CREATE TABLE d (id int, v text, CONSTRAINT d_uniq UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)`)
	s := newSinkFor(t, db, map[string]any{"table": "d"})
	var msgs []*runtime.Message
	for i := range 20 {
		msgs = append(msgs, msg(fmt.Sprint(i), fmt.Sprintf(`{"id":%d}`, i)))
	}
	msgs = append(msgs, msg("dup", `{"id":5,"v":"dup"}`))
	errs := s.DeliverBatch(context.Background(), msgs)
	if !slices.Equal(failures(errs), []int{20}) || !runtime.IsPermanent(errs[20]) {
		t.Fatalf("errors: %v", errs)
	}
	mustContain(t, errs[20].Error(), "d_uniq")
	if got := db.int64(t, `SELECT count(*) FROM d`); got != 20 {
		t.Fatalf("rows: got %d, want 20", got)
	}
}

// TestTableChangedUnderTheSink: a dropped column fails batches retryably
// and makes the sink read the catalogue again; once the column is back
// the batch goes in.
func TestTableChangedUnderTheSink(t *testing.T) {
	db := newDB(t, `CREATE TABLE c (id int, v text)`)
	s := newSinkFor(t, db, map[string]any{"table": "c"})
	deliverOK(t, s, []*runtime.Message{msg("1", `{"id":1,"v":"a"}`)})
	db.exec(t, `ALTER TABLE c DROP COLUMN v`)
	errs := s.DeliverBatch(context.Background(), []*runtime.Message{msg("2", `{"id":2,"v":"b"}`)})
	if errs == nil || runtime.IsPermanent(errs[0]) {
		t.Fatalf("after the drop: %v", errs)
	}
	// The next batch maps the columns that exist now.
	deliverOK(t, s, []*runtime.Message{msg("2", `{"id":2,"v":"b"}`)})
	if got := db.int64(t, `SELECT count(*) FROM c`); got != 2 {
		t.Fatalf("rows: got %d, want 2", got)
	}
	// A column that changes type: the COPY encoded for the old type is
	// refused (22P03); that is not the messages' fault, so no message is
	// dead-lettered for it, and the next batch uses the new type.
	db.exec(t, `ALTER TABLE c ALTER COLUMN id TYPE bigint`)
	big := []*runtime.Message{msg("3", `{"id":3}`), msg("4", `{"id":"4"}`)}
	errs = s.DeliverBatch(context.Background(), big)
	for _, err := range errs {
		if runtime.IsPermanent(err) {
			t.Fatalf("after the type change: permanent %v", err)
		}
	}
	if errs == nil {
		t.Fatal("the batch encoded for integer went into bigint")
	}
	deliverOK(t, s, big)
	deliverOK(t, s, []*runtime.Message{msg("5", `{"id":"5000000000"}`)}) // fits bigint only
	if got := db.int64(t, `SELECT sum(id) FROM c`); got != 1+2+3+4+5000000000 {
		t.Fatalf("sum(id): got %d", got)
	}
}
