package runtime

import "github.com/vrsky/vrsky/runtime/connector"

// The connector SDK lives in package connector (see its doc and
// RATIONALE.md, "Why a connector package apart from the engine?"); these
// are its names re-exported, so that engine code and its callers may keep
// saying runtime.Message. Connectors import package connector.

// Kind says where in a pipeline a connector goes.
type Kind = connector.Kind

const (
	KindSource = connector.KindSource
	KindStep   = connector.KindStep
	KindSink   = connector.KindSink
)

type (
	Source      = connector.Source
	Binder      = connector.Binder
	Emitter     = connector.Emitter
	Outcome     = connector.Outcome
	Step        = connector.Step
	StepResult  = connector.StepResult
	Sink        = connector.Sink
	BatchSink   = connector.BatchSink
	Batching    = connector.Batching
	State       = connector.State
	Env         = connector.Env
	StepStorage = connector.StepStorage
	Connector   = connector.Connector
	// SpecError is a spec that failed validation; Field names what to fix.
	SpecError = connector.SpecError
	// Duration is a time.Duration that reads and writes as "1s", "250ms".
	Duration = connector.Duration
)

// OutcomePending is the Outcome status of a wait that ended before the
// steps took the message.
const OutcomePending = connector.OutcomePending

// ErrNoState: the key has no value.
var ErrNoState = connector.ErrNoState

// Permanent marks err as not worth retrying: the message goes to the
// dead-letter queue at once.
func Permanent(err error) error { return connector.Permanent(err) }

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool { return connector.IsPermanent(err) }
