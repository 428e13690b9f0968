package esotel_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgevent/es"
	"github.com/pgevent/es/esotel"
	"github.com/pgevent/es/memstore"
)

type opened struct{ Owner string }

type account struct {
	es.AggregateBase
	Owner string
}

func (a *account) Apply(e any) error {
	if o, ok := e.(opened); ok {
		a.Owner = o.Owner
	}
	return nil
}

// setup returns an instrumentation recording into in-memory exporters.
func setup(t *testing.T) (*esotel.Instrumentation, *tracetest.InMemoryExporter, *sdkmetric.ManualReader, trace.Tracer) {
	t.Helper()
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	in, err := esotel.New(&esotel.Config{TracerProvider: tp, MeterProvider: mp})
	require.NoError(t, err)
	return in, spans, reader, tp.Tracer("test")
}

// metrics collects the metrics by name.
func metrics(t *testing.T, reader *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func TestTraceFromSaveToHandler(t *testing.T) {
	in, spans, reader, tracer := setup(t)
	mem := memstore.New(nil)
	store := in.Store(mem)
	reg := es.NewRegistry()
	require.NoError(t, es.Register[opened](reg, "Opened"))
	repo, err := es.NewRepository(store, reg, func() *account { return &account{} }, nil)
	require.NoError(t, err)

	// A request saves an account within its span.
	ctx, request := tracer.Start(context.Background(), "request")
	acc := repo.New("a1")
	require.NoError(t, es.Record(acc, opened{Owner: "Ada"}))
	res, err := repo.Save(in.Inject(es.WithMetadata(ctx, es.Metadata{CorrelationID: "c-1"})), acc)
	require.NoError(t, err)
	request.End()

	// A subscription's handler continues that trace.
	var mu sync.Mutex
	var handlerSpan trace.SpanContext
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- store.Subscribe(sctx, "mail", func(ctx context.Context, e es.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handlerSpan = trace.SpanContextFromContext(ctx)
			return nil
		}, nil)
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	require.NoError(t, store.WaitFor(wctx, "mail", res.LastPosition))
	cancel()
	require.NoError(t, <-done)

	mu.Lock()
	require.Equal(t, request.SpanContext().TraceID(), handlerSpan.TraceID(), "the handler's span is in the request's trace")
	mu.Unlock()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans.GetSpans() {
		byName[s.Name] = s
	}
	appendSpan, ok := byName["es.append"]
	require.True(t, ok, "an es.append span")
	require.Equal(t, request.SpanContext().TraceID(), appendSpan.SpanContext.TraceID())
	require.Contains(t, appendSpan.Attributes, attribute.String("es.stream_id", "account-a1"))
	handle, ok := byName["es.handle mail"]
	require.True(t, ok, "an es.handle span")
	require.Equal(t, trace.SpanKindConsumer, handle.SpanKind)
	require.Equal(t, request.SpanContext().SpanID(), handle.Parent.SpanID(), "child of the span that saved")

	// The metadata the application set is kept beside the trace context.
	var md es.Metadata
	for e, err := range mem.ReadStream(context.Background(), "account-a1", nil) {
		require.NoError(t, err)
		md, err = e.Meta()
		require.NoError(t, err)
	}
	require.Equal(t, "c-1", md.CorrelationID)
	require.Contains(t, md.Headers, "traceparent")

	m := metrics(t, reader)
	appended := m["es.events.appended"].Data.(metricdata.Sum[int64])
	require.Equal(t, int64(1), appended.DataPoints[0].Value)
	for _, name := range []string{"es.operation.duration", "es.handler.duration", "es.subscription.lag"} {
		h := m[name].Data.(metricdata.Histogram[float64])
		require.NotEmpty(t, h.DataPoints, name)
		require.Positive(t, h.DataPoints[0].Count, name)
	}
}

func TestHandlerErrorsAndParked(t *testing.T) {
	in, spans, reader, _ := setup(t)
	mem := memstore.New(nil)
	store := in.Store(mem)
	res, err := store.Append(context.Background(), "order-1", es.NoStream, []es.NewEvent{{Type: "Placed"}})
	require.NoError(t, err)
	require.NoError(t, in.ObserveSubscriptions(store, "orders"))

	boom := errors.New("boom")
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- store.Subscribe(sctx, "orders", func(context.Context, es.Event) error { return boom },
			&es.SubscribeOpts{OnFailure: es.ParkOnFailure, RetryBackoff: time.Millisecond})
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
	defer wcancel()
	require.NoError(t, store.WaitFor(wctx, "orders", res.LastPosition))
	cancel()
	require.NoError(t, <-done)

	m := metrics(t, reader)
	errs := m["es.handler.errors"].Data.(metricdata.Sum[int64])
	require.Equal(t, int64(1), errs.DataPoints[0].Value)
	parked := m["es.subscription.parked"].Data.(metricdata.Gauge[int64])
	require.Equal(t, int64(1), parked.DataPoints[0].Value)
	var failed bool
	for _, s := range spans.GetSpans() {
		if s.Name == "es.handle orders" && s.Status.Description == "boom" {
			failed = true
		}
	}
	require.True(t, failed, "the failed handler's span records the error")
}
