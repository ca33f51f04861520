// Package runtime is VRSky's data plane. It parses integration specs,
// runs each integration as a pipeline over NATS JetStream
// (source → vrsky.<tenant>.<integration>.in → steps → .out.<sink> → sink),
// retries failed deliveries with backoff and dead-letters what cannot be
// delivered. It owns the interfaces that connectors implement: Source,
// Step and Sink; built-in connectors and the Wasm host plug in through a
// Catalog.
//
// Where things are:
//
//	engine.go      Engine: reconcile, Apply, Remove, CheckSpec, Status
//	pipeline.go    one integration on this node: start, step building, stop
//	streams.go     its stream and consumers; the shared helpers for
//	               publish acknowledgements, batches and attempt counts
//	emit.go        the source's Emitter (and direct routing without steps)
//	input.go       the input stage: steps, `when` routing, publishing
//	sinkrun.go     the sink stages: delivery, double ack
//	dlq.go         retries and dead letters: write, list, replay, delete
//	claimcheck.go  claim-checked payloads and the pipeline's glue for them
//	tracking.go    per-stage message records and Trace
//	stage.go       Stage, the name of a place in a pipeline, and its wire form
//	backpressure.go, lease.go, state.go, storage.go, hooks.go, wasm.go,
//	connector.go, spec.go, subjects.go, message.go, metrics.go
//
// RATIONALE.md says why it is built this way. Package runtimetest runs it
// in tests, with in-memory connectors.
package runtime
