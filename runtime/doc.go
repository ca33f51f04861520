// Package runtime is VRSky's data plane. It parses integration specs,
// runs each integration as a pipeline over NATS JetStream
// (source → vrsky.<tenant>.<integration>.in → steps → .out.<sink> → sink),
// retries failed deliveries with backoff and dead-letters what cannot be
// delivered. It owns the interfaces that connectors implement: Source,
// Step and Sink; built-in connectors and the Wasm host plug in through a
// Catalog.
package runtime
