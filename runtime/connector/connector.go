package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vrsky/vrsky/platform/egress"
	"github.com/vrsky/vrsky/platform/schema"
)

// Kind says where in a pipeline a connector goes.
type Kind string

const (
	KindSource Kind = "source"
	KindStep   Kind = "step"
	KindSink   Kind = "sink"
)

// Source produces messages for one integration.
type Source interface {
	// Run emits messages until ctx is cancelled, then returns nil. An
	// error ends the source and is reported in the integration's status.
	Run(ctx context.Context, emit Emitter) error
}

// Binder is a Source that claims something before it serves, as a
// webhook claims its path. The pipeline calls Bind before the integration
// counts as running, so that a request right after the start finds it and
// a conflict fails the start; release is called once Run has returned.
// Singleton sources are not bound: they run only where they hold the lease.
type Binder interface {
	Bind(emit Emitter) (release func(), err error)
}

// Emitter makes a source's messages durable.
type Emitter interface {
	// Emit stores msg on the integration's input subject and returns once
	// JetStream has acknowledged it. msg.ID is assigned when empty and is
	// the dedup key: emitting the same ID twice within the dedup window
	// stores it once.
	Emit(ctx context.Context, msg *Message) error
	// EmitBatch stores msgs and returns once JetStream has acknowledged
	// every one of them. On error some may be durable and some not; emit
	// them again with the same IDs and the duplicates are dropped.
	EmitBatch(ctx context.Context, msgs []*Message) error
	// EmitWait stores msg like Emit, then waits until the steps have taken
	// it (passed, filtered or failed) or ctx ends. The message is durable
	// once the Emit part returns, so a timeout is not a failure: Outcome
	// is then "pending".
	EmitWait(ctx context.Context, msg *Message) (Outcome, error)
}

// Outcome is what the steps made of a message (see EmitWait).
type Outcome struct {
	// Status is StatusPassed, StatusFiltered, StatusFailed (the step
	// failure that will be retried or dead-lettered is in Error) or
	// "pending" when the wait ended first.
	Status string `json:"status"`
	// Error is the failing step's error, for StatusFailed.
	Error string `json:"error,omitempty"`
	// Stage names the failing step, for StatusFailed.
	Stage string `json:"stage,omitempty"`
}

// Outcome statuses, as the engine's stage records name them.
const (
	StatusPassed   = "passed"
	StatusFiltered = "filtered"
	StatusFailed   = "failed"
)

// OutcomePending is the Outcome status of a wait that ended before the
// steps took the message.
const OutcomePending = "pending"

// Step transforms or filters a batch of messages.
type Step interface {
	// Process returns one result per input message, in order.
	Process(ctx context.Context, batch []*Message) ([]StepResult, error)
	// Close releases the step's resources.
	Close() error
}

// StepResult is what a step made of one input message: zero or more
// outputs (zero means the message is dropped), or an error. Wrap the error
// with Permanent when retrying cannot help.
type StepResult struct {
	Out []*Message
	Err error
}

// Sink delivers messages to a destination.
type Sink interface {
	// Deliver sends msg; nil means the destination has it. Wrap the error
	// with Permanent when retrying cannot help (e.g. a 400 from an API).
	Deliver(ctx context.Context, msg *Message) error
	// Close releases the sink's resources.
	Close() error
}

// BatchSink is a Sink that delivers several messages at once: a COPY into
// a table, a JSON array in one POST. The pipeline hands it up to
// Batching().MaxMessages messages, waiting at most MaxWait for a batch to
// fill, on Concurrency workers.
type BatchSink interface {
	Sink
	// DeliverBatch delivers msgs. It returns nil when every message was
	// delivered, or one error per message, in order (nil for a message
	// that was delivered), so one bad row fails alone.
	DeliverBatch(ctx context.Context, msgs []*Message) []error
	// Batching says how the pipeline should batch for this sink.
	Batching() Batching
}

// Batching tunes how a BatchSink is fed. Zero fields take defaults:
// 500 messages, 50ms, 4 workers.
type Batching struct {
	MaxMessages int
	MaxWait     time.Duration
	Concurrency int
}

// State is a small key-value store scoped to one connector of one
// integration, kept across restarts and shared by every node: a source's
// checkpoint (the file offset it reached, the last schedule tick).
// Keys are made of letters, digits, '-', '_', '=' and '.'.
type State interface {
	// Get returns the value of key, or ErrNoState.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Keys lists the keys that exist.
	Keys(ctx context.Context) ([]string, error)
}

// ErrNoState: the key has no value.
var ErrNoState = errors.New("no state under this key")

// Env is what a connector may use besides its config.
type Env struct {
	// Tenant and Integration name the pipeline the connector runs in.
	Tenant, Integration string
	// Name is the step or sink name ("" for the source).
	Name string
	// Hooks routes webhook requests to sources that serve them.
	Hooks *Hooks
	// Logger is scoped to the connector.
	Logger *slog.Logger
	// State keeps the connector's checkpoints; nil outside a pipeline
	// that has one (Check and Remove get it too).
	State State
	// Egress is what the connector may connect to: outbound connectors
	// dial through Egress.Control.
	Egress egress.Policy

	// Storage is the integration's step storage, set by the engine for
	// the steps of a running integration only (nil elsewhere). It is for
	// engine-side step adapters, the Wasm step (runtime/wasmstep): a Go
	// connector keeps its checkpoints in State.
	Storage StepStorage
	// GuestNATS, set by the engine like Storage, returns the tenant's
	// connection for Wasm guests' NATS functions: a user of the tenant's
	// own account allowed the guests' subjects only.
	GuestNATS func(ctx context.Context) (*nats.Conn, error)
}

// StepStorage is what the engine stores for the steps of one integration
// (Env.Storage), deleted with the integration.
type StepStorage interface {
	// KV returns the integration's own bounded key-value bucket (the Wasm
	// ABI's kv_* functions), creating it on first use. It fails once the
	// integration has stopped.
	KV(ctx context.Context) (jetstream.KeyValue, error)
}

// Connector describes one connector in the catalogue and builds instances.
// Exactly one of NewSource, NewStep, NewSink is set, matching Kind.
type Connector struct {
	// Name is unique in the catalogue, e.g. "http-webhook".
	Name string
	// Version is the connector's version (semver).
	Version string
	// Kind is where the connector goes in a pipeline.
	Kind Kind
	// Description is one line for the catalogue.
	Description string
	// ConfigSchema is the JSON Schema of the connector's config.
	ConfigSchema json.RawMessage
	// Builtin marks native Go connectors (as opposed to Wasm modules).
	Builtin bool

	NewSource func(cfg json.RawMessage, env Env) (Source, error)
	NewStep   func(cfg json.RawMessage, env Env) (Step, error)
	NewSink   func(cfg json.RawMessage, env Env) (Sink, error)

	// Singleton runs the source on one node at a time: the node holding
	// the integration's lease. Sources that own something outside VRSky
	// (a replication slot, a directory, a schedule) set it; webhooks
	// don't, so every node serves them.
	Singleton bool
	// Check, when set, verifies a config against the world at create and
	// update time (the table exists, its columns match). A *SpecError
	// names the field; other errors are reported on "config".
	Check func(ctx context.Context, cfg json.RawMessage, env Env) error
	// Remove, when set, releases what the connector holds outside VRSky
	// when its integration is deleted (a replication slot).
	Remove func(ctx context.Context, cfg json.RawMessage, env Env) error

	// Owner, when set, is the only tenant that may use the connector (a
	// private module in the registry); to every other tenant it is an
	// unknown connector (ParseSpecFor).
	Owner string
}

// SpecError is a config (or spec) that failed validation; Field names
// what to fix, e.g. "config.url".
type SpecError = schema.FieldError

// ErrBackpressure: the integration's stream is (nearly) full; retry later.
// Emit returns it; a webhook answers 429 with Retry-After.
var ErrBackpressure = errors.New("integration is at its storage limit; retry later")

// Duration is a time.Duration that reads and writes as "1s", "250ms".
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string like \"1s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// permanentError marks an error that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the message goes to the
// dead-letter queue at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err (or an error it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Names of the quotas a QuotaError names, as the tenant API spells them.
const (
	QuotaMessagesPerSecond = "quotas.max_messages_per_second"
	QuotaStorageBytes      = "quotas.max_storage_bytes"
)

// QuotaError is a message a tenant quota refused. A webhook answers 429
// with Retry-After, naming Quota; for the storage quota, 507 when
// JetStream refused the write (the tenant's account is full), and 429 when
// the engine refused it first, at 90% of the quota (Err is then
// ErrBackpressure).
type QuotaError struct {
	// Quota names the quota as the tenant API spells it, e.g.
	// "quotas.max_messages_per_second".
	Quota string
	// Reason says what was exceeded, for people.
	Reason string
	// RetryAfter is when a retry may succeed; zero when unknown.
	RetryAfter time.Duration
	// Err is JetStream's refusal, when it was JetStream that refused, or
	// ErrBackpressure for the storage quota's back-pressure.
	Err error
}

func (e *QuotaError) Error() string { return e.Reason + " (" + e.Quota + ")" }

func (e *QuotaError) Unwrap() error { return e.Err }
