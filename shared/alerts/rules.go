// Package alerts evaluates API.md's alert rules over the last complete minute
// and keeps the alerts they raise in ALERTS_TABLE: at most one alert per rule
// per window however many evaluations run (conditional writes), a
// firing/resolved lifecycle, idempotent acknowledgement and a 7-day TTL.
package alerts

import (
	"fmt"
	"time"
)

// Levels of an alert.
const (
	LevelWarning  = "warning"
	LevelCritical = "critical"
)

// States of an alert.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Rule names (part of an alert's id).
const (
	RuleErrorRate      = "error_rate"
	RuleResponseTime   = "response_time"
	RuleFailedRequests = "failed_requests"
	RuleFailedLogins   = "failed_logins"
	RuleMemory         = "memory"
)

// Inputs are the measured figures of one window (one minute). A nil input is
// unknown: every rule that needs it is disabled and never fires.
type Inputs struct {
	Window       time.Time // start of the minute evaluated
	Requests     *int64
	Failed       *int64 // status >= 500
	DurationMs   *int64 // summed
	FailedLogins *int64
	Memory       *float64 // fraction of the configured memory
}

// Check is one rule's verdict on one window.
type Check struct {
	Rule      string
	Level     string
	Enabled   bool // false when an input is null
	Breached  bool
	Value     float64
	Threshold float64
	Message   string
}

// Rule is one of API.md's alert rules.
type Rule struct {
	Name  string
	Level string
	Check func(in Inputs) Check
}

// Rules are API.md's alert rules, in a fixed order.
var Rules = []Rule{
	{RuleErrorRate, LevelWarning, checkErrorRate},
	{RuleResponseTime, LevelWarning, checkResponseTime},
	{RuleFailedRequests, LevelWarning, checkFailedRequests},
	{RuleFailedLogins, LevelCritical, checkFailedLogins},
	{RuleMemory, LevelCritical, checkMemory},
}

// Thresholds of the rules.
const (
	ErrorRatePercent    = 5.0
	ErrorRateMinimum    = 20
	ResponseTimeMs      = 5000.0
	FailedRequestsLimit = 10
	FailedLoginsLimit   = 5
	MemoryFraction      = 0.85
)

// RuleByName returns the rule called name.
func RuleByName(name string) (Rule, bool) {
	for _, r := range Rules {
		if r.Name == name {
			return r, true
		}
	}
	return Rule{}, false
}

// Evaluate applies every rule to in.
func Evaluate(in Inputs) []Check {
	out := make([]Check, 0, len(Rules))
	for _, r := range Rules {
		c := r.Check(in)
		c.Rule, c.Level = r.Name, r.Level
		out = append(out, c)
	}
	return out
}

func checkErrorRate(in Inputs) Check {
	if in.Requests == nil || in.Failed == nil {
		return Check{Threshold: ErrorRatePercent}
	}
	c := Check{Enabled: true, Threshold: ErrorRatePercent}
	if *in.Requests > 0 {
		c.Value = float64(*in.Failed) / float64(*in.Requests) * 100
	}
	c.Breached = *in.Requests >= ErrorRateMinimum && c.Value > ErrorRatePercent
	c.Message = fmt.Sprintf("Error rate %.2f%% over the last minute (%d of %d requests failed; threshold %.0f%% with at least %d requests)",
		c.Value, *in.Failed, *in.Requests, ErrorRatePercent, ErrorRateMinimum)
	return c
}

func checkResponseTime(in Inputs) Check {
	if in.Requests == nil || in.DurationMs == nil {
		return Check{Threshold: ResponseTimeMs}
	}
	c := Check{Enabled: true, Threshold: ResponseTimeMs}
	if *in.Requests > 0 {
		c.Value = float64(*in.DurationMs) / float64(*in.Requests)
	}
	c.Breached = c.Value > ResponseTimeMs
	c.Message = fmt.Sprintf("Average response time %.0f ms over the last minute (threshold %.0f ms)", c.Value, ResponseTimeMs)
	return c
}

func checkFailedRequests(in Inputs) Check {
	if in.Failed == nil {
		return Check{Threshold: FailedRequestsLimit}
	}
	c := Check{Enabled: true, Threshold: FailedRequestsLimit, Value: float64(*in.Failed)}
	c.Breached = *in.Failed > FailedRequestsLimit
	c.Message = fmt.Sprintf("%d failed requests over the last minute (threshold %d)", *in.Failed, FailedRequestsLimit)
	return c
}

func checkFailedLogins(in Inputs) Check {
	if in.FailedLogins == nil {
		return Check{Threshold: FailedLoginsLimit}
	}
	c := Check{Enabled: true, Threshold: FailedLoginsLimit, Value: float64(*in.FailedLogins)}
	c.Breached = *in.FailedLogins > FailedLoginsLimit
	c.Message = fmt.Sprintf("%d failed logins over the last minute (threshold %d)", *in.FailedLogins, FailedLoginsLimit)
	return c
}

func checkMemory(in Inputs) Check {
	if in.Memory == nil {
		return Check{Threshold: MemoryFraction}
	}
	c := Check{Enabled: true, Threshold: MemoryFraction, Value: *in.Memory}
	c.Breached = *in.Memory > MemoryFraction
	c.Message = fmt.Sprintf("Memory usage %.0f%% of the configured size (threshold %.0f%%)", *in.Memory*100, MemoryFraction*100)
	return c
}
