// Package cwhistory reads the per-minute request history from the EMF
// metrics in CloudWatch. Only the system-monitor function links it (and the
// CloudWatch client with it).
package cwhistory

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// MetricDataAPI is the part of the CloudWatch client the history reader uses.
type MetricDataAPI interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// MaxGetMetricDataPages bounds the pages one history read may take; a 168 h
// window needs one (see Reader).
const MaxGetMetricDataPages = 10

// historyMetrics are the EMF metrics the history needs, each read as Sum:
// LatencyMs too, because a per-function Average cannot be combined across
// functions, while Sum(LatencyMs)/Sum(Requests) is the exact mean.
var historyMetrics = []struct{ id, name string }{
	{"requests", metrics.MetricRequests},
	{"errors", metrics.MetricErrors5xx},
	{"latency", metrics.MetricLatencyMs},
}

// Reader reads per-minute history from the EMF metrics in
// CloudWatch with batched GetMetricData calls.
//
// The metrics carry the dimension set [function] (and [function, route]), so
// a system-wide figure is a sum over functions. Each call holds, per metric,
// one hidden MetricStat query per function (Stat Sum, Period 60) and one
// visible metric-math expression SUM([FILL(m_0, 0), ...]) over them: FILL
// keeps a minute in the sum when one function had no traffic in it. That is
// 3 × (functions + 1) queries (15 for four functions, of the 500 allowed) and
// 3 returned series, so 168 h is 3 × 10,080 = 30,240 points, within one
// call's 100,800; NextToken pages are followed anyway.
type Reader struct {
	api       MetricDataAPI
	namespace string
	functions []string
}

// New returns a reader over the given functions' metrics.
func New(api MetricDataAPI, namespace string, functions []string) *Reader {
	return &Reader{api: api, namespace: namespace, functions: functions}
}

// Queries returns the GetMetricData queries of one history read.
func (h *Reader) Queries() []cwtypes.MetricDataQuery {
	var qs []cwtypes.MetricDataQuery
	for _, m := range historyMetrics {
		terms := make([]string, 0, len(h.functions))
		for i, fn := range h.functions {
			id := fmt.Sprintf("%s_%d", m.id, i)
			qs = append(qs, cwtypes.MetricDataQuery{
				Id: aws.String(id),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace:  aws.String(h.namespace),
						MetricName: aws.String(m.name),
						Dimensions: []cwtypes.Dimension{{Name: aws.String(metrics.DimFunction), Value: aws.String(fn)}},
					},
					Period: aws.Int32(60),
					Stat:   aws.String("Sum"),
				},
				ReturnData: aws.Bool(false),
			})
			terms = append(terms, fmt.Sprintf("FILL(%s, 0)", id))
		}
		qs = append(qs, cwtypes.MetricDataQuery{
			Id:         aws.String(m.id),
			Expression: aws.String("SUM([" + strings.Join(terms, ", ") + "])"),
			Label:      aws.String(m.name),
			Period:     aws.Int32(60),
			ReturnData: aws.Bool(true),
		})
	}
	return qs
}

// Minutes returns the minutes in [from, to) that have data, summed over
// functions, in time order. Only Requests, Errors5xx and DurationMs are
// filled (the history's inputs).
func (h *Reader) Minutes(ctx context.Context, from, to time.Time) ([]metrics.Minute, error) {
	from, to = from.Truncate(time.Minute), to.Truncate(time.Minute)
	if !to.After(from) || len(h.functions) == 0 {
		return nil, nil
	}
	in := &cloudwatch.GetMetricDataInput{
		StartTime:         aws.Time(from),
		EndTime:           aws.Time(to),
		MetricDataQueries: h.Queries(),
		ScanBy:            cwtypes.ScanByTimestampAscending,
	}
	byMinute := map[int64]*metrics.Minute{}
	for page := 0; ; page++ {
		if page == MaxGetMetricDataPages {
			return nil, fmt.Errorf("get metric data: more than %d pages", MaxGetMetricDataPages)
		}
		out, err := h.api.GetMetricData(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("get metric data: %w", err)
		}
		for _, r := range out.MetricDataResults {
			if r.StatusCode == cwtypes.StatusCodeInternalError || r.StatusCode == cwtypes.StatusCodeForbidden {
				return nil, fmt.Errorf("get metric data: %s for %s", r.StatusCode, aws.ToString(r.Id))
			}
			for i, ts := range r.Timestamps {
				if i >= len(r.Values) {
					break
				}
				sec := ts.Truncate(time.Minute).Unix()
				if ts.Before(from) || !ts.Before(to) {
					continue
				}
				m := byMinute[sec]
				if m == nil {
					m = &metrics.Minute{Start: time.Unix(sec, 0).UTC()}
					byMinute[sec] = m
				}
				v := roundCount(r.Values[i])
				switch aws.ToString(r.Id) {
				case "requests":
					m.Requests += v
				case "errors":
					m.Errors5xx += v
				case "latency":
					m.DurationMs += v
				}
			}
		}
		if aws.ToString(out.NextToken) == "" {
			break
		}
		in.NextToken = out.NextToken
	}
	outMinutes := make([]metrics.Minute, 0, len(byMinute))
	for t := from; t.Before(to); t = t.Add(time.Minute) {
		if m, ok := byMinute[t.Unix()]; ok {
			outMinutes = append(outMinutes, *m)
		}
	}
	return outMinutes, nil
}

func roundCount(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return int64(math.Round(v))
}
