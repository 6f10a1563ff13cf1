// Package otlptest is a real OTLP/HTTP trace receiver for tests and the
// benchmark: an HTTP server that accepts what an OpenTelemetry SDK exports
// to /v1/traces (protobuf, gzip or not), decodes it with the OTLP
// collector types and keeps the spans, flattened, for the caller to read.
package otlptest

import (
	"compress/gzip"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"
)

// Event is a span event.
type Event struct {
	Name string
	Time time.Time
}

// Span is one received span, with its resource's service name and
// instance id.
type Span struct {
	TraceID, SpanID, ParentID string // lower-case hex; ParentID empty for a root
	Name                      string
	Kind                      int32
	Start, End                time.Time
	Service, Instance         string
	Attrs                     map[string]string
	Events                    []Event
	Links                     []string // "traceid-spanid" of each link
	StatusError               bool
}

// Event returns the time of the span's first event named name.
func (s Span) Event(name string) (time.Time, bool) {
	for _, e := range s.Events {
		if e.Name == name {
			return e.Time, true
		}
	}
	return time.Time{}, false
}

// MaxBody bounds one export request's body, compressed and not.
const MaxBody = 32 << 20

// MaxSpans bounds what the receiver keeps; past it, spans are counted as
// dropped.
const MaxSpans = 1_000_000

// Receiver is a running OTLP/HTTP trace receiver.
type Receiver struct {
	URL string // the base URL, for OTEL_EXPORTER_OTLP_ENDPOINT

	srv      *http.Server
	mu       sync.Mutex
	spans    []Span
	dropped  int
	requests int
	bad      int
}

// Start listens on 127.0.0.1 at a free port and serves until Close.
func Start() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("otlptest: %w", err)
	}
	r := &Receiver{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", r.traces)
	r.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

// Spans returns a copy of every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Stats reports the export requests served, those refused as malformed,
// and the spans dropped past MaxSpans.
func (r *Receiver) Stats() (requests, bad, dropped int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests, r.bad, r.dropped
}

func (r *Receiver) traces(w http.ResponseWriter, req *http.Request) {
	spans, err := read(req)
	r.mu.Lock()
	r.requests++
	if err != nil {
		r.bad++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, s := range spans {
		if len(r.spans) >= MaxSpans {
			r.dropped++
			continue
		}
		r.spans = append(r.spans, s)
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func read(req *http.Request) ([]Span, error) {
	if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		return nil, fmt.Errorf("content type %q: want application/x-protobuf", ct)
	}
	var body io.Reader = http.MaxBytesReader(nil, req.Body, MaxBody)
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(body)
		if err != nil {
			return nil, err
		}
		defer func() { _ = zr.Close() }()
		body = io.LimitReader(zr, MaxBody+1)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if len(raw) > MaxBody {
		return nil, errors.New("body too large")
	}
	var msg coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &msg); err != nil {
		return nil, err
	}
	return Flatten(&msg), nil
}

// Flatten turns an export request into spans.
func Flatten(msg *coltrace.ExportTraceServiceRequest) []Span {
	var out []Span
	for _, rs := range msg.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s := Span{
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					Name: sp.GetName(), Kind: int32(sp.GetKind()),
					Start: unixNano(sp.GetStartTimeUnixNano()), End: unixNano(sp.GetEndTimeUnixNano()),
					Service: res["service.name"], Instance: res["service.instance.id"], Attrs: attrs(sp.GetAttributes()),
					StatusError: sp.GetStatus().GetCode() == 2,
				}
				if p := sp.GetParentSpanId(); len(p) > 0 {
					s.ParentID = hex.EncodeToString(p)
				}
				for _, e := range sp.GetEvents() {
					s.Events = append(s.Events, Event{Name: e.GetName(), Time: unixNano(e.GetTimeUnixNano())})
				}
				for _, l := range sp.GetLinks() {
					s.Links = append(s.Links, hex.EncodeToString(l.GetTraceId())+"-"+hex.EncodeToString(l.GetSpanId()))
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func unixNano(n uint64) time.Time {
	if n > 1<<62 {
		n = 1 << 62
	}
	return time.Unix(0, int64(n))
}

func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = fmt.Sprint(x.IntValue)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = fmt.Sprint(x.BoolValue)
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
