// Package telemetry is what a region process runs with beside the region:
// the OpenTelemetry SDK and its exporters (package region uses only the
// API), the Go runtime's settings (the GC), and the recordings benchmarks
// take of a run (a CPU profile, an execution trace).
package telemetry

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

// ErrOption marks an error in a setting given to this package: a usage
// error of the command that passed it.
var ErrOption = errors.New("bad option")

// Telemetry is the OpenTelemetry SDK a region process runs with (the SDK
// and its exporters live here; package region uses only the API): a meter
// provider read by the Prometheus exporter into a registry of its own,
// served at the region's /metrics together with Go runtime and process
// metrics, and, only when an OTLP endpoint is given, a tracer provider
// that batches spans to it. Without one tracing is off: no spans at all.
type Telemetry struct {
	Meters  *sdkmetric.MeterProvider
	Tracer  *sdktrace.TracerProvider // nil: tracing off
	Handler http.Handler             // the /metrics handler
}

// New sets up the telemetry of region name. otlpEndpoint (a URL,
// e.g. http://127.0.0.1:4318) turns tracing on, sampling the share sample
// of new traces (a request carrying a sampled traceparent is traced too).
func New(ctx context.Context, name, otlpEndpoint string, sample float64) (*Telemetry, error) {
	res := resource.NewSchemaless(attribute.String("service.name", "shortener"), attribute.String("region", name))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge(Build()))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t := &Telemetry{
		Meters:  sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res)),
		Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}),
	}
	if err := runtime.Start(runtime.WithMeterProvider(t.Meters), runtime.WithMinimumReadMemStatsInterval(5*time.Second)); err != nil {
		return nil, fmt.Errorf("runtime metrics: %w", err)
	}
	if otlpEndpoint == "" {
		return t, nil
	}
	if sample < 0 || sample > 1 {
		return nil, fmt.Errorf("%w: --trace-sample %v: want a share from 0 to 1", ErrOption, sample)
	}
	spans, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(otlpEndpoint))
	if err != nil {
		return nil, fmt.Errorf("%w: --otlp-endpoint %q: %w", ErrOption, otlpEndpoint, err)
	}
	t.Tracer = sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(sample))))
	return t, nil
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	err := t.Meters.Shutdown(ctx)
	if t.Tracer != nil {
		err = errors.Join(err, t.Tracer.Shutdown(ctx))
	}
	return err
}
