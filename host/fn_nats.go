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

// SubjectAllowed reports whether a guest of tenant may publish or send a
// request on subject (ABI.md §5, "Capabilities and their scope"). Guests
// have a namespace of their own, which no stream of the platform captures:
//
//   - "vrsky.<tenant>._app.<token>[.<token>…]", the guests' namespace:
//     "_app" can be neither an integration name (those are DNS labels) nor
//     "dlq";
//   - "vrsky.<tenant>.<token>", one token after the tenant, as v1 allowed:
//     the platform's subjects all have at least two.
//
// Everything else is refused, in particular the platform's own subjects
// under the tenant: an integration's "vrsky.<tenant>.<integration>.in" and
// ".out.<sink>" (its stream captures "vrsky.<tenant>.<integration>.>") and
// the dead letters, "vrsky.<tenant>.dlq.>". Tokens must be non-empty and
// hold no wildcard ("*", ">") or whitespace.
func SubjectAllowed(tenant, subject string) bool {
	rest, ok := strings.CutPrefix(subject, "vrsky."+tenant+".")
	if tenant == "" || !ok || rest == "" {
		return false
	}
	toks := strings.Split(rest, ".")
	for _, tok := range toks {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n*>") {
			return false
		}
	}
	return len(toks) == 1 || toks[0] == abi.SubjectAppToken
}

// errCode maps a backend error to an ABI error code.
func errCode(ctx context.Context, err error) int32 {
	switch {
	case errors.Is(err, ErrNotFound):
		return abi.ErrNotFound
	case errors.Is(err, ErrDenied):
		return abi.ErrDenied
	case errors.Is(err, ErrTooLarge):
		return abi.ErrTooLarge
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
