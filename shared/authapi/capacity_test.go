package authapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/authapi"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
)

// Each request's EMF line carries the capacity units its own DynamoDB calls
// consumed: exactly what DynamoDB Local reported, as the accounting proxy in
// front of it sums it, less the metrics table (the recorder's flushes and
// failed-login counts are not the request's).
func TestEMFLineCarriesTheRequestsCapacityUnits(t *testing.T) {
	password := apitest.RandomPassword(t)
	env := dynamotest.New(t, "auth", apitest.Merge(baseOverrides(password), map[string]string{"METRICS_FLUSH_INTERVAL": "1000"}))
	p, err := dbproxy.New(env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	ctx := context.Background()
	fake := clock.NewFake(apitest.Epoch)
	out := &apitest.LogBuffer{}
	deps, err := platform.New(ctx, env.Config, platform.WithClock(fake), platform.WithLogger(discardLogger()), platform.WithMetricsOutput(out),
		platform.WithDynamoDBOptions(func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()) }))
	if err != nil {
		t.Fatal(err)
	}
	app, err := authapi.New(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	var token string
	steps := []struct {
		name       string
		req        func() apitest.Request
		wantStatus int
		wantWrites bool // the request writes (a session, a failure count, a limiter item)
	}{
		{"login", func() apitest.Request { return loginReq(t, masterName, password) }, http.StatusOK, true},
		{"validate", func() apitest.Request {
			return apitest.Request{Method: http.MethodGet, Path: "/api/auth", Headers: apitest.Bearer(token)}
		}, http.StatusOK, true},
		{"failed login", func() apitest.Request { return loginReq(t, masterName, password+"x") }, http.StatusUnauthorized, true},
		{"users list", func() apitest.Request {
			return apitest.Request{Method: http.MethodGet, Path: "/api/auth/users", Headers: apitest.Bearer(token)}
		}, http.StatusOK, true},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			fake.Advance(1500 * time.Millisecond) // past the flush interval: the recorder's flush runs alongside
			p.Reset()
			before := len(out.String())
			res := apitest.Do(t, app.Handle, st.req().Event())
			if res.Status != st.wantStatus {
				t.Fatalf("status %d, want %d: %s", res.Status, st.wantStatus, res.Raw)
			}
			if st.name == "login" {
				token, _ = res.Get("session.id").(string)
			}
			s := p.Stats()
			metricsUnits := s.TableUnits[env.Tables.Metrics]
			wantRead, wantWrite := s.Units.Read-metricsUnits.Read, s.Units.Write-metricsUnits.Write
			line := requestLine(t, out.String()[before:])
			if line.ReadUnits != wantRead || line.WriteUnits != wantWrite {
				t.Errorf("EMF ReadUnits %v WriteUnits %v, want %v and %v (proxy: %+v)", line.ReadUnits, line.WriteUnits, wantRead, wantWrite, s.TableUnits)
			}
			t.Logf("%s: EMF ReadUnits %v WriteUnits %v; proxy by table %v", st.name, line.ReadUnits, line.WriteUnits, s.TableUnits)
			if wantRead <= 0 || (st.wantWrites && wantWrite <= 0) {
				t.Errorf("the request consumed read %v write %v: the comparison proves nothing", wantRead, wantWrite)
			}
			if st.name != "login" && metricsUnits.Write <= 0 {
				t.Errorf("no recorder write on the metrics table during the request (%+v): the exclusion is untested", s.TableUnits)
			}
		})
	}
}

// requestLine returns the one request EMF line of out (event lines aside).
func requestLine(t *testing.T, out string) (line struct {
	Route      string  `json:"route"`
	ReadUnits  float64 `json:"ReadUnits"`
	WriteUnits float64 `json:"WriteUnits"`
}) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.Contains(l, `"route"`) {
			continue
		}
		n++
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("EMF line: %v: %s", err, l)
		}
	}
	if n != 1 {
		t.Fatalf("%d request EMF lines, want 1:\n%s", n, out)
	}
	return line
}
