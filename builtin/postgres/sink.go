package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/valyala/fastjson"

	"github.com/vrsky/vrsky/runtime/connector"
)

// batchTimeout bounds one DeliverBatch (the pipeline's context has no
// deadline): a server that hangs fails the batch, which is retried.
const batchTimeout = 2 * time.Minute

// sink is the postgres sink: one pool, one plan (read from the catalogue
// on first use).
type sink struct {
	cfg     Config
	log     *slog.Logger
	pool    *pgxpool.Pool
	parsers fastjson.ParserPool

	mu   sync.Mutex
	plan *plan
}

var _ connector.BatchSink = (*sink)(nil)

func newSink(cfg Config, env connector.Env) (*sink, error) {
	dsn, err := cfg.dsn()
	if err != nil {
		return nil, fmt.Errorf("postgres sink: %w", err)
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: the DSN in %s: %w", cfg.DSNEnv, err)
	}
	pc.MaxConns = int32(cfg.Concurrency)
	// The pool connects on first use, so a server that is down at start
	// only delays delivery (retried) instead of failing the integration.
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("postgres sink: pool: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	return &sink{cfg: cfg, log: log, pool: pool}, nil
}

// Batching implements connector.BatchSink.
func (s *sink) Batching() connector.Batching {
	return connector.Batching{MaxMessages: s.cfg.BatchSize, MaxWait: time.Duration(s.cfg.MaxWait), Concurrency: s.cfg.Concurrency}
}

// Close closes the pool.
func (s *sink) Close() error {
	s.pool.Close()
	return nil
}

// Deliver writes one message.
func (s *sink) Deliver(ctx context.Context, msg *connector.Message) error {
	if errs := s.DeliverBatch(ctx, []*connector.Message{msg}); errs != nil {
		return errs[0]
	}
	return nil
}

// getPlan reads the table from the catalogue once; a failure is retried
// on the next batch.
func (s *sink) getPlan(ctx context.Context) (*plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.plan != nil {
		return s.plan, nil
	}
	t, err := loadTable(ctx, s.pool, s.cfg.Schema, s.cfg.Table)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(&s.cfg, t)
	if err != nil {
		return nil, fmt.Errorf("config no longer matches the table: %w", err)
	}
	if len(p.skipped) > 0 {
		s.log.Warn("columns left out of the automatic mapping; they take their defaults", "table", p.table.Sanitize(), "columns", p.skipped)
	}
	s.plan = p
	return p, nil
}

// forgetPlan makes the next batch read the catalogue again (the table
// changed under us).
func (s *sink) forgetPlan() {
	s.mu.Lock()
	s.plan = nil
	s.mu.Unlock()
	// pgx caches each COPY's column types per connection: start afresh.
	s.pool.Reset()
}

// DeliverBatch implements connector.BatchSink: the whole batch in one
// transaction; when PostgreSQL rejects data, the bad messages are found
// by bisection inside savepoints and fail alone.
func (s *sink) DeliverBatch(ctx context.Context, msgs []*connector.Message) []error {
	ctx, cancel := context.WithTimeout(ctx, batchTimeout)
	defer cancel()
	errs := make([]error, len(msgs))
	p, err := s.getPlan(ctx)
	if err != nil {
		return fill(errs, fmt.Errorf("postgres sink %s.%s: %w", s.cfg.Schema, s.cfg.Table, err))
	}
	b := s.build(ctx, p, msgs, errs)
	good := make([]int, 0, len(msgs))
	for i := range msgs {
		if errs[i] == nil {
			good = append(good, i)
		}
	}
	if len(good) > 0 {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			return s.write(ctx, tx, b, good, new(int))
		})
		if err != nil && isDataError(err) {
			s.log.Debug("batch rejected; finding the bad messages", "messages", len(good), "err", err)
			err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "SET CONSTRAINTS ALL IMMEDIATE"); err != nil {
					return err
				}
				return s.bisect(ctx, tx, b, good, errs, new(int), true)
			})
		}
		if err != nil {
			if isSchemaError(err) {
				s.forgetPlan()
			}
			err = fmt.Errorf("postgres sink: write %d messages to %s: %w", len(good), p.table.Sanitize(), err)
			for _, i := range good {
				if errs[i] == nil || !connector.IsPermanent(errs[i]) {
					errs[i] = err
				}
			}
		}
	}
	for _, e := range errs {
		if e != nil {
			return errs
		}
	}
	return nil
}

func fill(errs []error, err error) []error {
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// bisect writes msgs in a savepoint; when PostgreSQL rejects their data
// it splits them until each bad message stands alone, and fails only
// those. known says the whole of msgs already failed. An error that is
// not about data aborts the transaction.
func (s *sink) bisect(ctx context.Context, tx pgx.Tx, b *batch, msgs []int, errs []error, seq *int, known bool) error {
	if len(msgs) == 0 {
		return nil
	}
	if !known {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		err = s.write(ctx, sp, b, msgs, seq)
		if err == nil {
			return sp.Commit(ctx)
		}
		if rerr := sp.Rollback(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		if !isDataError(err) {
			return err
		}
		if len(msgs) == 1 {
			// Only a one-row message: the rows of an array message share
			// their id and collide with each other.
			if m := msgs[0]; b.first[m+1]-b.first[m] == 1 && b.plan.redelivered(err) {
				s.log.Debug("message already in the table; counted as delivered", "msg_id", b.msgIDs[m])
				return nil
			}
			errs[msgs[0]] = connector.Permanent(fmt.Errorf("postgres sink: %s rejected the message's row: %s", b.plan.table.Sanitize(), describe(err)))
			return nil
		}
	}
	mid := len(msgs) / 2
	if err := s.bisect(ctx, tx, b, msgs[:mid], errs, seq, false); err != nil {
		return err
	}
	return s.bisect(ctx, tx, b, msgs[mid:], errs, seq, false)
}

// codeBinaryFormat (invalid_binary_representation) comes from a COPY
// encoded for column types that have changed since they were read, never
// from a value: the values are typed before they are sent.
const codeBinaryFormat = "22P03"

// isDataError reports a PostgreSQL error about the data (SQLSTATE class
// 22, data exception, or 23, integrity constraint violation).
func isDataError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code != codeBinaryFormat &&
		(strings.HasPrefix(pe.Code, "22") || strings.HasPrefix(pe.Code, "23"))
}

// isSchemaError reports an error that suggests the table changed
// (undefined table or column, a column of another type, a stale cached
// plan). A binary COPY row of the wrong length for a changed column type
// is a protocol violation (08P01) or a bad binary format (22P03).
func isSchemaError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "42") || pe.Code == "0A000" ||
		pe.Code == codeBinaryFormat || pe.Code == "08P01")
}

// redelivered reports a unique violation on the id column: the message
// was written before (its ack was lost), so it is delivered, not bad.
func (p *plan) redelivered(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && p.idIndexes[pe.ConstraintName]
}

// describe renders a PostgreSQL error with its detail and constraint.
func describe(err error) string {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	var sb strings.Builder
	sb.WriteString(pe.Message)
	if pe.ColumnName != "" {
		fmt.Fprintf(&sb, ", column %s", pe.ColumnName)
	}
	if pe.ConstraintName != "" {
		fmt.Fprintf(&sb, ", constraint %s", pe.ConstraintName)
	}
	if pe.Detail != "" {
		fmt.Fprintf(&sb, " (%s)", pe.Detail)
	}
	fmt.Fprintf(&sb, " (SQLSTATE %s)", pe.Code)
	return sb.String()
}

// write stores the rows of msgs (indexes into the batch) in tx: one COPY
// per row shape (the set of fields present), or in upsert mode a COPY into
// a temporary table and one INSERT ... ON CONFLICT per run of rows of the
// same shape, so that the last row of a key wins even across shapes. seq
// numbers the temporary tables within the transaction.
func (s *sink) write(ctx context.Context, tx pgx.Tx, b *batch, msgs []int, seq *int) error {
	p := b.plan
	type group struct {
		shape int
		rows  []int
	}
	var groups []group
	byShape := map[int]int{} // insert mode: shape → its group
	for _, m := range msgs {
		for r := b.first[m]; r < b.first[m+1]; r++ {
			sh := b.rows[r].shape
			if p.upsert {
				if n := len(groups); n == 0 || groups[n-1].shape != sh {
					groups = append(groups, group{shape: sh})
				}
				groups[len(groups)-1].rows = append(groups[len(groups)-1].rows, r)
				continue
			}
			g, ok := byShape[sh]
			if !ok {
				g = len(groups)
				byShape[sh] = g
				groups = append(groups, group{shape: sh})
			}
			groups[g].rows = append(groups[g].rows, r)
		}
	}
	for _, g := range groups {
		sh := g.shape
		cols := b.shapes[sh]
		names := make([]string, len(cols))
		for i, c := range cols {
			names[i] = p.names[c]
		}
		if len(cols) == 0 { // no mapped field at all: every column takes its default
			for range g.rows {
				if _, err := tx.Exec(ctx, "INSERT INTO "+p.table.Sanitize()+" DEFAULT VALUES"); err != nil {
					return err
				}
			}
			continue
		}
		src := &rowSource{b: b, idx: g.rows, cols: cols, vals: make([]any, len(cols), len(cols)+1)}
		if !p.upsert {
			if _, err := tx.CopyFrom(ctx, p.table, names, src); err != nil {
				return err
			}
			continue
		}
		stage := pgx.Identifier{"pg_temp", fmt.Sprintf("_vrsky_stage_%d", *seq)}
		*seq++
		quoted := quoteList(names)
		create := fmt.Sprintf("CREATE TEMP TABLE %s ON COMMIT DROP AS SELECT %s, 0::int8 AS _vrsky_ord FROM %s WITH NO DATA",
			stage.Sanitize(), quoted, p.table.Sanitize())
		if _, err := tx.Exec(ctx, create); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		src.ord = true
		src.vals = src.vals[:len(cols)+1]
		if _, err := tx.CopyFrom(ctx, stage, append(names, "_vrsky_ord"), src); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, upsertSQL(p, names, stage.Sanitize())); err != nil {
			return err
		}
	}
	return nil
}

// upsertSQL moves a staging table into the target; when a key appears
// more than once the last row wins.
func upsertSQL(p *plan, names []string, stage string) string {
	keys := make([]string, len(p.keys))
	for i, k := range p.keys {
		keys[i] = pgx.Identifier{p.names[k]}.Sanitize()
	}
	keyList := strings.Join(keys, ", ")
	var set []string
	for _, n := range names {
		q := pgx.Identifier{n}.Sanitize()
		if !contains(keys, q) {
			set = append(set, q+" = EXCLUDED."+q)
		}
	}
	action := "DO NOTHING"
	if len(set) > 0 {
		action = "DO UPDATE SET " + strings.Join(set, ", ")
	}
	cols := quoteList(names)
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT DISTINCT ON (%s) %s FROM %s ORDER BY %s, _vrsky_ord DESC ON CONFLICT (%s) %s",
		p.table.Sanitize(), cols, keyList, cols, stage, keyList, keyList, action)
}

// quoteList quotes each name and joins them with commas.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// rowSource feeds one shape's rows to CopyFrom.
type rowSource struct {
	b    *batch
	idx  []int // rows, in batch order
	cols []int // the shape's columns
	ord  bool  // append the row's ordinal (upsert staging)
	i    int
	vals []any
}

func (r *rowSource) Next() bool { r.i++; return r.i <= len(r.idx) }
func (r *rowSource) Err() error { return nil }
func (r *rowSource) Values() ([]any, error) {
	row := r.b.rows[r.idx[r.i-1]]
	all := row.vals
	for k, c := range r.cols {
		r.vals[k] = all[c]
	}
	if r.ord {
		r.vals[len(r.cols)] = int64(r.i)
	}
	return r.vals, nil
}
