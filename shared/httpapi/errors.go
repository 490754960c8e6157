package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Stable error codes of the contract.
const (
	CodeEmptyBody          = "EMPTY_BODY"
	CodeJSONParse          = "JSON_PARSE_ERROR"
	CodeInvalidBodyType    = "INVALID_BODY_TYPE"
	CodeValidation         = "VALIDATION_ERROR"
	CodePayloadTooLarge    = "PAYLOAD_TOO_LARGE"
	CodeUnauthorized       = "UNAUTHORIZED"
	CodeForbidden          = "FORBIDDEN"
	CodeCSRF               = "CSRF_REJECTED"
	CodeNotFound           = "NOT_FOUND"
	CodeMethodNotAllowed   = "METHOD_NOT_ALLOWED"
	CodeRateLimit          = "RATE_LIMIT"
	CodeOverload           = "SYS_OVERLOAD"
	CodeServiceUnavailable = "SERVICE_UNAVAILABLE"
	CodeInternal           = "INTERNAL_ERROR"
)

// Error is an HTTP outcome other than success, rendered in the route's envelope.
// Handlers return it as their error; anything else becomes a 500 or 503.
type Error struct {
	Status  int
	Code    string
	Message string
	Details []string          // only on VALIDATION_ERROR
	Headers map[string]string // e.g. Retry-After
	Extra   map[string]any    // extra body fields, e.g. retryAfter on the traffic envelope
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// WithHeader returns e with a response header set.
func (e *Error) WithHeader(k, v string) *Error {
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	e.Headers[k] = v
	return e
}

// WithExtra returns e with an extra body field set.
func (e *Error) WithExtra(k string, v any) *Error {
	if e.Extra == nil {
		e.Extra = map[string]any{}
	}
	e.Extra[k] = v
	return e
}

// NewError returns an Error with the given status, code and message.
func NewError(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// BadRequest is a 400 with a route-specific code.
func BadRequest(code, message string) *Error { return NewError(http.StatusBadRequest, code, message) }

// Validation is a 400 VALIDATION_ERROR listing what is wrong.
func Validation(details ...string) *Error {
	e := NewError(http.StatusBadRequest, CodeValidation, "Validation failed")
	e.Details = details
	return e
}

// Unauthorized is a 401.
func Unauthorized(code, message string) *Error {
	return NewError(http.StatusUnauthorized, code, message)
}

// Forbidden is a 403 FORBIDDEN.
func Forbidden() *Error {
	return NewError(http.StatusForbidden, CodeForbidden, "Insufficient permissions")
}

// NotFound is a 404 NOT_FOUND.
func NotFound(message string) *Error {
	if message == "" {
		message = "Not found"
	}
	return NewError(http.StatusNotFound, CodeNotFound, message)
}

// Conflict is a 409 with a route-specific code.
func Conflict(code, message string) *Error { return NewError(http.StatusConflict, code, message) }

// TooManyRequests is a 429 with a route-specific code and Retry-After.
func TooManyRequests(code, message string, retryAfter time.Duration) *Error {
	return NewError(http.StatusTooManyRequests, code, message).WithHeader("Retry-After", RetryAfterSeconds(retryAfter))
}

// ServiceUnavailable is a 503 SERVICE_UNAVAILABLE with Retry-After.
func ServiceUnavailable(retryAfter time.Duration) *Error {
	return NewError(http.StatusServiceUnavailable, CodeServiceUnavailable, "Service temporarily unavailable, please retry").
		WithHeader("Retry-After", RetryAfterSeconds(retryAfter))
}

// RetryAfterSeconds renders d as whole seconds, rounded up, at least 1.
func RetryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(CeilSeconds(d), 10)
}

// CeilSeconds is d in whole seconds rounded up, at least 1.
func CeilSeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}
