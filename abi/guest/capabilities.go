package guest

import (
	"io"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/vrsky/vrsky/abi"
)

// Log writes a message to the platform log at the given level
// (abi.LogDebug … abi.LogError), tagged with the module and message.
func Log(level int32, text string) { hostLog(level, strPtr(text), uint32(len(text))) }

// Debug, Info, Warn and Error log at their level.
func Debug(text string) { Log(abi.LogDebug, text) }
func Info(text string)  { Log(abi.LogInfo, text) }
func Warn(text string)  { Log(abi.LogWarn, text) }
func Error(text string) { Log(abi.LogError, text) }

// Publish sends data on a NATS subject. The manifest must grant "nats",
// and the subject must be in the tenant's guest namespace,
// "vrsky.<tenant>._app.<token>[.<token>…]" (abi.SubjectAppToken), or be
// "vrsky.<tenant>.<token>"; the platform's own subjects (an integration's
// ".in" and ".out.<sink>", the dead letters) are refused with ErrDenied.
func Publish(subject string, data []byte) error {
	return codeErr(hostNATSPublish(strPtr(subject), uint32(len(subject)), bytesPtr(data), uint32(len(data))))
}

// Request sends data on a NATS subject and waits up to timeout for one
// reply, returned in a new slice. The subject rules are Publish's.
func Request(subject string, data []byte, timeout time.Duration) ([]byte, error) {
	ms := uint32(timeout / time.Millisecond)
	b, code := fetch(func(buf unsafe.Pointer, c uint32) int32 {
		return hostNATSRequest(strPtr(subject), uint32(len(subject)), bytesPtr(data), uint32(len(data)), ms, buf, c)
	})
	if code < 0 {
		return nil, codeErr(code)
	}
	return append([]byte{}, b...), nil
}

// KVGet reads a key of the integration's key-value store; ErrNotFound when
// absent. Keys are scoped to the integration by the host.
func KVGet(key string) ([]byte, error) {
	b, code := fetch(func(buf unsafe.Pointer, c uint32) int32 {
		return hostKVGet(strPtr(key), uint32(len(key)), buf, c)
	})
	if code < 0 {
		return nil, codeErr(code)
	}
	return append([]byte{}, b...), nil
}

// KVPut stores value under key in the integration's key-value store.
func KVPut(key string, value []byte) error {
	return codeErr(hostKVPut(strPtr(key), uint32(len(key)), bytesPtr(value), uint32(len(value))))
}

// KVDelete removes key from the integration's key-value store.
func KVDelete(key string) error {
	return codeErr(hostKVDelete(strPtr(key), uint32(len(key))))
}

// Object is an open object of the object store, by reference: its bytes
// stream through the guest in chunks and never sit in a NATS message.
// Objects are closed by the host at the end of the batch if the guest
// forgets; an object being written is then discarded.
type Object struct{ h int32 }

// OpenObject opens an object for reading, e.g. the claim-check payload
// named by the Vrsky-Payload-Ref header. The key must be under the
// tenant's prefix, "payloads/<tenant>/…" (ABI.md §5).
func OpenObject(key string) (*Object, error) {
	h := hostObjectOpen(strPtr(key), uint32(len(key)))
	if h < 0 {
		return nil, codeErr(h)
	}
	return &Object{h: h}, nil
}

// CreateObject opens a new object for writing; Close commits it. Inside
// an integration the key must be under its own prefix,
// "payloads/<tenant>/<integration>/…", else ERR_DENIED (ABI.md §5).
func CreateObject(key string) (*Object, error) {
	h := hostObjectCreate(strPtr(key), uint32(len(key)))
	if h < 0 {
		return nil, codeErr(h)
	}
	return &Object{h: h}, nil
}

// Read implements io.Reader.
func (o *Object) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := hostObjectRead(o.h, bytesPtr(p), uint32(len(p)))
	if n < 0 {
		return 0, codeErr(n)
	}
	if n == 0 {
		return 0, io.EOF
	}
	return int(n), nil
}

// Write implements io.Writer.
func (o *Object) Write(p []byte) (int, error) {
	if c := hostObjectWrite(o.h, bytesPtr(p), uint32(len(p))); c < 0 {
		return 0, codeErr(c)
	}
	return len(p), nil
}

// Close releases a reader, or commits a writer.
func (o *Object) Close() error { return codeErr(hostObjectClose(o.h)) }

// HTTPResponse is the answer to an HTTP call made through the host.
type HTTPResponse struct {
	// Status is the HTTP status code.
	Status int
	// Headers holds the response headers (first value of each).
	Headers map[string]string
	// Body is the response body (bounded by the host's limit).
	Body []byte
}

// HTTP performs a request through the host. The URL's host must be one
// the connector's manifest declares.
func HTTP(method, url string, headers map[string]string, body []byte) (*HTTPResponse, error) {
	var hb strings.Builder
	for k, v := range headers {
		hb.WriteString(k)
		hb.WriteString(": ")
		hb.WriteString(v)
		hb.WriteByte('\n')
	}
	hs := hb.String()
	b, code := fetch(func(buf unsafe.Pointer, c uint32) int32 {
		return hostHTTPRequest(strPtr(method), uint32(len(method)), strPtr(url), uint32(len(url)),
			strPtr(hs), uint32(len(hs)), bytesPtr(body), uint32(len(body)), buf, c)
	})
	if code < 0 {
		return nil, codeErr(code)
	}
	return parseHTTPResponse(b)
}

// parseHTTPResponse reads the host's framing: "<status>\n", header lines
// "Name: value\n", an empty line, then the body.
func parseHTTPResponse(b []byte) (*HTTPResponse, error) {
	s := string(b)
	head, body, ok := strings.Cut(s, "\n\n")
	if !ok {
		return nil, ErrInvalid
	}
	lines := strings.Split(head, "\n")
	st, err := strconv.Atoi(lines[0])
	if err != nil {
		return nil, ErrInvalid
	}
	r := &HTTPResponse{Status: st, Headers: map[string]string{}, Body: []byte(body)}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ": "); ok {
			r.Headers[k] = v
		}
	}
	return r, nil
}
