// Package runtime is VRSky's data plane. It parses integration specs,
// runs each integration as a pipeline over NATS JetStream
// (source → vrsky.<tenant>.<integration>.in → steps → .out.<sink> → sink),
// retries failed deliveries with backoff and dead-letters what cannot be
// delivered. The interfaces that connectors implement (Source, Step,
// Sink) and what they use are in package connector, which imports none
// of the engine; runtime re-exports them (connector.go, message.go,
// hooks.go). Built-in connectors and Wasm steps (package wasmstep, the
// only bridge to the Wasm host) plug in through a Catalog.
//
// Where things are:
//
//	engine.go      Engine: reconcile, Apply, Remove, CheckSpec, Status
//	pipeline.go    one integration on this node: start, step building, stop
//	streams.go     its stream and consumers; the shared helpers for
//	               publish acknowledgements, batches and attempt counts
//	emit.go        the source's Emitter (and direct routing without steps)
//	input.go       the input stage: steps, `when` routing, publishing
//	sinkrun.go     the sink stages: delivery, ack
//	dlq.go         retries and dead letters: write, list, replay, delete
//	claimcheck.go  claim-checked payloads and the pipeline's glue for them
//	tracking.go    per-stage message records and Trace
//	stage.go       Stage, the name of a place in a pipeline, and its wire form
//	catalog.go     Catalog: the connectors specs may name, and the Resolver
//	metrics.go     the Prometheus counters and the delivery histogram;
//	queuemetrics.go the DLQ-depth and pending gauges, read at scrape time
//	backpressure.go, lease.go, state.go, storage.go, spec.go, subjects.go;
//	connector.go, message.go, hooks.go re-export package connector
//
// RATIONALE.md says why it is built this way. Package runtimetest runs it
// in tests, with in-memory connectors.
package runtime
