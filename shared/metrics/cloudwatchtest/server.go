// Package cloudwatchtest is a local GetMetricData endpoint for tests: it
// speaks the protocol the real SDK client uses (Smithy RPC v2 CBOR), decodes
// each request with smithy-go's own encoding/cbor so tests can assert the
// queries sent, and encodes the answer the test chooses the same way. No
// CloudWatch emulator is reachable from the build machines.
package cloudwatchtest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/aws/smithy-go/encoding/cbor"
)

// Path is where the SDK posts GetMetricData.
const Path = "/service/GraniteServiceVersion20100801/operation/GetMetricData"

// Query is one decoded MetricDataQuery.
type Query struct {
	ID         string
	Expression string
	Label      string
	ReturnData *bool
	Period     int64 // the query's own Period (expressions)
	Namespace  string
	MetricName string
	Dimensions map[string]string
	Stat       string
	StatPeriod int64 // MetricStat.Period
}

// Request is one decoded GetMetricData call.
type Request struct {
	Path          string
	Protocol      string // smithy-protocol header
	ContentType   string
	Authorization bool // a SigV4 Authorization header was present
	StartTime     time.Time
	EndTime       time.Time
	ScanBy        string
	NextToken     string
	MaxDatapoints int64
	Queries       []Query
}

// Result is one MetricDataResult of the answer.
type Result struct {
	ID         string
	Label      string
	StatusCode string // "Complete" when empty
	Timestamps []time.Time
	Values     []float64
}

// Responder chooses the answer to a request: results and the next token ("" for the last page).
type Responder func(r Request) ([]Result, string)

// Server is the test endpoint.
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	requests []Request
	errs     []error
	respond  Responder
}

// NewServer starts a server answering with respond.
func NewServer(respond Responder) *Server {
	s := &Server{respond: respond}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Requests returns the calls received so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Errors returns the requests the server could not decode.
func (s *Server) Errors() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.errs...)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write(cbor.Encode(cbor.Map{
		"__type":  cbor.String("com.amazonaws.cloudwatch#InvalidParameterValueException"),
		"message": cbor.String(err.Error()),
	}))
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, err)
		return
	}
	req := Request{
		Path: r.URL.Path, Protocol: r.Header.Get("Smithy-Protocol"), ContentType: r.Header.Get("Content-Type"),
		Authorization: r.Header.Get("Authorization") != "",
	}
	if r.Method != http.MethodPost || req.Path != Path {
		s.fail(w, fmt.Errorf("unexpected %s %s", r.Method, req.Path))
		return
	}
	v, err := cbor.Decode(body)
	if err != nil {
		s.fail(w, fmt.Errorf("decode cbor: %w", err))
		return
	}
	if err := decodeRequest(v, &req); err != nil {
		s.fail(w, err)
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()

	results, next := s.respond(req)
	list := cbor.List{}
	for _, res := range results {
		ts := cbor.List{}
		for _, t := range res.Timestamps {
			ts = append(ts, &cbor.Tag{ID: 1, Value: cbor.Float64(float64(t.UnixMilli()) / 1e3)})
		}
		vals := cbor.List{}
		for _, x := range res.Values {
			vals = append(vals, cbor.Float64(x))
		}
		code := res.StatusCode
		if code == "" {
			code = "Complete"
		}
		list = append(list, cbor.Map{
			"Id": cbor.String(res.ID), "Label": cbor.String(res.Label), "StatusCode": cbor.String(code),
			"Timestamps": ts, "Values": vals, "Messages": cbor.List{},
		})
	}
	out := cbor.Map{"MetricDataResults": list, "Messages": cbor.List{}}
	if next != "" {
		out["NextToken"] = cbor.String(next)
	}
	w.Header().Set("Content-Type", "application/cbor")
	w.Header().Set("Smithy-Protocol", "rpc-v2-cbor")
	_, _ = w.Write(cbor.Encode(out))
}

func decodeRequest(v cbor.Value, req *Request) error {
	m, ok := v.(cbor.Map)
	if !ok {
		return fmt.Errorf("request body is %T, want a map", v)
	}
	var err error
	if req.StartTime, err = cbor.AsTime(m["StartTime"]); err != nil {
		return fmt.Errorf("StartTime: %w", err)
	}
	if req.EndTime, err = cbor.AsTime(m["EndTime"]); err != nil {
		return fmt.Errorf("EndTime: %w", err)
	}
	req.ScanBy = str(m["ScanBy"])
	req.NextToken = str(m["NextToken"])
	if mv, ok := m["MaxDatapoints"]; ok {
		req.MaxDatapoints, _ = cbor.AsInt64(mv)
	}
	qs, ok := m["MetricDataQueries"].(cbor.List)
	if !ok {
		return fmt.Errorf("MetricDataQueries is %T, want a list", m["MetricDataQueries"])
	}
	for _, qv := range qs {
		qm, ok := qv.(cbor.Map)
		if !ok {
			return fmt.Errorf("query is %T, want a map", qv)
		}
		q := Query{ID: str(qm["Id"]), Expression: str(qm["Expression"]), Label: str(qm["Label"])}
		if b, ok := qm["ReturnData"].(cbor.Bool); ok {
			bb := bool(b)
			q.ReturnData = &bb
		}
		if p, ok := qm["Period"]; ok {
			q.Period, _ = cbor.AsInt64(p)
		}
		if ms, ok := qm["MetricStat"].(cbor.Map); ok {
			q.Stat = str(ms["Stat"])
			if p, ok := ms["Period"]; ok {
				q.StatPeriod, _ = cbor.AsInt64(p)
			}
			if mm, ok := ms["Metric"].(cbor.Map); ok {
				q.Namespace, q.MetricName = str(mm["Namespace"]), str(mm["MetricName"])
				q.Dimensions = map[string]string{}
				if ds, ok := mm["Dimensions"].(cbor.List); ok {
					for _, dv := range ds {
						if dm, ok := dv.(cbor.Map); ok {
							q.Dimensions[str(dm["Name"])] = str(dm["Value"])
						}
					}
				}
			}
		}
		req.Queries = append(req.Queries, q)
	}
	return nil
}

func str(v cbor.Value) string {
	if s, ok := v.(cbor.String); ok {
		return string(s)
	}
	return ""
}
