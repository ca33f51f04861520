// Package connector is VRSky's connector SDK: what a connector implements
// (Source, Step, Sink, BatchSink) and what it uses (Message, Header,
// Emitter, State, Env, Hooks, SpecError, Permanent), and Connector, the
// catalogue entry that builds its instances.
//
// It is apart from the engine (package runtime) so that a connector can
// import it without linking the engine and what the engine links (the
// embedded NATS server, the Wasm runtime): package connector imports
// neither runtime nor host. Package runtime re-exports every name here,
// so engine code may keep using runtime.Message and the rest.
//
//	connector.go  Kind, Source, Binder, Emitter, Outcome, Step, Sink,
//	              BatchSink, State, Env, Connector, Permanent, Duration
//	message.go    Message, Header, the standard header names, NewID and
//	              claim-checked payloads (Body, Bytes)
//	hooks.go      webhooks: Hooks, HookRequest, HookResponse
package connector
