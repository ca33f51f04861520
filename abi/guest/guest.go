// Package guest is the Go SDK for VRSky connector authors. A connector is a
// Go package main built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o step.wasm .
//
// It registers its handler in an init function (a reactor's main is never
// called) and the SDK does the rest of ABI v1 (abi/ABI.md): the exports, the
// batch loop, copying each input into a buffer the guest owns, and the
// per-message status.
//
//	func init() {
//		guest.Process(func(m *guest.Message) error {
//			m.SetData(bytes.ToUpper(m.Data()))
//			return nil
//		})
//	}
//
// After the handler returns nil, a message that emitted nothing and was not
// dropped goes on: with the data given to SetData if called, else unchanged.
// Returning an error marks it failed: Retryable(err) is retried later, any
// other error is permanent and sends the message to the dead-letter queue.
package guest

import (
	"bytes"
	"unsafe"

	"github.com/vrsky/vrsky/abi"
)

// Handler processes one message.
type Handler func(m *Message) error

var (
	handler  Handler
	setup    func(config []byte) error
	setupRan bool
	setupErr error

	inBuf  = make([]byte, 4096) // guest-owned input buffer, grown on demand
	msg    Message
	config []byte
)

// Process registers the handler called for every message. Call it from an
// init function.
func Process(h Handler) { handler = h }

// Setup registers a function run once per instance, before the first
// message, with the step's configuration (JSON). Compile queries, templates
// and expressions here, never per message. If it returns an error, every
// message fails permanently with that error.
func Setup(f func(config []byte) error) { setup = f }

// Message is the message being processed. It is valid only during the
// handler's call; its Data is reused afterwards.
type Message struct {
	index   int32
	data    []byte
	out     []byte
	hasOut  bool
	emitted int
	dropped bool
}

// Data returns the input payload. The slice is owned by the SDK and reused
// for the next message: copy what must outlive the call.
func (m *Message) Data() []byte { return m.data }

// Header returns the value of an input header ("" and false when absent).
func (m *Message) Header(name string) (string, bool) {
	b, code := fetch(func(buf unsafe.Pointer, c uint32) int32 {
		return hostHeaderGet(strPtr(name), uint32(len(name)), buf, c)
	})
	if code < 0 {
		return "", false
	}
	return string(b), true
}

// Headers returns every input header (first value of each).
func (m *Message) Headers() map[string]string {
	b, code := fetch(hostHeaderList)
	h := map[string]string{}
	if code < 0 {
		return h
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if k, v, ok := bytes.Cut(line, []byte(": ")); ok {
			h[string(k)] = string(v)
		}
	}
	return h
}

// SetHeader sets a header on the messages this input emits or forwards
// from now on.
func (m *Message) SetHeader(name, value string) error {
	return codeErr(hostHeaderSet(strPtr(name), uint32(len(name)), strPtr(value), uint32(len(value))))
}

// Emit sends one output message with the given payload (copied by the
// host). A message may emit 0..n outputs; once it emits, it is not
// forwarded by default.
func (m *Message) Emit(data []byte) error {
	m.emitted++
	return codeErr(hostEmit(bytesPtr(data), uint32(len(data))))
}

// SetData replaces the payload of the single output of this message.
func (m *Message) SetData(data []byte) {
	m.out = data
	m.hasOut = true
}

// Drop filters the message out: nothing goes on, and it counts as dropped.
func (m *Message) Drop() { m.dropped = true }

// Index is the position of the message in the current batch.
func (m *Message) Index() int { return int(m.index) }

// Config returns the step's configuration (JSON, as given in the
// integration spec). The slice is shared: do not modify it.
func Config() []byte {
	if config == nil {
		b, code := fetch(hostConfig)
		if code < 0 {
			return nil
		}
		config = append([]byte{}, b...)
	}
	return config
}

// processBatch is vrsky_process: run the handler over count messages.
func processBatch(count int32) int32 {
	if !setupRan {
		setupRan = true
		if setup != nil {
			setupErr = setup(Config())
		}
	}
	for i := int32(0); i < count; {
		i = runFrom(i, count)
	}
	return 0
}

// runFrom handles messages i..count-1. A panic fails the message being
// handled (permanently) and returns the index after it, so one bad record
// does not take its batch down; one deferred recover per batch instead of
// one per message keeps the per-message cost low.
func runFrom(i, count int32) (next int32) {
	cur := i
	defer func() {
		if r := recover(); r != nil {
			setStatus(abi.StatusPermanent, panicError{r}.Error())
			next = cur + 1
		}
	}()
	for ; i < count; i++ {
		cur = i
		n := hostInput(i, bytesPtr(inBuf), uint32(len(inBuf)))
		if n < 0 {
			setStatus(abi.StatusRetryable, "input: "+abi.ErrorName(n))
			continue
		}
		if int(n) > len(inBuf) {
			inBuf = make([]byte, int(n)+int(n)/4)
			if hostInput(i, bytesPtr(inBuf), uint32(len(inBuf))) != n {
				setStatus(abi.StatusRetryable, "input changed size")
				continue
			}
		}
		msg = Message{index: i, data: inBuf[:n]}
		handleOne(&msg)
	}
	return count
}

func handleOne(m *Message) {
	if setupErr != nil {
		setStatus(abi.StatusPermanent, "config: "+setupErr.Error())
		return
	}
	if handler == nil {
		setStatus(abi.StatusPermanent, "no handler registered: call guest.Process in init")
		return
	}
	err := handler(m)
	switch {
	case err != nil:
		if IsRetryable(err) {
			setStatus(abi.StatusRetryable, err.Error())
		} else {
			setStatus(abi.StatusPermanent, err.Error())
		}
	case m.dropped:
		setStatus(abi.StatusDrop, "")
	case m.emitted > 0:
	case m.hasOut:
		if c := hostEmit(bytesPtr(m.out), uint32(len(m.out))); c < 0 {
			setStatus(abi.StatusPermanent, "emit: "+abi.ErrorName(c))
		}
	default:
		hostForward()
	}
}

type panicError struct{ v any }

func (p panicError) Error() string {
	switch v := p.v.(type) {
	case error:
		return "panic: " + v.Error()
	case string:
		return "panic: " + v
	}
	return "panic in handler"
}

func setStatus(s abi.Status, text string) {
	hostStatus(int32(s), strPtr(text), uint32(len(text)))
}

// scratch is the buffer that variable-size host results land in.
var scratch = make([]byte, 1024)

// fetch calls a host function that returns a size and copies when the
// result fits; when it does not, it reads the held result with "result".
// The returned slice aliases scratch (valid until the next fetch).
func fetch(call func(buf unsafe.Pointer, cap uint32) int32) ([]byte, int32) {
	n := call(bytesPtr(scratch), uint32(len(scratch)))
	if n < 0 {
		return nil, n
	}
	if int(n) > len(scratch) {
		scratch = make([]byte, n)
		if m := hostResult(bytesPtr(scratch), uint32(len(scratch))); m != n {
			return nil, abi.ErrInvalid
		}
	}
	return scratch[:n], n
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

func strPtr(s string) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}
