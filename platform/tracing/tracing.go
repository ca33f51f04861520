// Package tracing sets up OpenTelemetry tracing for vrsky serve: a tracer
// provider that batches the engine's spans and exports them over OTLP/HTTP
// (protobuf) to a collector. Without an endpoint there is no provider, and
// the engine records no spans (runtime.Config.Tracing).
package tracing

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// TracesPath is the OTLP/HTTP path of traces, added to an endpoint URL
// that has no path of its own.
const TracesPath = "/v1/traces"

// Config says where spans go and what names the process in them.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP URL, http or https; without a
	// path, TracesPath is used ("http://collector:4318" sends to
	// http://collector:4318/v1/traces).
	Endpoint string
	// ServiceVersion is the service.version resource attribute.
	ServiceVersion string
	// InstanceID, when set, is the service.instance.id resource attribute.
	InstanceID string
}

// New returns a provider exporting to cfg.Endpoint. Its spans are sent in
// batches; Shutdown sends what is left. Standard OTEL_* variables tune the
// batches and the exporter (OTEL_BSP_SCHEDULE_DELAY,
// OTEL_EXPORTER_OTLP_HEADERS, ...); the endpoint is always cfg's.
func New(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	u, err := endpointURL(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u))
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", u, err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", "vrsky")}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	if cfg.InstanceID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.InstanceID))
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		// A caller that sampled its span out gets none of ours either.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	), nil
}

// endpointURL checks raw and adds TracesPath when it has no path.
func endpointURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("otlp endpoint %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("otlp endpoint %q: want an http:// or https:// URL with a host, such as http://localhost:4318", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = TracesPath
	}
	return u.String(), nil
}
