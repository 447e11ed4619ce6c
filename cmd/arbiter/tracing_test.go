package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/server"
)

const decideSpan = "nba.v1.DecisionService/Decide"

// startTraced runs the server with tracing on, its spans kept in memory,
// and its log (access log, debug level) in logs.
func startTraced(t *testing.T, logs *lockedBuffer, flags ...string) (*testServer, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	ts := startWith(t, embedded, 50, logs, func(m *Main) { m.spanExporter = exp },
		append([]string{"-access-log", "-log-level", "debug"}, flags...)...)
	return ts, exp
}

// flushSpans writes the receipts queued and exports the spans ended.
func flushSpans(t *testing.T, ts *testServer) {
	t.Helper()
	ctx := context.Background()
	if err := ts.srv.FlushDecisionLog(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ts.tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
}

// A traced Decide has a span for the call, with one for each phase of the
// engine under it (load, gates, scoring), and the receipt's batch write
// links to the call; no span names the recipient anywhere, nor does any
// span of a call that failed for it; and the call's log lines carry its
// trace and span ids.
func TestTracedDecide(t *testing.T) {
	var logs lockedBuffer
	ts, exp := startTraced(t, &logs, "-trace-sample", "1")
	ctx := context.Background()
	d, err := ts.client.Decide(ctx, "HCP-000042", client.DecideOptions{Limit: 3, Explain: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Recommendations) == 0 {
		t.Fatal("no recommendation: the test would trace little")
	}
	flushSpans(t, ts)

	spans := exp.GetSpans()
	byName := map[string]tracetest.SpanStub{}
	for _, s := range spans {
		byName[s.Name] = s
	}
	call, ok := byName[decideSpan]
	if !ok {
		t.Fatalf("no %s span among %v", decideSpan, names(spans))
	}
	for _, name := range []string{server.SpanLoad, server.SpanGates, server.SpanScoring} {
		s, ok := byName[name]
		switch {
		case !ok:
			t.Errorf("no %s span among %v", name, names(spans))
		case s.Parent.SpanID() != call.SpanContext.SpanID() || s.SpanContext.TraceID() != call.SpanContext.TraceID():
			t.Errorf("%s is not a child of the call's span", name)
		}
	}
	if w, ok := byName[server.SpanReceiptsWrite]; !ok {
		t.Errorf("no %s span among %v", server.SpanReceiptsWrite, names(spans))
	} else if !linksTo(w, call.SpanContext) {
		t.Errorf("the receipts' write does not link to the call's span: links %v", w.Links)
	}
	attrs := map[string]string{}
	for _, kv := range call.Attributes {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if attrs["arbiter.recommendations"] != fmt.Sprint(len(d.Recommendations)) || attrs["arbiter.definitions_version"] == "" {
		t.Errorf("the call's span has %v; want its recommendations counted and the definitions version", attrs)
	}
	if g := byName[server.SpanGates]; attrOf(g, "arbiter.candidates") == "" || attrOf(g, "arbiter.suppressed") == "" {
		t.Errorf("the gates' span has %v; want the candidates and suppressions counted", g.Attributes)
	}

	// The call's log line, the access log's, names its trace and span.
	want := fmt.Sprintf("trace_id=%s span_id=%s", call.SpanContext.TraceID(), call.SpanContext.SpanID())
	var logged bool
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "DecisionService") && strings.Contains(line, "Decide") {
			logged = true
			if !strings.Contains(line, want) {
				t.Errorf("the call's log line does not carry %q:\n%s", want, line)
			}
		}
	}
	if !logged {
		t.Errorf("no log line for the call:\n%s", logs.String())
	}

	// Calls that fail for a recipient: unknown, or not a valid id.
	if _, err := ts.client.Decide(ctx, "HCP-999999", client.DecideOptions{}); err == nil {
		t.Error("an unknown HCP was decided for")
	}
	if _, err := ts.client.Decide(ctx, "HCP-\x01bad", client.DecideOptions{}); err == nil {
		t.Error("an invalid HCP id was decided for")
	}
	if _, err := ts.client.DecideBatch(ctx, []string{"HCP-000001", "HCP-000002"}, client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	flushSpans(t, ts)
	spans = exp.GetSpans()
	for _, s := range spans {
		if leak := personal(s); leak != "" {
			t.Errorf("span %s carries a recipient id: %s", s.Name, leak)
		}
	}
	var notFound bool
	for _, s := range spans {
		notFound = notFound || (s.Name == server.SpanLoad && attrOf(s, "arbiter.outcome") == "not_found")
	}
	if !notFound {
		t.Errorf("no load span tells the unknown HCP's outcome: %v", names(spans))
	}
}

// Sampling is parent-based: with -trace-sample 0, a call whose caller
// sampled its trace is traced, in the caller's trace; a call without one
// is not. Tracing off, nothing is traced and no log line has a trace id.
func TestTraceSampling(t *testing.T) {
	var logs lockedBuffer
	ts, exp := startTraced(t, &logs, "-trace-sample", "0")
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := ts.client.Decide(ctx, "HCP-000042", client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client.Decide(context.Background(), "HCP-000043", client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	flushSpans(t, ts)
	var calls int
	for _, s := range exp.GetSpans() {
		if s.Name != decideSpan {
			continue
		}
		calls++
		if s.SpanContext.TraceID().String() != traceID || s.Parent.SpanID().String() != parentID {
			t.Errorf("the call's span is in trace %s under %s, want the caller's %s under %s",
				s.SpanContext.TraceID(), s.Parent.SpanID(), traceID, parentID)
		}
	}
	if calls != 1 {
		t.Errorf("%d Decide calls traced, want the one whose caller sampled its trace: %v", calls, names(exp.GetSpans()))
	}

	var plainLogs lockedBuffer
	plain := startLogging(t, embedded, 50, &plainLogs, "-access-log", "-log-level", "debug")
	if plain.tp != nil {
		t.Fatal("tracing is on without -otlp-endpoint")
	}
	if _, err := plain.client.Decide(ctx, "HCP-000042", client.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plainLogs.String(), "trace_id") {
		t.Errorf("tracing off, a log line has a trace id:\n%s", plainLogs.String())
	}
}

func TestTraceFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want Config
		err  string
	}{
		{args: nil, want: Config{TraceSample: 0.01}},
		{args: []string{"-otlp-endpoint", "otel:4317", "-otlp-insecure", "-trace-sample", "0.5"},
			want: Config{OTLPEndpoint: "otel:4317", OTLPInsecure: true, TraceSample: 0.5}},
		{env: map[string]string{"ARBITER_OTLP_ENDPOINT": "https://otel:4317", "ARBITER_TRACE_SAMPLE": "1"},
			want: Config{OTLPEndpoint: "https://otel:4317", TraceSample: 1}},
		{args: []string{"-otlp-endpoint", "otel:4317", "-trace-sample", "2"}, err: "trace-sample"},
		{args: []string{"-trace-sample", "NaN"}, err: "trace-sample"},
		{args: []string{"-otlp-insecure"}, err: "otlp-insecure"},
	} {
		c, err := parseConfig("demo", tc.args, func(k string) string { return tc.env[k] })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v %v: err %v, want one about %s", tc.args, tc.env, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %v: %v", tc.args, tc.env, err)
			continue
		}
		if c.OTLPEndpoint != tc.want.OTLPEndpoint || c.OTLPInsecure != tc.want.OTLPInsecure || c.TraceSample != tc.want.TraceSample {
			t.Errorf("%v %v: endpoint %q insecure %v sample %v, want %q %v %v", tc.args, tc.env, c.OTLPEndpoint,
				c.OTLPInsecure, c.TraceSample, tc.want.OTLPEndpoint, tc.want.OTLPInsecure, tc.want.TraceSample)
		}
	}
}

// personal returns what of a span names a recipient ("HCP-…"): its name,
// an attribute's value, an event's, a link's, its status or its resource.
func personal(s tracetest.SpanStub) string {
	check := []string{s.Name, s.Status.Description}
	kvs := append(slices.Clone(s.Attributes), s.Resource.Attributes()...)
	for _, e := range s.Events {
		check = append(check, e.Name)
		kvs = append(kvs, e.Attributes...)
	}
	for _, l := range s.Links {
		kvs = append(kvs, l.Attributes...)
	}
	for _, kv := range kvs {
		check = append(check, string(kv.Key)+"="+kv.Value.Emit())
	}
	for _, c := range check {
		if strings.Contains(c, "HCP-") {
			return c
		}
	}
	return ""
}

func names(spans tracetest.SpanStubs) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func attrOf(s tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.Emit()
		}
	}
	return ""
}

func linksTo(s tracetest.SpanStub, sc trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanContext.Equal(sc) {
			return true
		}
	}
	return false
}

// The batch write's sampler keeps a new trace that links to a sampled span,
// and leaves any other to the parent-based ratio.
func TestLinkSampler(t *testing.T) {
	s := linkSampler{sdktrace.ParentBased(sdktrace.TraceIDRatioBased(0))}
	sampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled})
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{2}, SpanID: trace.SpanID{2}})
	for _, tc := range []struct {
		links []trace.Link
		want  sdktrace.SamplingDecision
	}{
		{nil, sdktrace.Drop},
		{[]trace.Link{{SpanContext: unsampled}}, sdktrace.Drop},
		{[]trace.Link{{SpanContext: unsampled}, {SpanContext: sampled}}, sdktrace.RecordAndSample},
	} {
		got := s.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: trace.TraceID{3}, Links: tc.links})
		if got.Decision != tc.want {
			t.Errorf("links %v: decision %v, want %v", tc.links, got.Decision, tc.want)
		}
	}
}
