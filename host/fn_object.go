package host

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
	"github.com/vrsky/vrsky/platform/blob"
)

// The object group: streaming get and put of the object store by
// reference, through handles that live for one guest call at most.

const maxHandles = 16

// ObjectPrefix is the first segment of every key a guest may use.
const ObjectPrefix = "payloads"

// objHandle is an open object: a reader, or a writer feeding a Put.
type objHandle struct {
	r    io.ReadCloser
	w    *io.PipeWriter
	done chan error // the Put's outcome, for writers
}

var errAbandoned = errors.New("object left open by the guest")

// ObjectKeyAllowed reports whether a guest of tenant may use key: slash-
// separated segments of [A-Za-z0-9._-] (no "." or ".." segment) under the
// tenant's own prefix, "payloads/<tenant>/…". The first segment is fixed
// because the platform keeps other things in the same store under other
// prefixes (modules/sha256/<digest> for uploaded modules): a check on the
// second segment alone let a tenant named like one of them ("sha256") read
// and overwrite them.
func ObjectKeyAllowed(tenant, key string) bool {
	if tenant == "" || len(key) > 1024 {
		return false
	}
	segs := strings.Split(key, "/")
	if len(segs) < 3 || segs[0] != ObjectPrefix || segs[1] != tenant {
		return false
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return false
			}
		}
	}
	return true
}

func (st *callState) objectKey(m api.Module, stack []uint64) (Objects, string, int32) {
	if !st.pool.mod.spec.Capabilities.Objects {
		return nil, "", abi.ErrDenied
	}
	key, ok := memString(m, u32(stack, 0), u32(stack, 1), maxNameLen)
	if !ok {
		return nil, "", abi.ErrInvalid
	}
	if !ObjectKeyAllowed(st.pool.cfg.Tenant, key) {
		return nil, "", abi.ErrDenied
	}
	obj := st.pool.cfg.Env.Objects
	if obj == nil {
		return nil, "", abi.ErrUnavailable
	}
	if len(st.handles) >= maxHandles {
		return nil, "", abi.ErrTooLarge
	}
	return obj, key, 0
}

func (st *callState) addHandle(h *objHandle) int32 {
	if st.handles == nil {
		st.handles = map[int32]*objHandle{}
	}
	st.nextHandle++
	if st.nextHandle <= 0 {
		st.nextHandle = 1
	}
	st.handles[st.nextHandle] = h
	return st.nextHandle
}

// object_open(key, key_len) -> handle.
func fnObjectOpen(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	obj, key, code := st.objectKey(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	rc, _, err := obj.Get(ctx, key)
	if err != nil {
		if errors.Is(err, blob.ErrNotFound) {
			ret(stack, abi.ErrNotFound)
			return
		}
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, st.addHandle(&objHandle{r: rc}))
}

// object_create(key, key_len) -> handle: the object is written by
// object_write and committed by object_close.
func fnObjectCreate(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	obj, key, code := st.objectKey(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	pr, pw := io.Pipe()
	h := &objHandle{w: pw, done: make(chan error, 1)}
	go func() {
		_, err := obj.Put(ctx, key, pr)
		pr.CloseWithError(err)
		h.done <- err
	}()
	ret(stack, st.addHandle(h))
}

// object_read(handle, buf, cap) -> n; 0 at the end. The bytes go straight
// into guest memory.
func fnObjectRead(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	h := st.handles[api.DecodeI32(stack[0])]
	if h == nil || h.r == nil {
		ret(stack, abi.ErrBadHandle)
		return
	}
	n := u32(stack, 2)
	if n == 0 {
		ret(stack, 0)
		return
	}
	n = min(n, 1<<30)
	view, ok := memRead(m, u32(stack, 1), n)
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	for {
		k, err := h.r.Read(view)
		if k > 0 {
			ret(stack, int32(k))
			return
		}
		if err == io.EOF {
			ret(stack, 0)
			return
		}
		if err != nil {
			ret(stack, errCode(ctx, err))
			return
		}
	}
}

// object_write(handle, buf, len).
func fnObjectWrite(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	h := st.handles[api.DecodeI32(stack[0])]
	if h == nil || h.w == nil {
		ret(stack, abi.ErrBadHandle)
		return
	}
	b, ok := memRead(m, u32(stack, 1), u32(stack, 2))
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	if _, err := h.w.Write(b); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

// object_close(handle): release a reader; commit a writer.
func fnObjectClose(ctx context.Context, st *callState, _ api.Module, stack []uint64) {
	id := api.DecodeI32(stack[0])
	h := st.handles[id]
	if h == nil {
		ret(stack, abi.ErrBadHandle)
		return
	}
	delete(st.handles, id)
	if h.r != nil {
		h.r.Close()
		ret(stack, 0)
		return
	}
	h.w.Close()
	if err := <-h.done; err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

// closeHandles ends what the guest left open: readers are closed, writers
// abandoned (their object is not committed).
func (st *callState) closeHandles() {
	for id, h := range st.handles {
		if h.r != nil {
			h.r.Close()
		} else {
			h.w.CloseWithError(errAbandoned)
			<-h.done
		}
		delete(st.handles, id)
	}
}
