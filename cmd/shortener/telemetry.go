package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/runtime"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// telemetry is the OpenTelemetry SDK a region runs with (the SDK and its
// exporters live here, in cmd; the region uses only the API): a meter
// provider read by the Prometheus exporter into a registry of its own,
// served at the region's /metrics together with Go runtime and process
// metrics, and, only when an OTLP endpoint is given, a tracer provider
// that batches spans to it. Without one tracing is off: no spans at all.
type telemetry struct {
	meters  *sdkmetric.MeterProvider
	tracer  *sdktrace.TracerProvider // nil: tracing off
	handler http.Handler
}

// newTelemetry sets up the telemetry of region name. otlpEndpoint (a URL,
// e.g. http://127.0.0.1:4318) turns tracing on, sampling the share sample
// of new traces (a request carrying a sampled traceparent is traced too).
func newTelemetry(ctx context.Context, name, otlpEndpoint string, sample float64) (*telemetry, error) {
	res := resource.NewSchemaless(attribute.String("service.name", "shortener"), attribute.String("region", name))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t := &telemetry{
		meters:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res)),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}
	if err := runtime.Start(runtime.WithMeterProvider(t.meters), runtime.WithMinimumReadMemStatsInterval(5*time.Second)); err != nil {
		return nil, fmt.Errorf("runtime metrics: %w", err)
	}
	if otlpEndpoint == "" {
		return t, nil
	}
	if sample < 0 || sample > 1 {
		return nil, usageError{fmt.Errorf("--trace-sample %v: want a share from 0 to 1", sample)}
	}
	spans, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpEndpoint))
	if err != nil {
		return nil, usageError{fmt.Errorf("--otlp-endpoint %q: %w", otlpEndpoint, err)}
	}
	t.tracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))))
	return t, nil
}

// Shutdown flushes and stops the providers.
func (t *telemetry) Shutdown(ctx context.Context) error {
	err := t.meters.Shutdown(ctx)
	if t.tracer != nil {
		err = errors.Join(err, t.tracer.Shutdown(ctx))
	}
	return err
}
