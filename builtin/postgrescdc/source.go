package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/runtime/connector"
)

// Reconnect backoff after a session fails for a reason a retry may fix
// (the server restarted, the slot is still held by the previous
// walsender, JetStream refused a batch).
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

// source is one running postgres-cdc source.
type source struct {
	s   *settings
	env connector.Env
	log *slog.Logger
}

var _ connector.Source = (*source)(nil)

func newSource(s *settings, env connector.Env) *source {
	log := env.Logger
	if log == nil {
		log = slog.Default().With("connector", "postgres-cdc")
	}
	return &source{s: s, env: env, log: log.With("slot", s.Slot)}
}

// Run streams changes until ctx ends. Failures a retry may fix end the
// session and start a new one after a backoff (the stream resumes at the
// slot's confirmed position); a permanent one (a lost slot, a config the
// server refuses) is returned.
func (src *source) Run(ctx context.Context, emit connector.Emitter) error {
	backoff := minBackoff
	for {
		started := time.Now()
		err := src.session(ctx, emit)
		if ctx.Err() != nil {
			return nil
		}
		if connector.IsPermanent(err) {
			return err
		}
		if time.Since(started) > time.Minute {
			backoff = minBackoff
		}
		src.log.Warn("postgres-cdc session ended; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// slotInfo is a row of pg_replication_slots.
type slotInfo struct {
	exists    bool
	walStatus string
	confirmed pglogrepl.LSN
	plugin    string
	database  string
}

// session sets up the publication and slot (and the snapshot when due),
// then streams until an error or ctx ends.
func (src *source) session(ctx context.Context, emit connector.Emitter) error {
	s := src.s
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return classify(fmt.Errorf("connect with %s: %w", s.DSNEnv, err))
	}
	defer conn.Close(context.Background())
	if err := src.ensurePublication(ctx, conn); err != nil {
		return err
	}
	slot, err := readSlot(ctx, conn, s.Slot)
	if err != nil {
		return err
	}
	snapshotDone, err := src.stateHas(ctx, stateSnapshot)
	if err != nil {
		return err
	}
	wantSnapshot := s.Snapshot && !snapshotDone
	if slot.exists {
		if slot.plugin != "pgoutput" {
			return connector.Permanent(fmt.Errorf("replication slot %s uses plugin %q, not pgoutput: name another slot in the config", s.Slot, slot.plugin))
		}
		var dbName string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&dbName); err != nil {
			return fmt.Errorf("read the database name: %w", err)
		}
		if slot.database != dbName {
			return connector.Permanent(fmt.Errorf("replication slot %s belongs to database %q, not %q: name another slot in the config", s.Slot, slot.database, dbName))
		}
	}
	if slot.exists && slot.walStatus == "lost" {
		if !s.ResnapshotOnLost {
			return connector.Permanent(fmt.Errorf("replication slot %s was invalidated by PostgreSQL (wal_status lost: it fell further behind than max_slot_wal_keep_size allows), "+
				"so changes after %s are gone. To recover: set resnapshot_on_lost: true (the source drops the slot, creates it again and re-reads the tables), "+
				"or drop the slot yourself (SELECT pg_drop_replication_slot('%s')) and restart the integration, with snapshot: true to re-read the tables", s.Slot, slot.confirmed, s.Slot))
		}
		src.log.Warn("replication slot invalidated by PostgreSQL (wal_status lost): dropping it, creating it again and taking a new snapshot")
		if err := dropSlot(ctx, conn, s.Slot); err != nil {
			return err
		}
		if err := src.stateDelete(ctx, stateSnapshot); err != nil {
			return err
		}
		slot.exists, wantSnapshot = false, true
	}
	if slot.exists && wantSnapshot {
		// A snapshot is only consistent with the slot when both come from
		// CREATE_REPLICATION_SLOT: a snapshot that did not finish is
		// redone with a new slot, which loses nothing since the stream
		// never started.
		created, err := src.stateGet(ctx, stateSlot)
		if err != nil {
			return err
		}
		if created != s.Slot {
			return connector.Permanent(fmt.Errorf("replication slot %s already exists and was not created by this source, so no snapshot consistent with it can be taken: "+
				"drop the slot, or set snapshot: false", s.Slot))
		}
		src.log.Info("the snapshot did not finish: dropping the slot to take a new one")
		if err := dropSlot(ctx, conn, s.Slot); err != nil {
			return err
		}
		slot.exists = false
	}

	repl, err := connectReplication(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer repl.Close(context.Background())
	start := slot.confirmed
	if !slot.exists {
		action := "NOEXPORT_SNAPSHOT"
		if wantSnapshot {
			action = "EXPORT_SNAPSHOT"
		}
		res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.Slot, "pgoutput",
			pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
		if err != nil {
			return classify(fmt.Errorf("create replication slot %s: %w", s.Slot, err))
		}
		if start, err = pglogrepl.ParseLSN(res.ConsistentPoint); err != nil {
			return fmt.Errorf("slot %s: consistent point %q: %w", s.Slot, res.ConsistentPoint, err)
		}
		if err := src.statePut(ctx, stateSlot, s.Slot); err != nil {
			return err
		}
		src.log.Info("replication slot created", "consistent_point", start)
		if wantSnapshot {
			// The replication connection stays idle while the snapshot is
			// read: its next command would end the exported snapshot.
			if err := src.snapshot(ctx, res.SnapshotName, start, emit); err != nil {
				return err
			}
		}
	}
	if wantSnapshot {
		if err := src.statePut(ctx, stateSnapshot, start.String()); err != nil {
			return err
		}
	}
	args := []string{
		"proto_version '1'",
		"publication_names " + quoteLiteral(s.Publication),
		"messages 'true'",
	}
	if err := pglogrepl.StartReplication(ctx, repl, s.Slot, 0,
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.LogicalReplication, PluginArgs: args}); err != nil {
		return classify(fmt.Errorf("start replication from slot %s: %w", s.Slot, err))
	}
	conn.Close(ctx) // idle from here on
	src.log.Info("streaming", "from", start)
	return src.stream(ctx, repl, start, emit)
}

// classify marks errors no retry fixes as permanent: syntax or access
// rule violations (42: insufficient privilege, undefined object), invalid
// authorization (28: wrong password, no pg_hba entry), a database that
// does not exist (3D).
func classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "42", "28", "3D":
			return connector.Permanent(err)
		}
	}
	return err
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func readSlot(ctx context.Context, conn *pgx.Conn, slot string) (slotInfo, error) {
	var (
		info      slotInfo
		walStatus *string
		confirmed *string
		plugin    *string
		database  *string
	)
	err := conn.QueryRow(ctx, `SELECT wal_status, confirmed_flush_lsn::text, plugin, database
		FROM pg_replication_slots WHERE slot_name = $1`, slot).Scan(&walStatus, &confirmed, &plugin, &database)
	if errors.Is(err, pgx.ErrNoRows) {
		return info, nil
	}
	if err != nil {
		return info, fmt.Errorf("look up slot %s: %w", slot, err)
	}
	info.exists = true
	if walStatus != nil {
		info.walStatus = *walStatus
	}
	if plugin != nil {
		info.plugin = *plugin
	}
	if database != nil {
		info.database = *database
	}
	if confirmed != nil {
		if info.confirmed, err = pglogrepl.ParseLSN(*confirmed); err != nil {
			return info, fmt.Errorf("slot %s: confirmed_flush_lsn %q: %w", slot, *confirmed, err)
		}
	}
	return info, nil
}

// ensurePublication creates the publication when it does not exist, and
// records that this source created it (Remove drops only those).
func (src *source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	s := src.s
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", s.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("look up publication %s: %w", s.Publication, err)
	}
	if exists {
		return src.syncPublication(ctx, conn)
	}
	sql := "CREATE PUBLICATION " + pgx.Identifier{s.Publication}.Sanitize() + " FOR ALL TABLES"
	if len(s.tables) > 0 {
		names := make([]string, len(s.tables))
		for i, t := range s.tables {
			names[i] = t.quoted()
		}
		sql = "CREATE PUBLICATION " + pgx.Identifier{s.Publication}.Sanitize() + " FOR TABLE " + strings.Join(names, ", ")
	}
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42710" { // duplicate_object: created meanwhile
			return nil
		}
		return classify(fmt.Errorf("create publication %s: %w", s.Publication, err))
	}
	src.log.Info("publication created", "publication", s.Publication, "tables", s.Tables)
	return src.statePut(ctx, statePublication, s.Publication)
}

// syncPublication makes a publication this source created cover the
// configured tables again after the config changed (tables added or
// removed). Rows already in an added table are not snapshotted. An
// adopted publication is left as it is.
func (src *source) syncPublication(ctx context.Context, conn *pgx.Conn) error {
	s := src.s
	created, err := src.stateGet(ctx, statePublication)
	if err != nil || created != s.Publication || len(s.tables) == 0 {
		return err
	}
	rows, err := conn.Query(ctx, "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1", s.Publication)
	if err != nil {
		return fmt.Errorf("list the tables of publication %s: %w", s.Publication, err)
	}
	have := map[tableName]bool{}
	for rows.Next() {
		var t tableName
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return fmt.Errorf("list the tables of publication %s: %w", s.Publication, err)
		}
		have[t] = true
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list the tables of publication %s: %w", s.Publication, err)
	}
	same := len(have) == len(s.tables)
	names := make([]string, len(s.tables))
	for i, t := range s.tables {
		same = same && have[t]
		names[i] = t.quoted()
	}
	if same {
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pgx.Identifier{s.Publication}.Sanitize()+" SET TABLE "+strings.Join(names, ", ")); err != nil {
		return classify(fmt.Errorf("update publication %s to the configured tables: %w", s.Publication, err))
	}
	src.log.Info("publication updated to the configured tables", "publication", s.Publication, "tables", s.Tables)
	return nil
}

// snapshot emits every row of the published tables as seen by the
// exported snapshot name, whose consistent point is at.
func (src *source) snapshot(ctx context.Context, name string, at pglogrepl.LSN, emit connector.Emitter) error {
	conn, err := pgx.Connect(ctx, src.s.dsn)
	if err != nil {
		return fmt.Errorf("snapshot: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("snapshot: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(name)); err != nil {
		return fmt.Errorf("snapshot: set transaction snapshot %s: %w", name, err)
	}
	rows, err := tx.Query(ctx, "SELECT schemaname::text, tablename::text FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2", src.s.Publication)
	if err != nil {
		return fmt.Errorf("snapshot: list the publication's tables: %w", err)
	}
	var tables []tableName
	for rows.Next() {
		var t tableName
		if err := rows.Scan(&t.Schema, &t.Name); err != nil {
			return fmt.Errorf("snapshot: list the publication's tables: %w", err)
		}
		tables = append(tables, t)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("snapshot: list the publication's tables: %w", err)
	}
	dec := newDecoder()
	lsn := at.String()
	total := 0
	for ti, t := range tables {
		n, err := src.snapshotTable(ctx, conn.PgConn(), dec, ti, t, lsn, emit)
		if err != nil {
			return err
		}
		src.log.Info("snapshot: table read", "table", t.String(), "rows", n)
		total += n
	}
	src.log.Info("snapshot finished", "tables", len(tables), "rows", total, "consistent_point", lsn)
	return nil
}

// snapshotBatch is how many snapshot rows go to JetStream at once.
const snapshotBatch = 1000

func (src *source) snapshotTable(ctx context.Context, conn *pgconn.PgConn, dec *decoder, ti int, t tableName, lsn string, emit connector.Emitter) (int, error) {
	// Text results, so tuples decode the same way as the stream's.
	rr := conn.ExecParams(ctx, "SELECT * FROM "+t.quoted(), nil, nil, nil, nil)
	fields := rr.FieldDescriptions()
	head := make([]byte, 0, 64)
	head = append(head, `{"op":"snapshot","schema":`...)
	head = jsonenc.AppendString(head, t.Schema)
	head = append(head, `,"table":`...)
	head = jsonenc.AppendString(head, t.Name)
	head = append(head, `,"after":{`...)
	batch := make([]*connector.Message, 0, snapshotBatch)
	n := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := emit.EmitBatch(ctx, batch); err != nil {
			return fmt.Errorf("snapshot of %s: emit: %w", t, err)
		}
		batch = batch[:0]
		return nil
	}
	for rr.NextRow() {
		vals := rr.Values()
		b := append(make([]byte, 0, len(head)+64*len(vals)), head...)
		for i, f := range fields {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, f.Name)
			b = append(b, ':')
			if vals[i] == nil {
				b = append(b, "null"...)
			} else {
				b = dec.appendValue(b, f.DataTypeOID, vals[i])
			}
		}
		b = append(b, `},"lsn":"`...)
		b = append(b, lsn...)
		b = append(b, `"}`...)
		batch = append(batch, newMessage("s-"+lsn+"-"+strconv.Itoa(ti)+"-"+strconv.Itoa(n), b))
		n++
		if len(batch) == snapshotBatch {
			if err := flush(); err != nil {
				rr.Close()
				return n, err
			}
		}
	}
	if _, err := rr.Close(); err != nil {
		return n, fmt.Errorf("snapshot: read %s: %w", t, err)
	}
	return n, flush()
}

func newMessage(id string, data []byte) *connector.Message {
	h := connector.Header{}
	h.Set(connector.HeaderContentType, "application/json")
	return &connector.Message{ID: id, Header: h, Data: data}
}

func (src *source) stateGet(ctx context.Context, key string) (string, error) {
	if src.env.State == nil {
		return "", nil
	}
	v, err := src.env.State.Get(ctx, key)
	if errors.Is(err, connector.ErrNoState) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read state %s: %w", key, err)
	}
	return string(v), nil
}

func (src *source) stateHas(ctx context.Context, key string) (bool, error) {
	v, err := src.stateGet(ctx, key)
	return v != "", err
}

func (src *source) statePut(ctx context.Context, key, value string) error {
	if src.env.State == nil {
		return nil
	}
	if err := src.env.State.Put(ctx, key, []byte(value)); err != nil {
		return fmt.Errorf("write state %s: %w", key, err)
	}
	return nil
}

func (src *source) stateDelete(ctx context.Context, key string) error {
	if src.env.State == nil {
		return nil
	}
	if err := src.env.State.Delete(ctx, key); err != nil {
		return fmt.Errorf("delete state %s: %w", key, err)
	}
	return nil
}
