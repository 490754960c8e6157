// Package config reads every environment variable once at start into a typed
// Config. A bad value stops the start with an error naming the variable.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Tables holds the DynamoDB table names, one per concern. TableSpecs says
// which template table and environment variable each field belongs to.
type Tables struct {
	Users         string // USERS_TABLE: users and roles
	Sessions      string // SESSIONS_TABLE
	LoginAttempts string // LOGIN_ATTEMPTS_TABLE: failed-login counters
	RateLimits    string // RATE_LIMITS_TABLE: GCRA state
	Metrics       string // METRICS_TABLE: per-minute counters
	Alerts        string // ALERTS_TABLE
	LoadOverrides string // LOAD_OVERRIDES_TABLE
}

// TableSpec is one table of the registry: its logical ID in template.yaml,
// the environment variable that carries its name to the functions, and its
// name on the local stack.
type TableSpec struct {
	LogicalID string
	Env       string
	Default   string
	field     func(*Tables) *string
}

// TableSpecs is the registry of tables, the one place a table is listed:
// Load, Variables, DefaultTables, WithPrefix, Name and Env all derive from it.
var TableSpecs = []TableSpec{
	{"UsersTable", "USERS_TABLE", "zenith-users", func(t *Tables) *string { return &t.Users }},
	{"SessionsTable", "SESSIONS_TABLE", "zenith-sessions", func(t *Tables) *string { return &t.Sessions }},
	{"LoginAttemptsTable", "LOGIN_ATTEMPTS_TABLE", "zenith-login-attempts", func(t *Tables) *string { return &t.LoginAttempts }},
	{"RateLimitsTable", "RATE_LIMITS_TABLE", "zenith-rate-limits", func(t *Tables) *string { return &t.RateLimits }},
	{"MetricsTable", "METRICS_TABLE", "zenith-metrics", func(t *Tables) *string { return &t.Metrics }},
	{"AlertsTable", "ALERTS_TABLE", "zenith-alerts", func(t *Tables) *string { return &t.Alerts }},
	{"LoadOverridesTable", "LOAD_OVERRIDES_TABLE", "zenith-load-overrides", func(t *Tables) *string { return &t.LoadOverrides }},
}

// LookupTableSpec returns the registry entry of a template table.
func LookupTableSpec(logicalID string) (TableSpec, bool) {
	for _, s := range TableSpecs {
		if s.LogicalID == logicalID {
			return s, true
		}
	}
	return TableSpec{}, false
}

// DefaultTables are the names the local stack uses; the template passes the deployed ones.
var DefaultTables = func() Tables {
	var t Tables
	for _, s := range TableSpecs {
		*s.field(&t) = s.Default
	}
	return t
}()

// WithPrefix returns the names with prefix prepended; tests isolate themselves this way.
func (t Tables) WithPrefix(prefix string) Tables {
	out := t
	for _, s := range TableSpecs {
		*s.field(&out) = prefix + *s.field(&t)
	}
	return out
}

// Name returns the name of a table given its logical ID in template.yaml.
func (t Tables) Name(logicalID string) (string, bool) {
	s, ok := LookupTableSpec(logicalID)
	if !ok {
		return "", false
	}
	return *s.field(&t), true
}

// Env returns the names as the environment that Load reads them from
// (USERS_TABLE → name, ...), for tests and tools that start a function.
func (t Tables) Env() map[string]string {
	out := make(map[string]string, len(TableSpecs))
	for _, s := range TableSpecs {
		out[s.Env] = *s.field(&t)
	}
	return out
}

// Config is the whole typed configuration of a function instance.
type Config struct {
	// Function is the short function name ("auth", "session", "traffic-manager",
	// "system-monitor"), set by main, used as the metric dimension.
	Function string

	DynamoDBEndpoint string        // DYNAMODB_ENDPOINT, URL; empty means AWS
	DBTimeout        time.Duration // DB_TIMEOUT, ms
	Region           string        // AWS_REGION

	RateLimitRPM      int            // RATE_LIMIT_RPM
	RateLimitBurst    int            // RATE_LIMIT_BURST
	RateLimitWindow   time.Duration  // RATE_LIMIT_WINDOW, s
	RateLimitAPIRPM   int            // RATE_LIMIT_API_RPM
	RateLimitAPIBurst int            // RATE_LIMIT_API_BURST
	RateLimitFailMode string         // RATE_LIMIT_FAIL_MODE: open|closed
	RateLimitShadow   bool           // RATE_LIMIT_SHADOW
	RateLimitStatus   int            // RATE_LIMIT_STATUS: 429|503
	TrustedProxies    []netip.Prefix // TRUSTED_PROXY_CIDRS

	SessionTTL           time.Duration // SESSION_TTL, s (idle, sliding)
	SessionMaxLifetime   time.Duration // SESSION_MAX_LIFETIME, s (absolute)
	SessionTouchInterval time.Duration // SESSION_TOUCH_INTERVAL, s

	MasterUsername       string // MASTER_USERNAME
	MasterPassword       string // MASTER_PASSWORD (never logged)
	MasterPasswordSecret string // MASTER_PASSWORD_SECRET: Secrets Manager ARN/name or SSM parameter

	AllowedOrigins []string // ALLOWED_ORIGINS, comma separated

	TrafficCapacityRPM    int           // TRAFFIC_CAPACITY_RPM
	ShedThreshold         float64       // SHED_THRESHOLD
	ShedAdmitRatio        float64       // SHED_ADMIT_RATIO
	LoadSimulationEnabled bool          // LOAD_SIMULATION_ENABLED
	LoadOverrideTTL       time.Duration // LOAD_OVERRIDE_TTL, s

	MetricShards         int           // METRIC_SHARDS
	MetricsRealtime      bool          // METRICS_REALTIME: dynamodb|off
	MetricsFlushInterval time.Duration // METRICS_FLUSH_INTERVAL, ms; 0: one counter write per request
	MetricsShutdownFlush bool          // METRICS_SHUTDOWN_FLUSH: flush pending counts on SIGTERM (costs init time)
	MetricsHistorySource string        // METRICS_HISTORY_SOURCE: cloudwatch|dynamodb
	SlowQuery            time.Duration // SLOW_QUERY_MS, ms

	MemoryLimitMB int // AWS_LAMBDA_FUNCTION_MEMORY_SIZE, set by Lambda

	Tables Tables
}

// Load reads the configuration through getenv (os.Getenv in main, a map in tests).
// All problems are reported together, each naming its variable.
func Load(function string, getenv func(string) string) (Config, error) {
	r := reader{getenv: getenv}
	c := Config{Function: function}

	c.DynamoDBEndpoint = r.url("DYNAMODB_ENDPOINT")
	c.DBTimeout = r.millis("DB_TIMEOUT", 5000, 1, 60000)
	c.Region = r.str("AWS_REGION", "")
	if c.Region == "" {
		c.Region = r.str("AWS_DEFAULT_REGION", "us-east-1")
	}

	c.RateLimitRPM = r.integer("RATE_LIMIT_RPM", 100, 1, 1_000_000)
	c.RateLimitBurst = r.integer("RATE_LIMIT_BURST", 10, 0, 1_000_000)
	c.RateLimitWindow = r.seconds("RATE_LIMIT_WINDOW", 60, 1, 86400)
	c.RateLimitAPIRPM = r.integer("RATE_LIMIT_API_RPM", 600, 1, 1_000_000)
	c.RateLimitAPIBurst = r.integer("RATE_LIMIT_API_BURST", 60, 0, 1_000_000)
	c.RateLimitFailMode = r.oneOf("RATE_LIMIT_FAIL_MODE", "open", "open", "closed")
	c.RateLimitShadow = r.boolean("RATE_LIMIT_SHADOW", false)
	c.RateLimitStatus = r.integer("RATE_LIMIT_STATUS", 429, 429, 503)
	if c.RateLimitStatus != 429 && c.RateLimitStatus != 503 {
		r.fail("RATE_LIMIT_STATUS", "must be 429 or 503")
	}
	c.TrustedProxies = r.cidrs("TRUSTED_PROXY_CIDRS")

	c.SessionTTL = r.seconds("SESSION_TTL", 86400, 60, 365*86400)
	c.SessionMaxLifetime = r.seconds("SESSION_MAX_LIFETIME", 604800, 60, 365*86400)
	c.SessionTouchInterval = r.seconds("SESSION_TOUCH_INTERVAL", 60, 0, 86400)
	if c.SessionMaxLifetime < c.SessionTTL {
		r.fail("SESSION_MAX_LIFETIME", "must not be shorter than SESSION_TTL")
	}

	c.MasterUsername = r.str("MASTER_USERNAME", "")
	c.MasterPassword = getenv("MASTER_PASSWORD")
	c.MasterPasswordSecret = r.str("MASTER_PASSWORD_SECRET", "")

	c.AllowedOrigins = r.origins("ALLOWED_ORIGINS")

	c.TrafficCapacityRPM = r.integer("TRAFFIC_CAPACITY_RPM", 6000, 1, 1_000_000_000)
	c.ShedThreshold = r.fraction("SHED_THRESHOLD", 0.8)
	c.ShedAdmitRatio = r.fraction("SHED_ADMIT_RATIO", 0.1)
	c.LoadSimulationEnabled = r.boolean("LOAD_SIMULATION_ENABLED", false)
	c.LoadOverrideTTL = r.seconds("LOAD_OVERRIDE_TTL", 300, 1, 86400)

	c.MetricShards = r.integer("METRIC_SHARDS", 4, 1, 256)
	c.MetricsRealtime = r.oneOf("METRICS_REALTIME", "dynamodb", "dynamodb", "off") == "dynamodb"
	c.MetricsFlushInterval = r.millis("METRICS_FLUSH_INTERVAL", 1000, 0, 60000)
	c.MetricsShutdownFlush = r.boolean("METRICS_SHUTDOWN_FLUSH", false)
	defaultSource := "cloudwatch"
	if c.DynamoDBEndpoint != "" {
		defaultSource = "dynamodb" // the local stack has no CloudWatch
	}
	c.MetricsHistorySource = r.oneOf("METRICS_HISTORY_SOURCE", defaultSource, "cloudwatch", "dynamodb")
	c.SlowQuery = r.millis("SLOW_QUERY_MS", 1000, 1, 900000)

	c.MemoryLimitMB = r.integer("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 0, 0, 1_000_000)

	for _, s := range TableSpecs {
		*s.field(&c.Tables) = r.str(s.Env, s.Default)
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

// Variables lists every environment variable Load reads, for the template test.
var Variables = append([]string{
	"DYNAMODB_ENDPOINT", "DB_TIMEOUT",
	"RATE_LIMIT_RPM", "RATE_LIMIT_BURST", "RATE_LIMIT_WINDOW", "RATE_LIMIT_API_RPM", "RATE_LIMIT_API_BURST",
	"RATE_LIMIT_FAIL_MODE", "RATE_LIMIT_SHADOW", "RATE_LIMIT_STATUS", "TRUSTED_PROXY_CIDRS",
	"SESSION_TTL", "SESSION_MAX_LIFETIME", "SESSION_TOUCH_INTERVAL",
	"MASTER_USERNAME", "MASTER_PASSWORD", "MASTER_PASSWORD_SECRET",
	"ALLOWED_ORIGINS",
	"TRAFFIC_CAPACITY_RPM", "SHED_THRESHOLD", "SHED_ADMIT_RATIO", "LOAD_SIMULATION_ENABLED", "LOAD_OVERRIDE_TTL",
	"METRIC_SHARDS", "METRICS_REALTIME", "METRICS_FLUSH_INTERVAL", "METRICS_SHUTDOWN_FLUSH", "METRICS_HISTORY_SOURCE", "SLOW_QUERY_MS",
}, tableVariables()...)

func tableVariables() []string {
	out := make([]string, 0, len(TableSpecs))
	for _, s := range TableSpecs {
		out = append(out, s.Env)
	}
	return out
}

type reader struct {
	getenv func(string) string
	errs   []error
}

func (r *reader) fail(name, msg string) {
	r.errs = append(r.errs, fmt.Errorf("%s %s", name, msg))
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.getenv(name)); v != "" {
		return v
	}
	return def
}

func (r *reader) integer(name string, def, lo, hi int) int {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, fmt.Sprintf("must be an integer from %d to %d, got %q", lo, hi, v))
		return def
	}
	return n
}

func (r *reader) seconds(name string, def, lo, hi int) time.Duration {
	return time.Duration(r.integer(name, def, lo, hi)) * time.Second
}

func (r *reader) millis(name string, def, lo, hi int) time.Duration {
	return time.Duration(r.integer(name, def, lo, hi)) * time.Millisecond
}

func (r *reader) fraction(name string, def float64) float64 {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 || f > 1 || f != f {
		r.fail(name, fmt.Sprintf("must be a number from 0 to 1, got %q", v))
		return def
	}
	return f
}

func (r *reader) boolean(name string, def bool) bool {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, fmt.Sprintf("must be true or false, got %q", v))
		return def
	}
	return b
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := strings.ToLower(strings.TrimSpace(r.getenv(name)))
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), v))
	return def
}

func (r *reader) url(name string) string {
	v := strings.TrimSpace(r.getenv(name))
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r.fail(name, fmt.Sprintf("must be an http(s) URL, got %q", v))
		return ""
	}
	return v
}

func (r *reader) cidrs(name string) []netip.Prefix {
	var out []netip.Prefix
	for _, part := range splitList(r.getenv(name)) {
		p, err := netip.ParsePrefix(part)
		if err != nil {
			r.fail(name, fmt.Sprintf("has an invalid CIDR %q", part))
			continue
		}
		out = append(out, p.Masked())
	}
	return out
}

func (r *reader) origins(name string) []string {
	var out []string
	for _, part := range splitList(r.getenv(name)) {
		u, err := url.Parse(part)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			r.fail(name, fmt.Sprintf("has an invalid origin %q (want scheme://host[:port])", part))
			continue
		}
		out = append(out, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	return out
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
