package runtime

import (
	"fmt"
	"strings"
)

// A Stage names where in a pipeline a message is, or failed: in tracking
// records (StageRecord.Stage), dead letters (DeadLetter.Stage, the
// Vrsky-Stage header), EmitWait's Outcome and the metrics' stage label.
// Its wire form, String, is "<kind>:<name>", or the kind alone for a
// stage without a name:
//
//	accepted       the source's message is durable
//	route          the input stage routed the steps' outputs (or, without
//	               steps, the emitter routed the message); as a dead
//	               letter: routing or publishing them failed, and a replay
//	               runs the steps again
//	route:<sink>   the sink's `when` could not be evaluated
//	step:<name>    a step
//	sink:<name>    a sink
type Stage struct {
	Kind StageKind
	// Name is the step's or sink's name: required for StageStep and
	// StageSink, optional for StageRoute, empty for StageAccepted.
	Name string
}

// StageKind is the part of a Stage before the colon.
type StageKind string

// Stage kinds.
const (
	StageAccepted StageKind = "accepted"
	StageRoute    StageKind = "route"
	StageStep     StageKind = "step"
	StageSink     StageKind = "sink"
)

// The stages without a name.
var (
	stageAccepted = Stage{Kind: StageAccepted}
	stageRoute    = Stage{Kind: StageRoute}
)

func stepStage(name string) Stage { return Stage{Kind: StageStep, Name: name} }
func sinkStage(name string) Stage { return Stage{Kind: StageSink, Name: name} }

// whenStage is where a message fails whose sink's `when` cannot be
// evaluated.
func whenStage(sink string) Stage { return Stage{Kind: StageRoute, Name: sink} }

// String is the stage's wire form: "sink:api", "route".
func (s Stage) String() string {
	if s.Name == "" {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.Name
}

// ParseStage parses a stage's wire form (see Stage). It refuses an unknown
// kind, a step or sink without a name, and an accepted stage with one.
func ParseStage(s string) (Stage, error) {
	kind, name, hasName := strings.Cut(s, ":")
	st := Stage{Kind: StageKind(kind), Name: name}
	switch {
	case hasName && name == "":
		return Stage{}, fmt.Errorf("stage %q: empty name", s)
	case st.Kind == StageAccepted && hasName:
		return Stage{}, fmt.Errorf("stage %q: the accepted stage has no name", s)
	case (st.Kind == StageStep || st.Kind == StageSink) && !hasName:
		return Stage{}, fmt.Errorf("stage %q: a %s stage needs a name (%s:<name>)", s, kind, kind)
	case st.Kind != StageAccepted && st.Kind != StageRoute && st.Kind != StageStep && st.Kind != StageSink:
		return Stage{}, fmt.Errorf("stage %q: unknown kind %q (accepted, route, step or sink)", s, kind)
	}
	return st, nil
}
