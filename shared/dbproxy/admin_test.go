package dbproxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// admin calls an admin endpoint and returns the status and the body.
func admin(t *testing.T, base, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+dbproxy.AdminPrefix+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func errorCode(t *testing.T, b []byte) string {
	t.Helper()
	var e struct{ Code, Message string }
	if err := json.Unmarshal(b, &e); err != nil || e.Message == "" {
		t.Fatalf("error body %s: %v", b, err)
	}
	return e.Code
}

func TestAdminEndpoints(t *testing.T) {
	env, p := setup(t)
	ctx := context.Background()
	c := client(t, env, p, 5*time.Second, 1)
	base := p.URL()

	t.Run("stats and reset", func(t *testing.T) {
		p.Reset()
		if err := put(ctx, c, env.Tables.RateLimits, "a"); err != nil {
			t.Fatal(err)
		}
		status, b := admin(t, base, http.MethodGet, "stats", "")
		var raw map[string]json.RawMessage
		var s dbproxy.Stats
		if status != http.StatusOK || json.Unmarshal(b, &raw) != nil || json.Unmarshal(b, &s) != nil {
			t.Fatalf("GET stats: %d %s", status, b)
		}
		for _, k := range []string{"calls", "operations", "tables", "units", "tableUnits", "indexUnits", "noCapacity", "faults", "upstreamErrors"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("stats JSON lacks %q: %s", k, b)
			}
		}
		if s.Calls != 1 || s.Operations["PutItem"] != 1 || s.TableUnits[env.Tables.RateLimits].Write != 1 {
			t.Errorf("stats = %s", b)
		}
		if status, _ := admin(t, base, http.MethodPost, "reset", ""); status != http.StatusNoContent || p.Stats().Calls != 0 {
			t.Errorf("POST reset: %d, calls %d", status, p.Stats().Calls)
		}
	})

	t.Run("delay", func(t *testing.T) {
		if status, _ := admin(t, base, http.MethodPost, "delay?ms=25", ""); status != http.StatusNoContent || p.Delay() != 25*time.Millisecond {
			t.Fatalf("POST delay: %d, delay %s", status, p.Delay())
		}
		if status, b := admin(t, base, http.MethodGet, "delay", ""); status != http.StatusOK || strings.TrimSpace(string(b)) != `{"ms":25}` {
			t.Errorf("GET delay: %d %s", status, b)
		}
		for _, q := range []string{"", "?ms=-1", "?ms=abc", "?ms=3600001"} {
			if status, b := admin(t, base, http.MethodPost, "delay"+q, ""); status != http.StatusBadRequest || errorCode(t, b) != "INVALID_DELAY" {
				t.Errorf("POST delay%s: %d %s", q, status, b)
			}
		}
		admin(t, base, http.MethodPost, "delay?ms=0", "")
		if p.Delay() != 0 {
			t.Errorf("delay = %s", p.Delay())
		}
	})

	t.Run("fault and clear", func(t *testing.T) {
		body := `{"kind":"throttle","operations":["PutItem"],"tables":["` + env.Tables.RateLimits + `"],"fraction":1}`
		if status, b := admin(t, base, http.MethodPost, "fault", body); status != http.StatusNoContent {
			t.Fatalf("POST fault: %d %s", status, b)
		}
		if err := put(ctx, c, env.Tables.RateLimits, "a"); !store.IsThrottled(err) {
			t.Errorf("PutItem under a throttle fault: %v", err)
		}
		admin(t, base, http.MethodPost, "fault", `{"kind":"latency","delayMs":1500,"forMs":60000}`)
		want := []dbproxy.Fault{
			{Kind: dbproxy.Latency, Delay: 1500 * time.Millisecond, For: time.Minute},
			{Kind: dbproxy.Throttle, Operations: []string{"PutItem"}, Tables: []string{env.Tables.RateLimits}, Fraction: 1},
		}
		status, b := admin(t, base, http.MethodGet, "fault", "")
		var got []dbproxy.Fault
		if status != http.StatusOK || json.Unmarshal(b, &got) != nil || !reflect.DeepEqual(got, want) || !reflect.DeepEqual(p.Faults(), want) {
			t.Errorf("GET fault: %d %s, want %+v", status, b, want)
		}
		if status, _ := admin(t, base, http.MethodPost, "clear?kind=latency", ""); status != http.StatusNoContent || len(p.Faults()) != 1 {
			t.Errorf("POST clear?kind=latency: %d, faults %+v", status, p.Faults())
		}
		if status, b := admin(t, base, http.MethodPost, "clear?kind=boom", ""); status != http.StatusBadRequest || errorCode(t, b) != "INVALID_KIND" {
			t.Errorf("POST clear?kind=boom: %d %s", status, b)
		}
		if status, _ := admin(t, base, http.MethodPost, "clear", ""); status != http.StatusNoContent || len(p.Faults()) != 0 {
			t.Errorf("POST clear: %d, faults %+v", status, p.Faults())
		}
		if err := put(ctx, c, env.Tables.RateLimits, "a"); err != nil {
			t.Errorf("PutItem after clear: %v", err)
		}
	})

	t.Run("bad faults", func(t *testing.T) {
		for _, body := range []string{
			``, `nope`, `{"kind":"boom"}`, `{"kind":"throttle","operation":["GetItem"]}`, `{"kind":"latency"}`,
			`{"kind":"refuse","tables":["t"]}`, `{"kind":"cut","fraction":2}`, `{"kind":"latency","delayMs":-5}`,
			`{"kind":"latency","delayMs":99999999999999}`,
		} {
			if status, b := admin(t, base, http.MethodPost, "fault", body); status != http.StatusBadRequest || errorCode(t, b) != "INVALID_FAULT" {
				t.Errorf("POST fault %s: %d %s", body, status, b)
			}
		}
		if len(p.Faults()) != 0 {
			t.Errorf("faults = %+v", p.Faults())
		}
	})

	t.Run("unknown endpoint and method", func(t *testing.T) {
		if status, b := admin(t, base, http.MethodGet, "nope", ""); status != http.StatusNotFound || errorCode(t, b) != "NOT_FOUND" {
			t.Errorf("GET nope: %d %s", status, b)
		}
		if status, b := admin(t, base, http.MethodDelete, "stats", ""); status != http.StatusMethodNotAllowed || errorCode(t, b) != "METHOD_NOT_ALLOWED" {
			t.Errorf("DELETE stats: %d %s", status, b)
		}
	})

	t.Run("refuse set over HTTP answers, then clears itself", func(t *testing.T) {
		addr := strings.TrimPrefix(base, "http://")
		if status, b := admin(t, base, http.MethodPost, "fault", `{"kind":"refuse","forMs":1000}`); status != http.StatusNoContent {
			t.Fatalf("POST fault refuse: %d %s", status, b)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		if conn, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			if conn != nil {
				conn.Close()
			}
			t.Fatalf("dial while refusing: %v", err)
		}
		waitFor(t, func() bool { return len(p.Faults()) == 0 })
		if err := put(ctx, c, env.Tables.RateLimits, "a"); err != nil {
			t.Errorf("after the refuse fault expired: %v", err)
		}
	})

	t.Run("a separate admin listener clears a refuse", func(t *testing.T) {
		side := httptest.NewServer(p.AdminHandler())
		defer side.Close()
		if status, _ := admin(t, side.URL, http.MethodPost, "fault", `{"kind":"refuse"}`); status != http.StatusNoContent {
			t.Fatal(status)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		if err := put(ctx, c, env.Tables.RateLimits, "a"); !store.IsUnavailable(err) {
			t.Errorf("PutItem while refusing: %v", err)
		}
		if status, _ := admin(t, side.URL, http.MethodPost, "clear", ""); status != http.StatusNoContent {
			t.Fatal(status)
		}
		if err := put(ctx, c, env.Tables.RateLimits, "a"); err != nil {
			t.Errorf("PutItem after clearing: %v", err)
		}
	})
}
