package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/vrsky/vrsky/abi"
)

// stateKey carries the *callState of the instance being called in the
// context handed to wazero, where host functions find it.
type stateKey struct{}

func stateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(stateKey{}).(*callState)
	return st
}

// callState is what the host functions work on during one guest call. Each
// instance owns one and reuses it from call to call.
type callState struct {
	pool *Pool
	ctx  context.Context // the call's context, for capability calls

	msgs    []Message
	results []Result
	cur     int // index of the current message; -1 before input()

	headers       map[string][]string // output headers of the current message
	headersShared bool                // headers is referenced by an output or the input

	// The call's budgets (ABI.md §4.1). use[i] is what message i has
	// spent; it lives for the whole call, so selecting a message again
	// with input() resets nothing. callOutputs and callOutBytes are what
	// the call's live messages (neither failed nor deferred) hold.
	use          []msgUse
	callOutputs  int
	callOutBytes int

	last []byte // the held result (see the "result" host function)

	// slab backs the first output of each message: one allocation per
	// call instead of one per message. Fresh per call (results escape).
	slab []Message

	handles    map[int32]*objHandle
	nextHandle int32
}

func newCallState(p *Pool) *callState { return &callState{pool: p, cur: -1} }

func (st *callState) begin(msgs []Message, results []Result) {
	st.msgs, st.results, st.cur = msgs, results, -1
	st.last, st.slab = nil, nil
	if cap(st.use) < len(msgs) {
		st.use = make([]msgUse, len(msgs))
	}
	st.use = st.use[:len(msgs)]
	clear(st.use)
	st.callOutputs, st.callOutBytes = 0, 0
}

// msgUse is what one message of the call has spent of its budgets, and
// whether a budget has stopped it.
type msgUse struct {
	headerSets  int // header_set calls accepted
	headerBytes int // their name and value bytes
	outputs     int // outputs accepted and still held
	outBytes    int // their payload bytes
	slab        int // 1 + the index of its first output in slab; 0: none
	// failed, when not empty, is why a budget failed the message: it is
	// PERMANENT whatever the guest says with status().
	failed string
	// deferred: the call's output budget was spent by other messages of
	// the batch; the message is run again in a call of its own.
	deferred bool
}

// stopped reports whether a budget has failed or deferred the message:
// its header_set, emit and forward are refused and its status ignored.
func (u *msgUse) stopped() bool { return u.failed != "" || u.deferred }

// selectMessage makes msgs[i] current.
func (st *callState) selectMessage(i int) {
	if i == st.cur {
		return
	}
	st.cur = i
	st.headers = st.msgs[i].Headers
	st.headersShared = true
}

// failRest marks the current message and those after it retryable after
// the instance broke (a budget's permanent failure stands).
func (st *callState) failRest(err error) {
	msg, _, _ := strings.Cut(err.Error(), "\n") // drop the wasm stack trace
	for i := max(st.cur, 0); i < len(st.results); i++ {
		st.use[i].deferred = false
		if st.use[i].failed == "" {
			st.results[i] = Result{Status: StatusRetryable, Error: msg}
		}
	}
}

// finish closes what the guest left open and settles each result. It
// returns the indexes of the messages deferred by the call's output
// budget, which the pool runs again (nil when there are none).
func (st *callState) finish() []int {
	st.closeHandles()
	var deferred []int
	for i := range st.results {
		r := &st.results[i]
		switch u := &st.use[i]; {
		case u.failed != "":
			*r = Result{Status: StatusPermanent, Error: u.failed}
		case u.deferred:
			*r = Result{Status: StatusRetryable, Error: errDeferred}
			deferred = append(deferred, i)
		case r.Status != StatusOK:
			r.Out = nil
		}
	}
	st.msgs, st.results, st.last, st.headers, st.slab = nil, nil, nil, nil, nil
	st.ctx = nil
	return deferred
}

// errDeferred explains the result of a deferred message that could not be
// run again (no instance could be had).
const errDeferred = "deferred: other messages of the batch spent the call's output budget"

func (st *callState) current() (int, bool) {
	if st.cur < 0 || st.cur >= len(st.msgs) {
		return 0, false
	}
	return st.cur, true
}

// addOutput appends an output holding data to the current message, within
// the call's output budget.
func (st *callState) addOutput(data []byte) int32 {
	if code := st.admitOutput(len(data)); code != 0 {
		return code
	}
	st.appendOutput(data)
	return 0
}

// chargeable returns the current message and its budget use, or, when
// there is no current message or it has stopped, a nil use and the code
// the charge answers.
func (st *callState) chargeable() (int, *msgUse, int32) {
	i, ok := st.current()
	if !ok {
		return 0, nil, abi.ErrInvalid
	}
	u := &st.use[i]
	if u.stopped() {
		return 0, nil, abi.ErrTooLarge
	}
	return i, u, 0
}

// admitOutput charges one output of n bytes to the call's output budget
// (ABI.md §4.1) before anything is copied, so that a refused output costs
// the host nothing. Past the budget the output is refused with
// abi.ErrTooLarge and the message stops: if it alone would pass the budget
// it fails permanently (the same input will always do so); if other
// messages of the batch spent the budget it is deferred, and the pool runs
// it again in a call of its own.
func (st *callState) admitOutput(n int) int32 {
	i, u, code := st.chargeable()
	if u == nil {
		return code
	}
	l := &st.pool.limits
	if st.callOutputs+1 <= l.MaxOutputs && st.callOutBytes+n <= l.MaxOutputBytes {
		u.outputs++
		u.outBytes += n
		st.callOutputs++
		st.callOutBytes += n
		return 0
	}
	switch {
	case u.outputs+1 > l.MaxOutputs:
		st.failMessage(i, fmt.Sprintf("output limit exceeded: more than %d outputs in one call", l.MaxOutputs))
	case u.outBytes+n > l.MaxOutputBytes:
		st.failMessage(i, fmt.Sprintf("output limit exceeded: more than %d bytes of outputs in one call", l.MaxOutputBytes))
	default:
		st.release(i)
		u.deferred = true
	}
	return abi.ErrTooLarge
}

// appendOutput appends an admitted output to the current message.
func (st *callState) appendOutput(data []byte) {
	i := st.cur
	r := &st.results[i]
	id := st.msgs[i].ID
	if k := len(r.Out); k > 0 {
		id += "-" + strconv.Itoa(k)
	}
	out := Message{ID: id, Headers: st.headers, Data: data}
	st.headersShared = true
	if len(r.Out) == 0 {
		if st.slab == nil {
			st.slab = make([]Message, 0, len(st.msgs))
		}
		if len(st.slab) < cap(st.slab) {
			st.slab = append(st.slab, out)
			n := len(st.slab)
			r.Out = st.slab[n-1 : n : n]
			st.use[i].slab = n
			return
		}
	}
	r.Out = append(r.Out, out)
}

// failMessage fails message i permanently for a budget: its outputs are
// dropped at once and their share of the call's budget given back.
func (st *callState) failMessage(i int, why string) {
	st.release(i)
	st.use[i].failed = why
	st.results[i] = Result{Status: StatusPermanent, Error: why}
}

// release drops message i's outputs, so that the host holds nothing of
// them, and gives their share of the call's output budget back.
func (st *callState) release(i int) {
	u := &st.use[i]
	st.callOutputs -= u.outputs
	st.callOutBytes -= u.outBytes
	u.outputs, u.outBytes = 0, 0
	if u.slab > 0 {
		st.slab[u.slab-1] = Message{} // r.Out may have moved off the slab
		u.slab = 0
	}
	r := &st.results[i]
	clear(r.Out)
	r.Out = nil
}

// admitHeader charges one header_set of n bytes (name and value) to the
// current message's header budget (ABI.md §4.1), before anything is
// copied. Past the budget the message fails permanently and
// abi.ErrTooLarge is returned. The budget is the message's for the whole
// call: selecting it again with input() does not reset it.
func (st *callState) admitHeader(n int) int32 {
	i, u, code := st.chargeable()
	if u == nil {
		return code
	}
	l := &st.pool.limits
	switch {
	case u.headerSets+1 > l.MaxHeaderSets:
		st.failMessage(i, fmt.Sprintf("header limit exceeded: more than %d header_set calls on one message", l.MaxHeaderSets))
		return abi.ErrTooLarge
	case u.headerBytes+n > l.MaxHeaderBytes:
		st.failMessage(i, fmt.Sprintf("header limit exceeded: more than %d bytes of header_set on one message", l.MaxHeaderBytes))
		return abi.ErrTooLarge
	}
	u.headerSets++
	u.headerBytes += n
	return 0
}

// headerGet returns the first value of a header of the current input: the
// name as given, else in canonical MIME form.
func (st *callState) headerGet(name string) (string, bool) {
	h := st.msgs[st.cur].Headers
	v, ok := h[name]
	if !ok {
		v, ok = h[textproto.CanonicalMIMEHeaderKey(name)]
	}
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// headerSet sets a header on the current message's later outputs, within
// the message's header budget; see admitHeader and putHeader.
func (st *callState) headerSet(name, value string) int32 {
	if code := st.admitHeader(len(name) + len(value)); code != 0 {
		return code
	}
	st.putHeader(name, value)
	return 0
}

// putHeader sets an admitted header (canonical MIME form) on the current
// message's later outputs, copying the map first if an output or the input
// shares it.
func (st *callState) putHeader(name, value string) {
	if st.headersShared {
		h := make(map[string][]string, len(st.headers)+1)
		maps.Copy(h, st.headers)
		st.headers, st.headersShared = h, false
	}
	st.headers[textproto.CanonicalMIMEHeaderKey(name)] = []string{value}
}

// guest memory helpers: every pointer and length from the guest is
// checked against the memory's size; a bad one is abi.ErrInvalid. A slice
// from memRead is guest memory, unmapped when the instance closes: copy
// what outlives the host function.

func memRead(m api.Module, ptr, n uint32) ([]byte, bool) {
	if n == 0 {
		return nil, true
	}
	mem := m.Memory()
	if mem == nil {
		return nil, false
	}
	return mem.Read(ptr, n)
}

func memString(m api.Module, ptr, n uint32, limit uint32) (string, bool) {
	if n > limit {
		return "", false
	}
	b, ok := memRead(m, ptr, n)
	return string(b), ok
}

// putResult hands a variable-size value to the guest: copied to buf when
// it fits in capacity, else held for "result". Returns the size or an error.
func (st *callState) putResult(m api.Module, buf, capacity uint32, data []byte) int32 {
	if len(data) > math.MaxInt32 {
		return abi.ErrTooLarge
	}
	st.last = data
	if uint32(len(data)) <= capacity && len(data) > 0 {
		mem := m.Memory()
		if mem == nil || !mem.Write(buf, data) {
			return abi.ErrInvalid
		}
	}
	return int32(len(data))
}

// abiInstance is one instance of an ABI v1 module.
type abiInstance struct {
	pool    *Pool
	mod     api.Module
	mem     *linearMemory
	process api.Function
	st      *callState
	stack   [1]uint64
}

func (p *Pool) newABIInstance(ctx context.Context) (*abiInstance, error) {
	m := p.mod
	st := newCallState(p)
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions(). // _initialize is called below, under the deadline
		WithStdout(logWriter{p.log, slog.LevelInfo, "stdout"}).
		WithStderr(logWriter{p.log, slog.LevelWarn, "stderr"}).
		WithSysWalltime().
		WithSysNanotime().
		WithSysNanosleep().
		WithRandSource(rand.Reader)
	cctx, cancel := p.callContext(ctx, st, p.limits.InitTimeout)
	defer cancel()
	// Linear memory outside the Go heap (linmem_unix.go), pinned during
	// guest calls.
	mem := newLinearMemory(m.rt.cfg.MaxMemoryPages, p.log)
	mod, err := m.wz.InstantiateModule(mem.withAllocator(cctx), m.compiled, mc)
	if err != nil {
		return nil, fmt.Errorf("host: module %s: instantiate: %w", m.spec.Name, err)
	}
	if init := mod.ExportedFunction(abi.ExportInitialize); init != nil {
		if !mem.pin() {
			return nil, fmt.Errorf("host: module %s: _initialize: %w", m.spec.Name, errMemoryFreed)
		}
		_, err := init.Call(cctx)
		mem.unpin()
		if err != nil {
			mod.Close(context.Background())
			return nil, fmt.Errorf("host: module %s: _initialize: %w", m.spec.Name, callError(cctx, err))
		}
	}
	return &abiInstance{pool: p, mod: mod, mem: mem, process: mod.ExportedFunction(abi.ExportProcess), st: st}, nil
}

// errMemoryFreed refuses a call to an instance wazero closed between calls
// (its Runtime was closed): its memory is unmapped.
var errMemoryFreed = errors.New("instance closed: guest memory freed")

// callContext gives the guest call its context: the state for host
// functions and, for untrusted modules, the deadline.
func (p *Pool) callContext(ctx context.Context, st *callState, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, stateKey{}, st)
	cancel := context.CancelFunc(func() {})
	if !p.mod.spec.Trusted {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	st.ctx = ctx
	return ctx, cancel
}

func (i *abiInstance) run(ctx context.Context, st *callState) error {
	cctx, cancel := i.pool.callContext(ctx, st, i.pool.limits.Timeout)
	defer cancel()
	if !i.mem.pin() {
		return errMemoryFreed
	}
	defer i.mem.unpin()
	i.stack[0] = uint64(len(st.msgs))
	if err := i.process.CallWithStack(cctx, i.stack[:]); err != nil {
		return callError(cctx, err)
	}
	if rc := int32(i.stack[0]); rc != 0 {
		// The guest reports the batch failed: messages it did not settle
		// are retried.
		for k := range st.results {
			if st.results[k].Status == StatusOK && st.results[k].Out == nil {
				st.results[k] = Result{Status: StatusRetryable, Error: fmt.Sprintf("guest returned %d", rc)}
			}
		}
	}
	return nil
}

func (i *abiInstance) state() *callState { return i.st }

var _ instance = (*abiInstance)(nil)

func (i *abiInstance) memoryPages() uint32 {
	if mem := i.mod.Memory(); mem != nil {
		return mem.Size() / 65536
	}
	return 0
}

func (i *abiInstance) close(ctx context.Context) { i.mod.Close(ctx) }

// callError names why a guest call failed.
func callError(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errDeadline, err)
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		switch exit.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return fmt.Errorf("%w: %w", errDeadline, err)
		case sys.ExitCodeContextCanceled:
			return fmt.Errorf("guest call canceled: %w", err)
		}
		return fmt.Errorf("guest exited (code %d; a Go guest exits 2 when out of memory or on a fatal error): %w", exit.ExitCode(), err)
	}
	return fmt.Errorf("guest trapped: %w", err)
}

// logWriter sends a guest's stdout or stderr to the log, one record per
// write.
type logWriter struct {
	log    *slog.Logger
	level  slog.Level
	stream string
}

func (w logWriter) Write(p []byte) (int, error) {
	if s := strings.TrimRight(string(p), "\n"); s != "" {
		w.log.Log(context.Background(), w.level, s, "stream", w.stream)
	}
	return len(p), nil
}

var _ io.Writer = logWriter{}
