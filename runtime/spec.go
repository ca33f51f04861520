package runtime

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vrsky/vrsky/platform/schema"
	"github.com/vrsky/vrsky/platform/yamljson"
)

// Spec is an integration: a source, steps in order, and one or more sinks.
// It is immutable once parsed.
type Spec struct {
	// Name is unique within the tenant and is a NATS subject token.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Source produces the integration's messages.
	Source ConnectorSpec `json:"source"`
	// Steps transform or filter each message, in order.
	Steps []StepSpec `json:"steps,omitempty"`
	// Sinks receive every message whose `when` holds.
	Sinks []SinkSpec `json:"sinks"`
	// Retry governs redelivery of failed steps and sinks.
	Retry RetryPolicy `json:"retry"`
}

// ConnectorSpec names a connector and its configuration.
type ConnectorSpec struct {
	// Connector is a catalogue name, optionally pinned: "jq" or "jq@1.0.0".
	Connector string `json:"connector"`
	// Config is validated against the connector's JSON Schema.
	Config json.RawMessage `json:"config,omitempty"`
}

// StepSpec is one converter or filter.
type StepSpec struct {
	// Name labels the step in tracking and the DLQ; defaults to "step-<n>".
	Name string `json:"name,omitempty"`
	ConnectorSpec
}

// SinkSpec is one destination.
type SinkSpec struct {
	// Name is unique within the integration and is a NATS subject token.
	Name string `json:"name"`
	// When is an expr-lang boolean over the message's JSON fields; empty
	// means every message.
	When string `json:"when,omitempty"`
	ConnectorSpec
}

// RetryPolicy: attempts in all (first try included) and exponential backoff
// between them, capped.
type RetryPolicy struct {
	MaxAttempts    int      `json:"max_attempts"`
	InitialBackoff Duration `json:"initial_backoff"`
	MaxBackoff     Duration `json:"max_backoff"`
}

// Default retry policy (DESIGN.md): 3 attempts, 1s doubling to at most 30s.
var DefaultRetry = RetryPolicy{MaxAttempts: 3, InitialBackoff: Duration(time.Second), MaxBackoff: Duration(30 * time.Second)}

// Backoff returns the delay before attempt n+1 after n failed attempts (n ≥ 1).
func (r RetryPolicy) Backoff(n int) time.Duration {
	d := time.Duration(r.InitialBackoff)
	for i := 1; i < n && d < time.Duration(r.MaxBackoff); i++ {
		d *= 2
	}
	return min(d, time.Duration(r.MaxBackoff))
}

//go:embed spec.schema.json
var specSchemaJSON []byte

var specSchema = schema.MustCompile("integration-spec", specSchemaJSON)

func specErr(field, format string, args ...any) *SpecError {
	return &SpecError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ParseSpec reads a spec from YAML 1.2 or JSON, rejects unknown fields and
// structural errors, and checks every connector, config and expression
// against the catalogue. The returned error is a *SpecError naming the field.
// Connectors private to a tenant are not checked against the caller's
// tenant: use ParseSpecFor for specs a tenant submits.
func ParseSpec(doc []byte, cat *Catalog) (*Spec, error) { return ParseSpecFor(doc, cat, "") }

// ParseSpecFor is ParseSpec for a spec submitted by tenant: a connector
// private to another tenant is an unknown connector.
func ParseSpecFor(doc []byte, cat *Catalog, tenant string) (*Spec, error) {
	if len(bytes.TrimSpace(doc)) == 0 {
		return nil, specErr("", "the spec is empty")
	}
	// YAML 1.2: `sep: n` in a step's config is the string "n", not false.
	js, err := yamljson.ToJSON(doc)
	if err != nil {
		return nil, specErr("", "not valid YAML or JSON: %v", err)
	}
	generic, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, specErr("", "not valid YAML or JSON: %v", err)
	}
	if _, ok := generic.(map[string]any); !ok {
		return nil, specErr("", "the spec must be an object")
	}
	if fe := specSchema.Validate(generic, ""); fe != nil {
		return nil, fe
	}
	var s Spec
	if err := json.Unmarshal(js, &s); err != nil {
		return nil, specErr("", "%v", err)
	}
	if err := s.check(cat, tenant); err != nil {
		return nil, err
	}
	return &s, nil
}

// check applies the rules a schema cannot express and fills defaults.
func (s *Spec) check(cat *Catalog, tenant string) error {
	if s.Name == "dlq" {
		return specErr("name", "\"dlq\" is reserved (the tenant's dead-letter subjects use it)")
	}
	if s.Retry.MaxAttempts == 0 {
		s.Retry.MaxAttempts = DefaultRetry.MaxAttempts
	}
	if s.Retry.InitialBackoff == 0 {
		s.Retry.InitialBackoff = DefaultRetry.InitialBackoff
	}
	if s.Retry.MaxBackoff == 0 {
		s.Retry.MaxBackoff = max(DefaultRetry.MaxBackoff, s.Retry.InitialBackoff)
	}
	if s.Retry.MaxBackoff < s.Retry.InitialBackoff {
		return specErr("retry.max_backoff", "must not be less than initial_backoff (%s)", time.Duration(s.Retry.InitialBackoff))
	}
	if err := cat.checkConfig(KindSource, &s.Source, "source", tenant); err != nil {
		return err
	}
	for i := range s.Steps {
		st := &s.Steps[i]
		field := fmt.Sprintf("steps[%d]", i)
		if st.Name == "" {
			st.Name = fmt.Sprintf("step-%d", i+1)
		}
		if err := cat.checkConfig(KindStep, &st.ConnectorSpec, field, tenant); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for i := range s.Sinks {
		sk := &s.Sinks[i]
		field := fmt.Sprintf("sinks[%d]", i)
		if seen[sk.Name] {
			return specErr(field+".name", "duplicate sink name %q", sk.Name)
		}
		seen[sk.Name] = true
		if sk.When != "" {
			if _, err := compileWhen(sk.When); err != nil {
				return specErr(field+".when", "invalid expression: %v", firstLine(err.Error()))
			}
		}
		if err := cat.checkConfig(KindSink, &sk.ConnectorSpec, field, tenant); err != nil {
			return err
		}
	}
	return nil
}

// JSON renders the spec canonically, defaults filled in.
func (s *Spec) JSON() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("runtime: marshal spec: %v", err)) // all fields are marshalable
	}
	return b
}

// compileWhen compiles a routing condition. Fields of the message's JSON
// object are top-level variables; fields a message lacks are nil.
func compileWhen(src string) (*vm.Program, error) {
	return expr.Compile(src, expr.AsBool(), expr.AllowUndefinedVariables())
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// each calls fn for the source, every step and every sink, with the
// connector's stage name ("" for the source, as in Env.Name) and its field
// path in the spec.
func (s *Spec) each(fn func(kind Kind, cs *ConnectorSpec, stage, field string)) {
	fn(KindSource, &s.Source, "", "source")
	for i := range s.Steps {
		fn(KindStep, &s.Steps[i].ConnectorSpec, s.Steps[i].Name, fmt.Sprintf("steps[%d]", i))
	}
	for i := range s.Sinks {
		fn(KindSink, &s.Sinks[i].ConnectorSpec, s.Sinks[i].Name, fmt.Sprintf("sinks[%d]", i))
	}
}
