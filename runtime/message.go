package runtime

import "github.com/vrsky/vrsky/runtime/connector"

// Standard message headers (DESIGN.md, Transport); see package connector.
const (
	HeaderNatsMsgID     = connector.HeaderNatsMsgID
	HeaderMsgID         = connector.HeaderMsgID
	HeaderTenant        = connector.HeaderTenant
	HeaderIntegration   = connector.HeaderIntegration
	HeaderContentType   = connector.HeaderContentType
	HeaderTraceparent   = connector.HeaderTraceparent
	HeaderTracestate    = connector.HeaderTracestate
	HeaderPayloadRef    = connector.HeaderPayloadRef
	HeaderPayloadSize   = connector.HeaderPayloadSize
	HeaderPayloadSHA256 = connector.HeaderPayloadSHA256
	HeaderStage         = connector.HeaderStage
	HeaderError         = connector.HeaderError
	HeaderAttempts      = connector.HeaderAttempts
	HeaderAttemptLog    = connector.HeaderAttemptLog
)

type (
	// Header holds message headers; keys are canonical MIME header keys.
	Header = connector.Header
	// Message is one unit of work moving through a pipeline.
	Message = connector.Message
)

// NewID returns a new message id: a UUIDv7, so ids sort by creation time.
func NewID() string { return connector.NewID() }
