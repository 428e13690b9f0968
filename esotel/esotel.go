// Package esotel instruments es with OpenTelemetry: traces and metrics
// around a store's operations and around subscription handlers, and the
// trace context carried from the request that saves events to the handlers
// that follow them, in the events' metadata (the W3C traceparent header).
//
// It is a module of its own, so that es itself does not depend on
// OpenTelemetry:
//
//	otelES, err := esotel.New(&esotel.Config{TracerProvider: tp, MeterProvider: mp})
//	store := otelES.Store(pgStore)                        // spans and metrics for appends and reads
//	repo, err := es.NewRepository(store, registry, newOrder, nil)
//	_, err = repo.Save(otelES.Inject(ctx), order)         // the request's trace context goes with the events
//	err = pgStore.Subscribe(ctx, "emails", otelES.Handler("emails", sendEmail), nil)
//
// Spans: "es.append", "es.read_stream", "es.read_all", "es.load",
// "es.stream_info" (client spans, with the stream id and event count), and
// "es.handle <subscription>" (a consumer span, child of the trace context
// in the event's metadata when there is one).
//
// Metrics:
//   - es.operation.duration (histogram, s; attribute es.operation): append,
//     read_stream, read_all, load, stream_info;
//   - es.events.appended (counter);
//   - es.handler.duration (histogram, s; attribute es.subscription);
//   - es.handler.errors (counter; es.subscription);
//   - es.subscription.lag (histogram, s: from an event's recording to its
//     handling; es.subscription);
//   - es.subscription.parked (gauge; es.subscription), for the
//     subscriptions named to [Instrumentation.ObserveSubscriptions].
package esotel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pgevent/es"
)

// scope is the instrumentation scope's name.
const scope = "github.com/pgevent/es/esotel"

// Config says where the telemetry goes. A nil *Config, or a nil field,
// takes OpenTelemetry's global provider.
type Config struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// Propagator writes and reads the trace context in event metadata.
	// Defaults to W3C trace context (traceparent, tracestate).
	Propagator propagation.TextMapPropagator
}

// Instrumentation makes instrumented stores and handlers.
type Instrumentation struct {
	tracer     trace.Tracer
	meter      metric.Meter
	propagator propagation.TextMapPropagator

	opDuration      metric.Float64Histogram
	appended        metric.Int64Counter
	handlerDuration metric.Float64Histogram
	handlerErrors   metric.Int64Counter
	lag             metric.Float64Histogram
}

// New returns an Instrumentation.
func New(cfg *Config) (*Instrumentation, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.TracerProvider == nil {
		c.TracerProvider = otel.GetTracerProvider()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	if c.Propagator == nil {
		c.Propagator = propagation.TraceContext{}
	}
	in := &Instrumentation{
		tracer:     c.TracerProvider.Tracer(scope),
		meter:      c.MeterProvider.Meter(scope),
		propagator: c.Propagator,
	}
	var errs []error
	var err error
	in.opDuration, err = in.meter.Float64Histogram("es.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of es store operations"))
	errs = append(errs, err)
	in.appended, err = in.meter.Int64Counter("es.events.appended", metric.WithUnit("{event}"),
		metric.WithDescription("Events appended"))
	errs = append(errs, err)
	in.handlerDuration, err = in.meter.Float64Histogram("es.handler.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of subscription handler calls"))
	errs = append(errs, err)
	in.handlerErrors, err = in.meter.Int64Counter("es.handler.errors", metric.WithUnit("{error}"),
		metric.WithDescription("Subscription handler calls that returned an error"))
	errs = append(errs, err)
	in.lag, err = in.meter.Float64Histogram("es.subscription.lag", metric.WithUnit("s"),
		metric.WithDescription("Time from an event's recording to its handling"))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("esotel: %w", err)
	}
	return in, nil
}

// Inject returns ctx with the trace context of its current span written
// into the es metadata of ctx (es.WithMetadata; other metadata kept), so
// that the events a repository saves with it carry it to the handlers
// that follow them.
func (in *Instrumentation) Inject(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{}
	in.propagator.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return ctx
	}
	md, _ := es.MetadataFrom(ctx)
	headers := make(map[string]string, len(md.Headers)+len(carrier))
	for k, v := range md.Headers {
		headers[k] = v
	}
	for k, v := range carrier {
		headers[k] = v
	}
	md.Headers = headers
	return es.WithMetadata(ctx, md)
}

// extract returns ctx with the trace context found in e's metadata, if
// any.
func (in *Instrumentation) extract(ctx context.Context, e es.Event) context.Context {
	md, err := e.Meta()
	if err != nil || len(md.Headers) == 0 {
		return ctx
	}
	return in.propagator.Extract(ctx, propagation.MapCarrier(md.Headers))
}

// Handler wraps a plain subscription handler: a consumer span per event,
// child of the trace context the event carries, and the handler metrics.
func (in *Instrumentation) Handler(subscription string, h es.Handler) es.Handler {
	return func(ctx context.Context, e es.Event) error {
		return in.handle(ctx, subscription, e, func(ctx context.Context) error { return h(ctx, e) })
	}
}

// TxHandler wraps a transactional subscription handler as Handler does.
func (in *Instrumentation) TxHandler(subscription string, h es.TxHandler) es.TxHandler {
	return func(ctx context.Context, tx es.Tx, e es.Event) error {
		return in.handle(ctx, subscription, e, func(ctx context.Context) error { return h(ctx, tx, e) })
	}
}

func (in *Instrumentation) handle(ctx context.Context, subscription string, e es.Event, call func(context.Context) error) error {
	sub := attribute.String("es.subscription", subscription)
	if !e.RecordedAt.IsZero() {
		in.lag.Record(ctx, time.Since(e.RecordedAt).Seconds(), metric.WithAttributes(sub))
	}
	parent := in.extract(ctx, e)
	spanCtx, span := in.tracer.Start(parent, "es.handle "+subscription, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(sub, attribute.String("es.stream_id", e.StreamID), attribute.Int64("es.version", e.Version),
			attribute.String("es.event_type", e.Type), attribute.String("es.position", e.Position.String())))
	// spanCtx keeps the subscription's context (its cancellation), with
	// the handler's span in the event's trace.
	start := time.Now()
	err := call(spanCtx)
	in.handlerDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(sub))
	if err != nil {
		in.handlerErrors.Add(ctx, 1, metric.WithAttributes(sub))
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	return err
}

// ObserveSubscriptions reports, at each metric collection, the number of
// unresolved parked events of each named subscription of sub, as the gauge
// es.subscription.parked.
func (in *Instrumentation) ObserveSubscriptions(sub es.Subscriber, names ...string) error {
	gauge, err := in.meter.Int64ObservableGauge("es.subscription.parked", metric.WithUnit("{event}"),
		metric.WithDescription("Unresolved parked events of a subscription"))
	if err != nil {
		return fmt.Errorf("esotel: %w", err)
	}
	_, err = in.meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		for _, name := range names {
			h, err := sub.SubscriptionHealth(ctx, name)
			if err != nil {
				return err
			}
			o.ObserveInt64(gauge, h.ParkedEvents, metric.WithAttributes(attribute.String("es.subscription", name)))
		}
		return nil
	}, gauge)
	if err != nil {
		return fmt.Errorf("esotel: %w", err)
	}
	return nil
}

// span starts a client span for a store operation; done ends it and
// records the operation's duration.
func (in *Instrumentation) span(ctx context.Context, op string, attrs ...attribute.KeyValue) (context.Context, func(error)) {
	ctx, span := in.tracer.Start(ctx, "es."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	start := time.Now()
	return ctx, func(err error) {
		in.opDuration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attribute.String("es.operation", op)))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}
