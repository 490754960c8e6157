package trafficapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/load"
	"github.com/zenithfresh/zenith-serverless/shared/trafficapi"
)

// Only traffic the limiter bounds loads the system. One client's free
// status=true probes, or its denials (429, or 503 with RATE_LIMIT_STATUS=503),
// are answered and counted in the totals, but cannot push the load over
// SHED_THRESHOLD and get another client shed; admitted traffic still does.
// TRAFFIC_CAPACITY_RPM is 10 and the random source always says "shed".
func TestLoadCountsOnlyAdmittedTraffic(t *testing.T) {
	const attacker, other = "203.0.113.66", "192.0.2.44"
	tests := []struct {
		name         string
		env          map[string]string
		send         []reqOpt // the attacker's 12 requests
		wantStatus   int      // each of the attacker's answers
		wantOther    int      // the other client's first front-door request, 2 s later
		wantLoad     string   // its X-System-Load ("" when shed)
		wantAdmitted float64
	}{
		{"status=true probes spend nothing and load nothing", nil,
			[]reqOpt{query("status", "true")}, 200, 200, "0.00", 0},
		{"429 denials load nothing", map[string]string{"RATE_LIMIT_RPM": "1", "RATE_LIMIT_BURST": "0"},
			nil, 429, 200, "0.10", 1},
		{"503 RATE_LIMIT denials load nothing", map[string]string{"RATE_LIMIT_RPM": "1", "RATE_LIMIT_BURST": "0", "RATE_LIMIT_STATUS": "503"},
			nil, 503, 200, "0.10", 1},
		{"admitted front-door traffic still sheds", nil,
			nil, 200, 503, "", 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"TRAFFIC_CAPACITY_RPM": "10"}, tc.env))
			fake := clock.NewFake(base)
			a := newApp(t, env, appOpts{clock: fake, random: &clock.Sequence{Values: []float64{0.5}}})
			for i := 0; i < 12; i++ {
				res := a.do(http.MethodGet, append([]reqOpt{from(attacker)}, tc.send...)...)
				// With RPM 1 and no burst the first front-door request is admitted.
				if want := tc.wantStatus; res.Status != want && !(i == 0 && res.Status == 200) {
					t.Fatalf("attacker request %d: %d, want %d: %v", i, res.Status, want, res.Body)
				}
			}
			fake.Advance(2 * time.Second) // past the load cache
			res := a.do(http.MethodGet, from(other))
			if res.Status != tc.wantOther || res.Headers["X-System-Load"] != tc.wantLoad {
				t.Fatalf("other client: %d (X-System-Load %q), want %d (%q): %v", res.Status, res.Headers["X-System-Load"], tc.wantOther, tc.wantLoad, res.Body)
			}
			// The status answer (from the same cached measurement) shows all 12
			// answered requests and the admitted ones the load counts.
			sl := a.do(http.MethodGet, query("status", "true"), from(other)).Body["systemLoad"].(map[string]any)
			if sl["requestsLastMinute"] != float64(12) || sl["admittedLastMinute"] != tc.wantAdmitted ||
				sl["measuredLoad"] != min(tc.wantAdmitted/10, 1) {
				t.Errorf("systemLoad = %v, want 12 requests, %v admitted", sl, tc.wantAdmitted)
			}
		})
	}
}

// When the load cannot be read, the front door sheds only on a measurement
// at most MaxFallbackAge old; past that it admits (as the original did when
// its load check failed) and status=true reports "degraded", not overloaded.
// The metrics table is deleted under a running instance that has just measured
// an overload.
func TestStaleLoadIsNotShedOn(t *testing.T) {
	env := dynamotest.New(t, "traffic-manager", apitest.Merge(small, map[string]string{"TRAFFIC_CAPACITY_RPM": "10"}))
	fake := clock.NewFake(base)
	a := newApp(t, env, appOpts{clock: fake, random: &clock.Sequence{Values: []float64{0.5}}})
	for i := 0; i < 12; i++ {
		if res := a.do(http.MethodGet, from(fmt.Sprintf("198.51.100.%d", i))); res.Status != 200 {
			t.Fatalf("request %d: %d", i, res.Status)
		}
	}
	fake.Advance(2 * time.Second)
	measured := fake.Now()
	if res := a.do(http.MethodGet); res.Status != 503 {
		t.Fatalf("overloaded system: %d, want 503", res.Status)
	}
	if _, err := env.Client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(env.Tables.Metrics)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		at         time.Time
		want       int
		wantLoad   string
		overloaded bool
	}{
		{"a moment later: the recent measurement still sheds", measured.Add(load.CacheFor), 503, "", true},
		{"at MaxFallbackAge: still", measured.Add(trafficapi.MaxFallbackAge), 503, "", true},
		{"just past MaxFallbackAge: admitted", measured.Add(trafficapi.MaxFallbackAge + time.Millisecond), 200, "unknown", false},
		{"hours later: admitted", measured.Add(3 * time.Hour), 200, "unknown", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake.Set(tc.at)
			res := a.do(http.MethodGet, from("192.0.2.200"))
			if res.Status != tc.want || res.Headers["X-System-Load"] != tc.wantLoad {
				t.Errorf("front door: %d (X-System-Load %q), want %d (%q): %v", res.Status, res.Headers["X-System-Load"], tc.want, tc.wantLoad, res.Body)
			}
			if tc.want == 503 && res.Body["code"] != "SYS_OVERLOAD" {
				t.Errorf("shed answer = %v", res.Body)
			}
			st := a.do(http.MethodGet, query("status", "true"))
			sl, _ := st.Body["systemLoad"].(map[string]any)
			if st.Status != 200 || st.Body["status"] != "degraded" || sl == nil || sl["error"] != true ||
				sl["isOverloaded"] != tc.overloaded || sl["timestamp"] != measured.UTC().Format(time.RFC3339Nano) {
				t.Errorf("status = %d %v, want degraded, isOverloaded %v, the last measurement's timestamp", st.Status, st.Body, tc.overloaded)
			}
		})
	}
}
