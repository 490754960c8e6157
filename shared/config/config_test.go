package config_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := config.Load("auth", env(nil))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DBTimeout", c.DBTimeout, 5 * time.Second},
		{"RateLimitRPM", c.RateLimitRPM, 100},
		{"RateLimitBurst", c.RateLimitBurst, 10},
		{"RateLimitWindow", c.RateLimitWindow, time.Minute},
		{"RateLimitAPIRPM", c.RateLimitAPIRPM, 600},
		{"RateLimitAPIBurst", c.RateLimitAPIBurst, 60},
		{"RateLimitFailMode", c.RateLimitFailMode, "open"},
		{"RateLimitStatus", c.RateLimitStatus, 429},
		{"SessionTTL", c.SessionTTL, 24 * time.Hour},
		{"SessionMaxLifetime", c.SessionMaxLifetime, 7 * 24 * time.Hour},
		{"SessionTouchInterval", c.SessionTouchInterval, time.Minute},
		{"TrafficCapacityRPM", c.TrafficCapacityRPM, 6000},
		{"ShedThreshold", c.ShedThreshold, 0.8},
		{"ShedAdmitRatio", c.ShedAdmitRatio, 0.1},
		{"LoadSimulationEnabled", c.LoadSimulationEnabled, false},
		{"LoadOverrideTTL", c.LoadOverrideTTL, 300 * time.Second},
		{"MetricShards", c.MetricShards, 4},
		{"MetricsRealtime", c.MetricsRealtime, true},
		{"MetricsFlushInterval", c.MetricsFlushInterval, time.Second},
		{"MetricsHistorySource", c.MetricsHistorySource, "cloudwatch"},
		{"SlowQuery", c.SlowQuery, time.Second},
		{"Users table", c.Tables.Users, "zenith-users"},
		{"Function", c.Function, "auth"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	local, err := config.Load("auth", env(map[string]string{"DYNAMODB_ENDPOINT": "http://127.0.0.1:8000"}))
	if err != nil {
		t.Fatal(err)
	}
	if local.MetricsHistorySource != "dynamodb" {
		t.Errorf("local history source %q, want dynamodb", local.MetricsHistorySource)
	}
}

func TestParsesValues(t *testing.T) {
	c, err := config.Load("traffic-manager", env(map[string]string{
		"TRUSTED_PROXY_CIDRS":    " 10.0.0.0/8, 2001:db8::1/64 ",
		"ALLOWED_ORIGINS":        "https://App.Example.com, http://localhost:3000/",
		"RATE_LIMIT_STATUS":      "503",
		"RATE_LIMIT_SHADOW":      "TRUE",
		"METRICS_REALTIME":       "off",
		"SHED_THRESHOLD":         "0.5",
		"METRICS_FLUSH_INTERVAL": "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[1].String() != "2001:db8::/64" {
		t.Errorf("proxies %v", c.TrustedProxies)
	}
	if strings.Join(c.AllowedOrigins, " ") != "https://app.example.com http://localhost:3000" {
		t.Errorf("origins %v", c.AllowedOrigins)
	}
	if c.RateLimitStatus != 503 || !c.RateLimitShadow || c.MetricsRealtime || c.ShedThreshold != 0.5 || c.MetricsFlushInterval != 0 {
		t.Errorf("parsed %+v", c)
	}
}

func TestErrorsNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"DB_TIMEOUT":             "soon",
		"RATE_LIMIT_RPM":         "0",
		"RATE_LIMIT_FAIL_MODE":   "maybe",
		"RATE_LIMIT_STATUS":      "500",
		"RATE_LIMIT_SHADOW":      "yes please",
		"TRUSTED_PROXY_CIDRS":    "10.0.0.0/33",
		"ALLOWED_ORIGINS":        "not a url",
		"SHED_ADMIT_RATIO":       "1.5",
		"SHED_THRESHOLD":         "NaN",
		"METRIC_SHARDS":          "-1",
		"METRICS_HISTORY_SOURCE": "prometheus",
		"METRICS_FLUSH_INTERVAL": "60001",
		"DYNAMODB_ENDPOINT":      "localhost:8000",
		"SESSION_MAX_LIFETIME":   "60",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := config.Load("auth", env(map[string]string{name: value}))
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
		})
	}
	_, err := config.Load("auth", env(map[string]string{"RATE_LIMIT_RPM": "x", "METRIC_SHARDS": "y"}))
	if err == nil || !strings.Contains(err.Error(), "RATE_LIMIT_RPM") || !strings.Contains(err.Error(), "METRIC_SHARDS") {
		t.Errorf("all problems not reported together: %v", err)
	}
}

// config.Variables is what the template test checks against the template, so
// it must be exactly what Load reads (less the variables Lambda itself sets).
func TestVariablesListsEveryVariableLoadReads(t *testing.T) {
	read := map[string]bool{}
	if _, err := config.Load("auth", func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range config.Variables {
		if listed[v] {
			t.Errorf("%s listed twice", v)
		}
		listed[v] = true
		if !read[v] {
			t.Errorf("%s is listed but Load never reads it", v)
		}
	}
	for v := range read {
		if strings.HasPrefix(v, "AWS_") { // set by Lambda, not declared in the template
			continue
		}
		if !listed[v] {
			t.Errorf("Load reads %s, which config.Variables does not list (so the template test cannot check it)", v)
		}
	}
}

// TestTableRegistry checks that TableSpecs covers every field of Tables exactly
// once, and that everything derived from it agrees.
func TestTableRegistry(t *testing.T) {
	fields := reflect.TypeOf(config.Tables{}).NumField()
	if len(config.TableSpecs) != fields {
		t.Fatalf("%d table specs for %d fields of config.Tables", len(config.TableSpecs), fields)
	}
	prefixed := config.DefaultTables.WithPrefix("p-")
	env := map[string]string{}
	seen := map[string]bool{}
	for _, s := range config.TableSpecs {
		t.Run(s.LogicalID, func(t *testing.T) {
			for _, key := range []string{"id " + s.LogicalID, "env " + s.Env, "default " + s.Default} {
				if seen[key] {
					t.Errorf("%s is in the registry twice", key)
				}
				seen[key] = true
			}
			if got, ok := config.DefaultTables.Name(s.LogicalID); !ok || got != s.Default {
				t.Errorf("DefaultTables.Name = %q, %v; want %q", got, ok, s.Default)
			}
			if got, _ := prefixed.Name(s.LogicalID); got != "p-"+s.Default {
				t.Errorf("WithPrefix gives %q, want %q", got, "p-"+s.Default)
			}
			if got := prefixed.Env()[s.Env]; got != "p-"+s.Default {
				t.Errorf("Env()[%s] = %q, want %q", s.Env, got, "p-"+s.Default)
			}
			if got, ok := config.LookupTableSpec(s.LogicalID); !ok || got.Env != s.Env {
				t.Errorf("LookupTableSpec = %+v, %v", got, ok)
			}
			if !slices.Contains(config.Variables, s.Env) {
				t.Errorf("config.Variables lacks %s", s.Env)
			}
		})
		env[s.Env] = "x-" + s.LogicalID
	}
	// Every field holds a different table, so no field is missing from the registry.
	v := reflect.ValueOf(prefixed)
	distinct := map[string]bool{}
	for i := range fields {
		distinct[v.Field(i).String()] = true
	}
	if len(distinct) != fields {
		t.Errorf("config.Tables fields share names, a field has no spec: %+v", prefixed)
	}
	if _, ok := config.DefaultTables.Name("NoSuchTable"); ok {
		t.Error("Name found a table the registry does not have")
	}
	// Load reads each variable into its own field.
	c, err := config.Load("auth", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.TableSpecs {
		if got, _ := c.Tables.Name(s.LogicalID); got != "x-"+s.LogicalID {
			t.Errorf("Load read %s as %q, want %q", s.Env, got, "x-"+s.LogicalID)
		}
	}
	if c.Tables.Users != "x-UsersTable" || c.Tables.LoadOverrides != "x-LoadOverridesTable" {
		t.Errorf("named fields: %+v", c.Tables)
	}
}
