package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
)

// PolicyNone is the policy of a request that spends nothing (ratelimit's
// policies name the others).
const PolicyNone = ""

// Messages of a rate-limit deny, as the original's rate_limit answer.
const (
	rateLimitMessage = "Rate limit exceeded. Please slow down your requests."
	rateLimitAdvice  = "Consider implementing exponential backoff in your client"
)

// LimitAnswer renders a limiter decision: the quota headers every answer
// that passed the limiter carries (none when the store could not decide),
// and, when the request is refused, the contract's error: denyStatus (429,
// or 503 under RATE_LIMIT_STATUS=503) RATE_LIMIT with Retry-After, or 503
// SERVICE_UNAVAILABLE when the store is down and the limiter fails closed.
func LimitAnswer(d ratelimit.Decision, denyStatus int) (map[string]string, *Error) {
	if d.Unavailable {
		if d.Allowed {
			return nil, nil
		}
		return nil, ServiceUnavailable(d.RetryAfter)
	}
	resetUS := d.Reset.UnixMicro()
	untilReset := resetUS - d.At.UnixMicro()
	h := map[string]string{
		"X-RateLimit-Limit":     strconv.Itoa(d.Limit),
		"X-RateLimit-Remaining": strconv.Itoa(d.Remaining),
		"X-RateLimit-Reset":     strconv.FormatInt(ceilDiv(resetUS, 1000), 10), // epoch ms
		"RateLimit-Policy":      fmt.Sprintf("%q;q=%d;w=%d", d.Policy, d.Limit, int64(d.Window/time.Second)),
		"RateLimit":             fmt.Sprintf("%q;r=%d;t=%d", d.Policy, d.Remaining, ceilDiv(untilReset, 1_000_000)),
	}
	if d.Allowed {
		return h, nil
	}
	retry := CeilSeconds(d.RetryAfter)
	h["RateLimit"] = fmt.Sprintf("%q;r=0;t=%d", d.Policy, retry)
	if denyStatus != http.StatusServiceUnavailable {
		denyStatus = http.StatusTooManyRequests
	}
	e := NewError(denyStatus, CodeRateLimit, rateLimitMessage).
		WithHeader("Retry-After", strconv.FormatInt(retry, 10)).
		WithExtra("retryAfter", retry).
		WithExtra("severity", "low").
		WithExtra("advice", rateLimitAdvice)
	return h, e
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return a / b
	}
	return (a + b - 1) / b
}
