package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/runtime/connector"
)

// Batching of changes towards JetStream: a batch goes out when it holds
// maxBatch messages or flushDelay after its first message, whichever
// comes first. Up to inFlight batches queue while an EmitBatch waits for
// its acks; the emitter then takes them all at once (up to maxEmit).
const (
	maxBatch   = 1000
	flushDelay = 2 * time.Millisecond
	inFlight   = 16
	// maxEmit bounds one EmitBatch (queued batches are merged up to it),
	// under the NATS client's limit of pending async publishes.
	maxEmit = 2000
)

// heartbeatPrefix marks the logical messages the heartbeat writes.
const heartbeatPrefix = "vrsky-heartbeat"

// pending is a batch on its way to JetStream.
type pending struct {
	msgs []*connector.Message
	// ack, when set, is the WAL position to confirm once msgs (and every
	// batch before them) are durable.
	ack pglogrepl.LSN
}

// txn is the transaction being decoded.
type txn struct {
	open       bool
	xid        uint32
	commitLSN  string // the commit record's position, "X/X"
	idPrefix   string
	commitTime []byte // RFC 3339, UTC
	index      int    // changes so far
}

// stream decodes the replication stream from repl and emits it, until ctx
// ends or an error. Connection I/O stays on this goroutine; a second one
// emits batches, in order, and publishes the confirmed position.
func (src *source) stream(parent context.Context, repl *pgconn.PgConn, start pglogrepl.LSN, emit connector.Emitter) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	var acked atomic.Uint64
	acked.Store(uint64(start))
	out := make(chan pending, inFlight)
	emitErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var msgs []*connector.Message
		for p := range out {
			// While one EmitBatch waits for its acks, the reader queues
			// more: take what is queued as one bigger batch.
			msgs = append(msgs[:0], p.msgs...)
			ack := p.ack
		merge:
			for len(msgs) < maxEmit {
				select {
				case q, ok := <-out:
					if !ok {
						break merge
					}
					msgs = append(msgs, q.msgs...)
					ack = max(ack, q.ack)
				default:
					break merge
				}
			}
			if len(msgs) > 0 {
				if err := emit.EmitBatch(ctx, msgs); err != nil {
					emitErr <- fmt.Errorf("emit %d changes: %w", len(msgs), err)
					return
				}
			}
			if uint64(ack) > acked.Load() {
				acked.Store(uint64(ack))
			}
		}
	}()
	var received pglogrepl.LSN = start
	defer func() {
		close(out)
		cancel()
		wg.Wait()
		// On a clean stop, confirm what the emitter finished, so that the
		// next start replays as little as possible.
		if parent.Err() == nil {
			return
		}
		a := pglogrepl.LSN(acked.Load())
		_ = pglogrepl.SendStandbyStatusUpdate(context.Background(), repl, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: max(received, a), WALFlushPosition: a, WALApplyPosition: a})
	}()
	if src.s.heartbeat > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src.heartbeats(ctx)
		}()
	}

	var (
		nextStatus time.Time // zero: report now
		batch      []*connector.Message
		batchAck   pglogrepl.LSN
		flushAt    time.Time
		d          = &streamDecoder{src: src, dec: newDecoder(), rels: map[uint32]*relation{}}
	)
	sendStatus := func() error {
		a := pglogrepl.LSN(acked.Load())
		err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
			WALWritePosition: max(received, a),
			WALFlushPosition: a,
			WALApplyPosition: a,
		})
		if err != nil {
			return fmt.Errorf("send standby status: %w", err)
		}
		nextStatus = time.Now().Add(src.s.statusInterval)
		return nil
	}
	// flush hands the batch to the emitter, still answering the server
	// while the emitter is behind.
	flush := func() error {
		p := pending{msgs: batch, ack: batchAck}
		batch, batchAck, flushAt = nil, 0, time.Time{}
		for {
			wait := time.Until(nextStatus)
			t := time.NewTimer(max(wait, 0))
			select {
			case out <- p:
				t.Stop()
				return nil
			case err := <-emitErr:
				t.Stop()
				return err
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
				if err := sendStatus(); err != nil {
					return err
				}
			}
		}
	}

	rctx := &deadlineCtx{parent: ctx}
	defer rctx.close()
	for {
		now := time.Now()
		if !now.Before(nextStatus) {
			if err := sendStatus(); err != nil {
				return err
			}
		}
		if len(batch) >= maxBatch || (!flushAt.IsZero() && !now.Before(flushAt)) {
			if err := flush(); err != nil {
				return err
			}
		}
		select {
		case err := <-emitErr:
			return err
		default:
		}
		deadline := nextStatus
		if !flushAt.IsZero() && flushAt.Before(deadline) {
			deadline = flushAt
		}
		msg, err := repl.ReceiveMessage(rctx.until(deadline))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("receive from slot %s: %w", src.s.Slot, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse keepalive: %w", err)
				}
				if ka.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parse XLogData: %w", err)
				}
				received = max(received, xld.WALStart)
				m, ack, err := d.handle(xld)
				if err != nil {
					return err
				}
				if m != nil {
					batch = append(batch, m...)
				}
				if ack > batchAck {
					batchAck = ack
				}
				if flushAt.IsZero() && (len(m) > 0 || ack > 0) {
					flushAt = time.Now().Add(flushDelay)
				}
			}
		case *pgproto3.ErrorResponse:
			return classify(fmt.Errorf("slot %s: %w", src.s.Slot, pgconn.ErrorResponseToPgError(msg)))
		case *pgproto3.CopyDone:
			return fmt.Errorf("slot %s: the server ended the replication stream", src.s.Slot)
		}
	}
}

// heartbeats writes a non-transactional logical message every heartbeat
// interval, so that the stream carries a position to confirm even when
// nothing the publication covers changes (else the slot pins WAL).
func (src *source) heartbeats(ctx context.Context) {
	t := time.NewTicker(src.s.heartbeat)
	defer t.Stop()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if conn == nil {
			c, err := pgx.Connect(ctx, src.s.dsn)
			if err != nil {
				if ctx.Err() == nil {
					src.log.Warn("heartbeat: connect", "err", err)
				}
				continue
			}
			conn = c
		}
		if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(false, '"+heartbeatPrefix+"', '')"); err != nil {
			if ctx.Err() == nil {
				src.log.Warn("heartbeat", "err", err)
			}
			conn.Close(context.Background())
			conn = nil
		}
	}
}

// relation is a table as the stream described it.
type relation struct {
	*pglogrepl.RelationMessage
	head []byte // `"schema":"…","table":"…"`
}

// streamDecoder turns pgoutput messages into VRSky messages.
type streamDecoder struct {
	src  *source
	dec  *decoder
	rels map[uint32]*relation
	tx   txn
}

// handle decodes one XLogData. It returns the messages it makes and the
// position that may be confirmed once they (and all before) are durable.
func (d *streamDecoder) handle(xld pglogrepl.XLogData) ([]*connector.Message, pglogrepl.LSN, error) {
	lm, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return nil, 0, fmt.Errorf("parse pgoutput message at %s: %w", xld.WALStart, err)
	}
	switch m := lm.(type) {
	case *pglogrepl.RelationMessage:
		head := append([]byte(`"schema":`), jsonenc.AppendString(nil, m.Namespace)...)
		head = append(head, `,"table":`...)
		head = jsonenc.AppendString(head, m.RelationName)
		d.rels[m.RelationID] = &relation{RelationMessage: m, head: head}
	case *pglogrepl.BeginMessage:
		d.tx = txn{
			open:       true,
			xid:        m.Xid,
			commitLSN:  m.FinalLSN.String(),
			idPrefix:   fmt.Sprintf("c-%016X-", uint64(m.FinalLSN)),
			commitTime: m.CommitTime.UTC().AppendFormat(nil, time.RFC3339Nano),
		}
	case *pglogrepl.CommitMessage:
		d.tx.open = false
		return nil, m.TransactionEndLSN, nil
	case *pglogrepl.InsertMessage:
		msg, err := d.change("insert", m.RelationID, nil, false, m.Tuple, xld.WALStart)
		return one(msg, err)
	case *pglogrepl.UpdateMessage:
		msg, err := d.change("update", m.RelationID, m.OldTuple, m.OldTupleType == pglogrepl.UpdateMessageTupleTypeKey, m.NewTuple, xld.WALStart)
		return one(msg, err)
	case *pglogrepl.DeleteMessage:
		msg, err := d.change("delete", m.RelationID, m.OldTuple, m.OldTupleType == pglogrepl.DeleteMessageTupleTypeKey, nil, xld.WALStart)
		return one(msg, err)
	case *pglogrepl.TruncateMessage:
		var out []*connector.Message
		for _, id := range m.RelationIDs {
			msg, err := d.change("truncate", id, nil, false, nil, xld.WALStart)
			if err != nil {
				return nil, 0, err
			}
			out = append(out, msg)
		}
		return out, 0, nil
	case *pglogrepl.LogicalDecodingMessage:
		// Our heartbeat, or another application's message: never a
		// change. Outside a transaction it is a position to confirm.
		if !m.Transactional && !d.tx.open {
			return nil, m.LSN, nil
		}
	}
	return nil, 0, nil
}

func one(m *connector.Message, err error) ([]*connector.Message, pglogrepl.LSN, error) {
	if err != nil {
		return nil, 0, err
	}
	return []*connector.Message{m}, 0, nil
}

// change builds the message of one change. keyOnly says before holds the
// replica identity's key columns only (the others are sent as nulls).
func (d *streamDecoder) change(op string, relID uint32, before *pglogrepl.TupleData, keyOnly bool, after *pglogrepl.TupleData, lsn pglogrepl.LSN) (*connector.Message, error) {
	rel, ok := d.rels[relID]
	if !ok {
		return nil, fmt.Errorf("%s at %s: relation %d was not described by the stream", op, lsn, relID)
	}
	if !d.tx.open {
		return nil, fmt.Errorf("%s at %s: change outside a transaction", op, lsn)
	}
	b := make([]byte, 0, 256)
	b = append(b, `{"op":"`...)
	b = append(b, op...)
	b = append(b, `",`...)
	b = append(b, rel.head...)
	var unchanged []string
	var err error
	if before != nil {
		b = append(b, `,"before":`...)
		if b, _, err = d.tuple(b, rel, before, keyOnly); err != nil {
			return nil, fmt.Errorf("%s of %s.%s at %s: before: %w", op, rel.Namespace, rel.RelationName, lsn, err)
		}
	}
	if after != nil {
		b = append(b, `,"after":`...)
		if b, unchanged, err = d.tuple(b, rel, after, false); err != nil {
			return nil, fmt.Errorf("%s of %s.%s at %s: after: %w", op, rel.Namespace, rel.RelationName, lsn, err)
		}
	}
	if len(unchanged) > 0 {
		b = append(b, `,"unchanged":[`...)
		for i, c := range unchanged {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonenc.AppendString(b, c)
		}
		b = append(b, ']')
	}
	b = append(b, `,"lsn":"`...)
	b = append(b, lsn.String()...)
	b = append(b, `","commit_lsn":"`...)
	b = append(b, d.tx.commitLSN...)
	b = append(b, `","commit_time":"`...)
	b = append(b, d.tx.commitTime...)
	b = append(b, `","xid":`...)
	b = strconv.AppendUint(b, uint64(d.tx.xid), 10)
	b = append(b, '}')
	id := d.tx.idPrefix + strconv.Itoa(d.tx.index)
	d.tx.index++
	return newMessage(id, b), nil
}

// errColumns: the tuple does not match its relation.
var errColumns = errors.New("the tuple's columns do not match the relation's")

// tuple appends t as a JSON object. TOASTed values the change did not
// touch (kind 'u') are left out and returned in unchanged.
func (d *streamDecoder) tuple(b []byte, rel *relation, t *pglogrepl.TupleData, keyOnly bool) ([]byte, []string, error) {
	if len(t.Columns) != len(rel.Columns) {
		return b, nil, fmt.Errorf("%w: %d, want %d", errColumns, len(t.Columns), len(rel.Columns))
	}
	var unchanged []string
	b = append(b, '{')
	first := true
	for i, c := range t.Columns {
		col := rel.Columns[i]
		if keyOnly && col.Flags&1 == 0 {
			continue
		}
		if c.DataType == pglogrepl.TupleDataTypeToast {
			unchanged = append(unchanged, col.Name)
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = jsonenc.AppendString(b, col.Name)
		b = append(b, ':')
		switch c.DataType {
		case pglogrepl.TupleDataTypeNull:
			b = append(b, "null"...)
		case pglogrepl.TupleDataTypeText:
			b = d.dec.appendValue(b, col.DataType, c.Data)
		default: // binary: not requested, so not expected
			return b, nil, fmt.Errorf("column %s: unexpected tuple data kind %q", col.Name, c.DataType)
		}
	}
	return append(b, '}'), unchanged, nil
}

// deadlineCtx hands out a context that ends at a deadline, making a new
// one only when the deadline changes (not once per message received).
type deadlineCtx struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelFunc
	at     time.Time
}

func (d *deadlineCtx) until(at time.Time) context.Context {
	if d.ctx == nil || !at.Equal(d.at) || d.ctx.Err() != nil {
		d.close()
		d.ctx, d.cancel = context.WithDeadline(d.parent, at)
		d.at = at
	}
	return d.ctx
}

func (d *deadlineCtx) close() {
	if d.cancel != nil {
		d.cancel()
	}
}
