package file

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/nats-io/nats.go"

	"github.com/vrsky/vrsky/internal/jsonenc"
	"github.com/vrsky/vrsky/runtime/connector"
)

//go:embed source.schema.json
var sourceSchema []byte

// Source is the file source connector.
var Source = connector.Connector{
	Name:         "file",
	Version:      "1.0.0",
	Kind:         connector.KindSource,
	Description:  "Watches a directory and emits each stable file whole or as records (lines, CSV rows, JSON lines), then moves it to processed/ or failed/.",
	ConfigSchema: sourceSchema,
	Builtin:      true,
	Singleton:    true,
	NewSource: func(cfg json.RawMessage, env connector.Env) (connector.Source, error) {
		c, err := parseSourceConfig(cfg)
		if err != nil {
			return nil, err
		}
		return newSource(c, env), nil
	},
	Check: func(_ context.Context, cfg json.RawMessage, _ connector.Env) error {
		c, err := parseSourceConfig(cfg)
		if err != nil {
			return err
		}
		return checkDir(c.Dir)
	},
}

// Headers the source sets on every message.
const (
	// HeaderFileName is the file's name in the watched directory.
	HeaderFileName = "Vrsky-File-Name"
	// HeaderFileRecord is the 1-based number of the (first) record in the
	// message; 1 in mode whole.
	HeaderFileRecord = "Vrsky-File-Record"
	// HeaderFileRecords is the number of records in a message that
	// carries a JSON array of them (records_per_message > 1).
	HeaderFileRecords = "Vrsky-File-Records"
)

// Tuning: a chunk of messages goes out in one EmitBatch and is followed by
// a checkpoint.
const (
	chunkMessages = 1000
	chunkBytes    = 4 << 20
)

func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return &connector.SpecError{Field: "dir", Reason: err.Error()}
	}
	if !fi.IsDir() {
		return &connector.SpecError{Field: "dir", Reason: dir + " is not a directory"}
	}
	return nil
}

type source struct {
	cfg SourceConfig
	// base is the tenant's file area when the source is confined
	// (Confined): what the tenant sees of errors (the status, .error
	// sidecars) names paths relative to it, never the server's.
	base              string
	env               connector.Env
	log               *slog.Logger
	processed, failed string
	delim             rune
}

func newSource(c SourceConfig, env connector.Env) *source {
	log := env.Logger
	if log == nil {
		log = slog.Default()
	}
	delim := []rune(c.CSV.Delimiter)[0]
	return &source{cfg: c, env: env, log: log, processed: c.resolve(c.ProcessedDir), failed: c.resolve(c.FailedDir), delim: delim}
}

// public is err as the tenant may see it: with paths under the tenant's
// file area relative to it. The chain is kept (errors.Is and As see the
// original); only the text changes.
func (s *source) public(err error) error {
	if err == nil || s.base == "" {
		return err
	}
	return relativeError{err: err, base: filepath.Clean(s.base) + string(filepath.Separator)}
}

// relativeError is an error whose text names paths relative to base.
type relativeError struct {
	err  error
	base string
}

func (e relativeError) Error() string { return strings.ReplaceAll(e.err.Error(), e.base, "") }
func (e relativeError) Unwrap() error { return e.err }

// candidate is a file waiting to be stable.
type candidate struct {
	size  int64
	mtime time.Time
	since time.Time // when it was last seen changing
}

// Run watches the directory until ctx ends.
func (s *source) Run(ctx context.Context, emit connector.Emitter) (err error) {
	defer func() { err = s.public(err) }()
	if err := checkDir(s.cfg.Dir); err != nil {
		return fmt.Errorf("file source: %w", err)
	}
	for _, d := range []string{s.processed, s.failed} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("file source: %w", err)
		}
	}
	s.collectCheckpoints(ctx)

	var events <-chan fsnotify.Event
	var werrs <-chan error
	if w, err := fsnotify.NewWatcher(); err != nil {
		s.log.Warn("file source: no fsnotify, relying on rescans", "err", err)
	} else {
		defer w.Close()
		if err := w.Add(s.cfg.Dir); err != nil {
			s.log.Warn("file source: cannot watch, relying on rescans", "dir", s.cfg.Dir, "err", err)
		} else {
			events, werrs = w.Events, w.Errors
		}
	}
	stable := time.Duration(s.cfg.StableFor)
	rescan := time.NewTicker(time.Duration(s.cfg.RescanInterval))
	defer rescan.Stop()
	poll := time.NewTicker(min(max(stable/4, 20*time.Millisecond), 250*time.Millisecond))
	defer poll.Stop()

	cands := map[string]*candidate{}
	s.scan(cands)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename|fsnotify.Chmod) != 0 && filepath.Dir(ev.Name) == filepath.Clean(s.cfg.Dir) {
				s.consider(cands, filepath.Base(ev.Name))
			}
		case err, ok := <-werrs:
			if !ok {
				werrs = nil
				continue
			}
			s.log.Warn("file source: watch error", "err", err)
		case <-rescan.C:
			s.scan(cands)
		case <-poll.C:
			for _, name := range s.ready(cands, stable) {
				delete(cands, name)
				if err := s.process(ctx, emit, name); err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
			}
		}
	}
}

// eligible says whether a directory entry name may be picked.
func (s *source) eligible(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") {
		return false
	}
	ok, _ := filepath.Match(s.cfg.Pattern, name)
	return ok
}

// scan adds every eligible regular file to cands.
func (s *source) scan(cands map[string]*candidate) {
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		s.log.Warn("file source: list directory", "dir", s.cfg.Dir, "err", err)
		return
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			s.consider(cands, e.Name())
		}
	}
}

// consider starts tracking name if it is an eligible regular file.
func (s *source) consider(cands map[string]*candidate, name string) {
	if _, ok := cands[name]; ok || !s.eligible(name) {
		return
	}
	fi, err := os.Lstat(filepath.Join(s.cfg.Dir, name))
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	since := fi.ModTime()
	if now := time.Now(); since.After(now) {
		since = now
	}
	cands[name] = &candidate{size: fi.Size(), mtime: fi.ModTime(), since: since}
}

// ready returns, in name order, the candidates whose size and mtime have
// not changed for stable; it drops those that disappeared.
func (s *source) ready(cands map[string]*candidate, stable time.Duration) []string {
	var out []string
	now := time.Now()
	for name, c := range cands {
		fi, err := os.Lstat(filepath.Join(s.cfg.Dir, name))
		if err != nil || !fi.Mode().IsRegular() {
			delete(cands, name)
			continue
		}
		if fi.Size() != c.size || !fi.ModTime().Equal(c.mtime) {
			c.size, c.mtime, c.since = fi.Size(), fi.ModTime(), now
			continue
		}
		if now.Sub(c.since) >= stable {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// fileID names one version of a file: the same name, size and mtime give
// the same id, so re-emitted records get the same message ids.
func (s *source) fileID(name string, fi fs.FileInfo) string {
	h := sha256.New()
	var n [16]byte
	binary.BigEndian.PutUint64(n[:8], uint64(fi.Size()))
	binary.BigEndian.PutUint64(n[8:], uint64(fi.ModTime().UnixNano()))
	h.Write([]byte(s.env.Tenant + "\x00" + s.env.Integration + "\x00" + name + "\x00"))
	h.Write(n[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// checkpoint is how far a file got: records (and the file offset after
// them) that are durable.
type checkpoint struct {
	Name    string `json:"name"`
	Records int64  `json:"records"`
	Offset  int64  `json:"offset"`
}

func checkpointKey(id string) string { return "f-" + id }

func (s *source) loadCheckpoint(ctx context.Context, id string) (checkpoint, error) {
	var ck checkpoint
	if s.env.State == nil {
		return ck, nil
	}
	b, err := s.env.State.Get(ctx, checkpointKey(id))
	if errors.Is(err, connector.ErrNoState) {
		return ck, nil
	}
	if err != nil {
		return ck, fmt.Errorf("read checkpoint: %w", err)
	}
	if err := json.Unmarshal(b, &ck); err != nil {
		s.log.Warn("file source: unreadable checkpoint, starting the file over", "key", checkpointKey(id), "err", err)
		return checkpoint{}, nil
	}
	return ck, nil
}

func (s *source) saveCheckpoint(ctx context.Context, id string, ck checkpoint) error {
	if s.env.State == nil {
		return nil
	}
	b, _ := json.Marshal(ck)
	return s.env.State.Put(ctx, checkpointKey(id), b)
}

func (s *source) dropCheckpoint(ctx context.Context, id string) {
	if s.env.State == nil {
		return
	}
	// The file has moved: finish the bookkeeping even when a stop has begun.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.env.State.Delete(ctx, checkpointKey(id)); err != nil {
		s.log.Warn("file source: delete checkpoint", "key", checkpointKey(id), "err", err)
	}
}

// collectCheckpoints deletes checkpoints whose file is gone or changed
// (a stop between a move and the checkpoint's deletion leaves one).
func (s *source) collectCheckpoints(ctx context.Context) {
	if s.env.State == nil {
		return
	}
	keys, err := s.env.State.Keys(ctx)
	if err != nil {
		s.log.Warn("file source: list checkpoints", "err", err)
		return
	}
	for _, k := range keys {
		id, ok := strings.CutPrefix(k, "f-")
		if !ok {
			continue
		}
		ck, err := s.loadCheckpoint(ctx, id)
		if err != nil {
			continue
		}
		fi, err := os.Lstat(filepath.Join(s.cfg.Dir, ck.Name))
		if err == nil && s.fileID(ck.Name, fi) == id {
			continue
		}
		s.dropCheckpoint(ctx, id)
	}
}

// process emits one stable file and moves it. It returns an error only
// when the source cannot go on (ctx ended, or the file cannot be moved).
func (s *source) process(ctx context.Context, emit connector.Emitter, name string) error {
	path := filepath.Join(s.cfg.Dir, name)
	f, err := os.Open(path)
	if err != nil {
		s.log.Warn("file source: open", "file", name, "err", err)
		return nil // gone, or not readable yet: a rescan finds it again
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	id := s.fileID(name, fi)
	start := time.Now()
	var res result
	if s.cfg.Mode == ModeWhole {
		res = s.emitWhole(ctx, emit, f, fi, name, id)
	} else {
		res = s.emitRecords(ctx, emit, f, fi, name, id)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if res.retry != nil {
		// Not the file's fault (the state store, the disk): leave it
		// where it is; the next rescan picks it up again.
		s.log.Warn("file source: file left in place, will retry", "file", name, "err", res.retry)
		return nil
	}
	if res.err != nil {
		// Not worth retrying this file (a parse error, a payload the
		// stream refuses): failed/ with the reason.
		dst, err := s.moveAside(path, s.failed, name, fmt.Sprintf("%v\nrecords emitted: %d\n", s.public(res.err), res.records))
		if err != nil {
			return err
		}
		s.dropCheckpoint(ctx, id)
		s.log.Warn("file source: file failed", "file", name, "moved_to", dst, "records_emitted", res.records, "err", res.err)
		return nil
	}
	if now, err := os.Lstat(path); err != nil || now.Size() != fi.Size() || !now.ModTime().Equal(fi.ModTime()) {
		// Changed while it was read: leave it, it will be picked again
		// as a new version once stable.
		s.dropCheckpoint(ctx, id)
		s.log.Warn("file source: file changed while it was read; it will be emitted again", "file", name)
		return nil
	}
	dst, err := s.moveAside(path, s.processed, name, "")
	if err != nil {
		return err
	}
	s.dropCheckpoint(ctx, id)
	s.log.Info("file source: file processed", "file", name, "moved_to", dst, "records", res.records,
		"messages", res.messages, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// result is what emitting a file came to. err is a reason to move the
// file to failed/, retry one to leave it for a later attempt; the caller
// checks ctx for a stop.
type result struct {
	records, messages int64
	err, retry        error
}

// moveAside renames path into dir (a timestamp suffix avoids clobbering a
// file of the same name) and, when sidecar is set, writes it beside the
// moved file as <name>.error first.
func (s *source) moveAside(path, dir, name, sidecar string) (string, error) {
	dst := filepath.Join(dir, name)
	if _, err := os.Lstat(dst); err == nil {
		dst += "." + time.Now().UTC().Format("20060102T150405.000000000Z")
	}
	if sidecar != "" {
		if err := writeAtomic(dst+".error", []byte(sidecar)); err != nil {
			return "", fmt.Errorf("file source: sidecar for %s: %w", name, err)
		}
	}
	if err := os.Rename(path, dst); err != nil {
		return "", fmt.Errorf("file source: move %s to %s: %w", name, dir, err)
	}
	return dst, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func contentType(name string) string {
	if ct := mime.TypeByExtension(filepath.Ext(name)); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

func (s *source) emitWhole(ctx context.Context, emit connector.Emitter, f *os.File, fi fs.FileInfo, name, id string) result {
	if fi.Size() > s.cfg.MaxFileSize {
		return result{err: fmt.Errorf("file is %d bytes, over max_file_size (%d)", fi.Size(), s.cfg.MaxFileSize)}
	}
	data := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return result{retry: fmt.Errorf("read: %w", err)}
	}
	msg := &connector.Message{ID: id + "-1", Header: connector.Header{}, Data: data}
	msg.Header.Set(connector.HeaderContentType, contentType(name))
	msg.Header.Set(HeaderFileName, name)
	msg.Header.Set(HeaderFileRecord, "1")
	if err := s.emitRetry(ctx, emit, []*connector.Message{msg}); err != nil {
		return result{err: err}
	}
	return result{records: 1, messages: 1}
}

// emitRetry emits msgs until they are all durable, retrying with the same
// ids (duplicates are dropped by JetStream). It returns ctx's error, or an
// error retrying cannot fix.
func (s *source) emitRetry(ctx context.Context, emit connector.Emitter, msgs []*connector.Message) error {
	backoff := 100 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := emit.EmitBatch(ctx, msgs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connector.IsPermanent(err) || errors.Is(err, nats.ErrMaxPayload) {
			return fmt.Errorf("emit: %w", err)
		}
		s.log.Warn("file source: emit failed, retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// chunk is a run of messages emitted together, then checkpointed.
type chunk struct {
	msgs    []*connector.Message
	records int64 // records in msgs
	end     int64 // file offset after them
	err     error // set on the last chunk when reading stopped early
}

// emitRecords streams the file's records from its checkpoint on: a
// goroutine reads and builds chunks while the previous one is emitted.
func (s *source) emitRecords(ctx context.Context, emit connector.Emitter, f *os.File, fi fs.FileInfo, name, id string) result {
	ck, err := s.loadCheckpoint(ctx, id)
	if err != nil {
		return result{retry: err}
	}
	ck.Name = name
	done := ck.Records
	if done > 0 {
		s.log.Info("file source: resuming file", "file", name, "records_durable", done)
	}
	rr, err := s.openRecords(f, fi.Size(), ck)
	if err != nil {
		var pe *parseError
		if errors.As(err, &pe) {
			return result{records: done, err: err}
		}
		if errors.Is(err, io.EOF) { // empty file
			return result{records: done}
		}
		return result{records: done, retry: err}
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk, 2)
	go s.produce(rctx, rr, name, id, done, chunks)
	var res result
	res.records = done
	for c := range chunks {
		if len(c.msgs) > 0 {
			if err := s.emitRetry(ctx, emit, c.msgs); err != nil {
				cancel()
				for range chunks {
				}
				res.err = err
				return res
			}
			res.records += c.records
			res.messages += int64(len(c.msgs))
			ck.Records, ck.Offset = res.records, c.end
			// These records are durable: record it even when a stop has
			// begun, so a restart does not emit them again.
			sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.saveCheckpoint(sctx, id, ck); err != nil {
				s.log.Warn("file source: save checkpoint", "file", name, "err", err)
			}
			scancel()
		}
		var pe *parseError
		if errors.As(c.err, &pe) {
			res.err = c.err
		} else if c.err != nil {
			res.retry = c.err
		}
	}
	return res
}

// openRecords opens the reader for the mode at the checkpoint.
func (s *source) openRecords(f *os.File, size int64, ck checkpoint) (recordReader, error) {
	from := ck.Offset
	if s.cfg.Mode == ModeCSV {
		keys, end, err := readCSVHeader(io.NewSectionReader(f, 0, size), s.delim)
		if err != nil {
			return nil, err
		}
		from = max(from, end)
		lines, err := countLines(f, from)
		if err != nil {
			return nil, err
		}
		return newCSVReader(io.NewSectionReader(f, from, size-from), keys, from, lines, s.delim, s.cfg.MaxRecordBytes), nil
	}
	lines, err := countLines(f, from)
	if err != nil {
		return nil, err
	}
	return newLineReader(io.NewSectionReader(f, from, size-from), from, lines, s.cfg.MaxRecordBytes, s.cfg.Mode == ModeJSONL), nil
}

// countLines counts the line breaks in the first n bytes of f.
func countLines(f *os.File, n int64) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	buf := make([]byte, 256<<10)
	r := io.NewSectionReader(f, 0, n)
	var lines int64
	for {
		k, err := r.Read(buf)
		lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
		if errors.Is(err, io.EOF) {
			return lines, nil
		}
		if err != nil {
			return 0, fmt.Errorf("count lines: %w", err)
		}
	}
}

// produce reads records into messages and messages into chunks; records
// before a broken one are sent, then the error.
func (s *source) produce(ctx context.Context, rr recordReader, name, id string, done int64, out chan<- chunk) {
	defer close(out)
	per := s.cfg.RecordsPerMessage
	ctRecord := "application/json"
	if s.cfg.Mode == ModeLines && per == 1 {
		ctRecord = "text/plain; charset=utf-8"
	}
	var (
		cur     chunk
		size    int
		group   []byte // JSON array under construction
		inGroup int
		first   int64 // first record number of the group
		recNo   = done
		end     int64 // file offset after the last record read
	)
	newMsg := func(data []byte, first int64, n int) {
		rec := strconv.FormatInt(first, 10)
		// The keys are canonical already; room for the pipeline's own.
		h := make(connector.Header, 8)
		h[connector.HeaderContentType] = []string{ctRecord}
		h[HeaderFileName] = []string{name}
		h[HeaderFileRecord] = []string{rec}
		if per > 1 {
			h[HeaderFileRecords] = []string{strconv.Itoa(n)}
		}
		m := &connector.Message{ID: id + "-" + rec, Header: h, Data: data}
		cur.msgs = append(cur.msgs, m)
		cur.records += int64(n)
		cur.end = end // not rr.offset(): after a broken record it is past it
		size += len(data)
	}
	send := func() bool {
		select {
		case out <- cur:
		case <-ctx.Done():
			return false
		}
		cur, size = chunk{}, 0
		return true
	}
	flushGroup := func() {
		if inGroup > 0 {
			newMsg(append(group, ']'), first, inGroup)
			group, inGroup = nil, 0
		}
	}
	for {
		rec, err := rr.next()
		if err != nil {
			flushGroup()
			if !errors.Is(err, io.EOF) {
				cur.err = err
			}
			if len(cur.msgs) > 0 || cur.err != nil {
				send()
			}
			return
		}
		recNo++
		end = rr.offset()
		if per == 1 {
			newMsg(bytes.Clone(rec), recNo, 1)
		} else {
			if inGroup == 0 {
				first = recNo
				group = append(make([]byte, 0, min(len(rec)*per+2, 1<<20)), '[')
			} else {
				group = append(group, ',')
			}
			if s.cfg.Mode == ModeLines {
				group = jsonenc.AppendString(group, rec)
			} else {
				group = append(group, rec...)
			}
			inGroup++
			if inGroup == per {
				flushGroup()
			}
		}
		if len(cur.msgs) >= chunkMessages || size >= chunkBytes {
			if !send() {
				return
			}
		}
	}
}
