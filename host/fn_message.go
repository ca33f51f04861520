package host

import (
	"context"
	"log/slog"
	"slices"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
)

// The message group: input, headers, emit, forward, status, config, log
// and result.

const (
	maxNameLen   = 4 << 10  // header names, subjects, keys, methods
	maxStatusLen = 16 << 10 // status messages, log lines (longer are cut)
)

// input(index, buf, cap) -> size: select message index and copy its data.
func fnInput(_ context.Context, st *callState, m api.Module, stack []uint64) {
	idx := api.DecodeI32(stack[0])
	if idx < 0 || int(idx) >= len(st.msgs) {
		ret(stack, abi.ErrInvalid)
		return
	}
	st.selectMessage(int(idx))
	ret(stack, st.putResult(m, u32(stack, 1), u32(stack, 2), st.msgs[idx].Data))
}

// header_get(name, name_len, buf, cap) -> size | ErrNotFound.
func fnHeaderGet(_ context.Context, st *callState, m api.Module, stack []uint64) {
	if _, ok := st.current(); !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	name, ok := memString(m, u32(stack, 0), u32(stack, 1), maxNameLen)
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	v, found := st.headerGet(name)
	if !found {
		ret(stack, abi.ErrNotFound)
		return
	}
	ret(stack, st.putResult(m, u32(stack, 2), u32(stack, 3), []byte(v)))
}

// header_list(buf, cap) -> size: every header of the current input, sorted
// by name, as "Name: value\n" lines (first value of each).
func fnHeaderList(_ context.Context, st *callState, m api.Module, stack []uint64) {
	i, ok := st.current()
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	h := st.msgs[i].Headers
	names := make([]string, 0, len(h))
	for k, v := range h {
		if len(v) > 0 {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b []byte
	for _, k := range names {
		b = append(append(append(append(b, k...), ": "...), h[k][0]...), '\n')
	}
	ret(stack, st.putResult(m, u32(stack, 0), u32(stack, 1), b))
}

// header_set(name, name_len, val, val_len): set a header on the current
// message's outputs from now on. The header budget is charged before the
// name and value are copied out of guest memory.
func fnHeaderSet(_ context.Context, st *callState, m api.Module, stack []uint64) {
	if _, ok := st.current(); !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	nameLen, valLen := u32(stack, 1), u32(stack, 3)
	name, ok1 := memRead(m, u32(stack, 0), nameLen)
	val, ok2 := memRead(m, u32(stack, 2), valLen)
	if !ok1 || !ok2 || nameLen == 0 || nameLen > maxNameLen {
		ret(stack, abi.ErrInvalid)
		return
	}
	if code := st.admitHeader(int(nameLen) + int(valLen)); code != 0 {
		ret(stack, code)
		return
	}
	st.putHeader(string(name), string(val))
	ret(stack, 0)
}

// emit(buf, len): one output for the current message, copied once the
// call's output budget has admitted it.
func fnEmit(_ context.Context, st *callState, m api.Module, stack []uint64) {
	b, ok := memRead(m, u32(stack, 0), u32(stack, 1))
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	if code := st.admitOutput(len(b)); code != 0 {
		ret(stack, code)
		return
	}
	st.appendOutput(append([]byte(nil), b...))
	ret(stack, 0)
}

// forward(): the current input, unchanged, as an output (no copy).
func fnForward(_ context.Context, st *callState, _ api.Module, stack []uint64) {
	i, ok := st.current()
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	ret(stack, st.addOutput(st.msgs[i].Data))
}

// status(code, msg, msg_len): the current message's outcome.
func fnStatus(_ context.Context, st *callState, m api.Module, stack []uint64) {
	i, ok := st.current()
	code := abi.Status(api.DecodeI32(stack[0]))
	if !ok || code < abi.StatusOK || code > abi.StatusPermanent {
		ret(stack, abi.ErrInvalid)
		return
	}
	n := min(u32(stack, 2), maxStatusLen)
	text, ok := memString(m, u32(stack, 1), n, maxStatusLen)
	if !ok {
		ret(stack, abi.ErrInvalid)
		return
	}
	if st.use[i].stopped() { // a budget's failure or deferral stands
		ret(stack, 0)
		return
	}
	r := &st.results[i]
	r.Status, r.Error = code, text
	ret(stack, 0)
}

// config(buf, cap) -> size: the step's configuration.
func fnConfig(_ context.Context, st *callState, m api.Module, stack []uint64) {
	ret(stack, st.putResult(m, u32(stack, 0), u32(stack, 1), st.pool.cfg.Config))
}

// log(level, msg, msg_len).
func fnLog(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	n := min(u32(stack, 2), maxStatusLen)
	text, ok := memString(m, u32(stack, 1), n, maxStatusLen)
	if !ok {
		return
	}
	level := slog.LevelInfo
	switch api.DecodeI32(stack[0]) {
	case abi.LogDebug:
		level = slog.LevelDebug
	case abi.LogWarn:
		level = slog.LevelWarn
	case abi.LogError:
		level = slog.LevelError
	}
	if i, ok := st.current(); ok {
		st.pool.log.Log(ctx, level, text, "msg_id", st.msgs[i].ID)
		return
	}
	st.pool.log.Log(ctx, level, text)
}

// result(buf, cap) -> size: the value held by the last call that returned
// a size larger than its buffer.
func fnResult(_ context.Context, st *callState, m api.Module, stack []uint64) {
	if st.last == nil {
		ret(stack, abi.ErrNotFound)
		return
	}
	ret(stack, st.putResult(m, u32(stack, 0), u32(stack, 1), st.last))
}
