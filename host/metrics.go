package host

import (
	"errors"
	"time"
)

// Observer receives the host's measurements: guest calls and
// compilations. The host keeps no metrics library in its API; vrsky serve
// passes one backed by Prometheus (runtime.Metrics.WasmObserver). Its
// methods must be cheap and safe for concurrent use: Call runs once per
// guest call.
type Observer interface {
	// Pool returns the CallObserver of a new pool of module (name@version,
	// or the name without a version), taken once per pool.
	Pool(module string) CallObserver
	// Compiled reports one compilation that the in-memory cache did not
	// answer.
	Compiled(trusted bool, took time.Duration)
}

// CallObserver receives a pool's guest calls.
type CallObserver interface {
	// Call reports one guest call over messages messages.
	Call(messages int, took time.Duration, outcome CallOutcome)
}

// CallOutcome is how a guest call ended.
type CallOutcome int

const (
	// CallOK: the call returned (each message has its own status).
	CallOK CallOutcome = iota
	// CallTrap: the guest trapped, exited or overran its memory; the
	// instance was discarded.
	CallTrap
	// CallTimeout: the call's deadline passed (untrusted modules); the
	// instance was discarded.
	CallTimeout
)

// errDeadline marks the error of a call whose deadline passed (callError).
var errDeadline = errors.New("guest deadline exceeded")

// callOutcome classifies a call's error; broken: the instance was
// discarded without one (a memory overrun).
func callOutcome(err error, broken bool) CallOutcome {
	switch {
	case errors.Is(err, errDeadline):
		return CallTimeout
	case err != nil || broken:
		return CallTrap
	default:
		return CallOK
	}
}

// PoolStats sums the Stats of the runtime's open pools by module
// (name@version), for gauges read when they are scraped.
func (r *Runtime) PoolStats() map[string]Stats {
	r.mu.Lock()
	pools := make([]*Pool, 0, len(r.pools))
	for p := range r.pools {
		pools = append(pools, p)
	}
	r.mu.Unlock()
	out := map[string]Stats{}
	for _, p := range pools {
		s, sum := p.Stats(), out[p.mod.label()]
		sum.Live += s.Live
		sum.Idle += s.Idle
		sum.IdleMemoryBytes += s.IdleMemoryBytes
		sum.Created += s.Created
		sum.Discarded += s.Discarded
		sum.Calls += s.Calls
		sum.Messages += s.Messages
		out[p.mod.label()] = sum
	}
	return out
}

// label names m in the metrics: name@version, or name.
func (m *Module) label() string {
	if m.spec.Version == "" {
		return m.spec.Name
	}
	return m.spec.Name + "@" + m.spec.Version
}

type nopObserver struct{}

func (nopObserver) Pool(string) CallObserver             { return nopObserver{} }
func (nopObserver) Compiled(bool, time.Duration)         {}
func (nopObserver) Call(int, time.Duration, CallOutcome) {}
