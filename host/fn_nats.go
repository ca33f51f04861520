package host

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/vrsky/vrsky/abi"
)

// The NATS group: publish and request, on the tenant's own subjects only.

const (
	defaultRequestTimeout = 5 * time.Second
	maxRequestTimeout     = time.Minute
	capabilityTimeout     = 30 * time.Second
)

// SubjectAllowed reports whether a guest of tenant may use subject: it
// must lie under "vrsky.<tenant>." and hold no wildcard, whitespace or
// empty token.
func SubjectAllowed(tenant, subject string) bool {
	prefix := "vrsky." + tenant + "."
	if tenant == "" || !strings.HasPrefix(subject, prefix) || len(subject) == len(prefix) {
		return false
	}
	for _, tok := range strings.Split(subject, ".") {
		if tok == "" || tok == "*" || tok == ">" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return true
}

// errCode maps a backend error to an ABI error code.
func errCode(ctx context.Context, err error) int32 {
	switch {
	case errors.Is(err, ErrNotFound):
		return abi.ErrNotFound
	case errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil:
		return abi.ErrTimeout
	}
	return abi.ErrUnavailable
}

func (st *callState) natsArgs(m api.Module, stack []uint64) (Messaging, string, []byte, int32) {
	if !st.pool.mod.spec.Capabilities.NATS {
		return nil, "", nil, abi.ErrDenied
	}
	subj, ok1 := memString(m, u32(stack, 0), u32(stack, 1), maxNameLen)
	data, ok2 := memRead(m, u32(stack, 2), u32(stack, 3))
	if !ok1 || !ok2 {
		return nil, "", nil, abi.ErrInvalid
	}
	if !SubjectAllowed(st.pool.cfg.Tenant, subj) {
		st.pool.log.Warn("nats subject denied", "subject", subj)
		return nil, "", nil, abi.ErrDenied
	}
	msg := st.pool.cfg.Env.Messaging
	if msg == nil {
		return nil, "", nil, abi.ErrUnavailable
	}
	return msg, subj, data, 0
}

// nats_publish(subj, subj_len, data, data_len).
func fnNATSPublish(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	msg, subj, data, code := st.natsArgs(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, capabilityTimeout)
	defer cancel()
	if err := msg.Publish(ctx, subj, append([]byte(nil), data...)); err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, 0)
}

// nats_request(subj, subj_len, data, data_len, timeout_ms, buf, cap) -> size.
func fnNATSRequest(ctx context.Context, st *callState, m api.Module, stack []uint64) {
	msg, subj, data, code := st.natsArgs(m, stack)
	if code != 0 {
		ret(stack, code)
		return
	}
	timeout := time.Duration(u32(stack, 4)) * time.Millisecond
	if timeout <= 0 {
		timeout = defaultRequestTimeout
	}
	timeout = min(timeout, maxRequestTimeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reply, err := msg.Request(ctx, subj, append([]byte(nil), data...), timeout)
	if err != nil {
		ret(stack, errCode(ctx, err))
		return
	}
	ret(stack, st.putResult(m, u32(stack, 5), u32(stack, 6), reply))
}

func msDuration(ms uint32) time.Duration { return time.Duration(ms) * time.Millisecond }
