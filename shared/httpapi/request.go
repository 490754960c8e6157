package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// MaxBodyBytes is the limit on a decoded request body.
const MaxBodyBytes = 64 << 10

// TokenSource says where a session token was found; it decides the CSRF check.
type TokenSource int

// Token sources in the contract's order of precedence (the body field is read by the auth handler itself).
const (
	TokenNone TokenSource = iota
	TokenBody
	TokenBearer
	TokenCookie
	TokenQuery
)

// SessionCookie is the cookie that carries the session token.
const SessionCookie = "zenith_session"

// ClearSessionCookie is the Set-Cookie that ends the session cookie (logout).
const ClearSessionCookie = SessionCookie + "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0"

// SessionCookieFor is the Set-Cookie of a login: the token, HttpOnly, Secure,
// SameSite=Strict, living as long as the session's absolute lifetime.
func SessionCookieFor(token string, maxAge time.Duration) string {
	return SessionCookie + "=" + token + "; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=" + strconv.FormatInt(int64(maxAge/time.Second), 10)
}

// Request is a parsed API Gateway HTTP API (payload 2.0) request.
type Request struct {
	Method   string
	Path     string
	RouteKey string            // the matched route pattern, e.g. "GET /api/auth/users/{username}"
	Params   map[string]string // path parameters of the matched route
	Query    map[string]string
	Headers  map[string]string // keys lower-case
	Cookies  map[string]string
	Body     []byte // decoded (base64 undone)

	RequestID       string // API Gateway request id (locally a random id)
	LambdaRequestID string
	SourceIP        string
	// ClientIP is the client's address as the limiter and the lockout count
	// it: X-Forwarded-For only from trusted proxies, IPv6 reduced to its /64.
	ClientIP string
	Started  time.Time

	Token       string
	TokenSource TokenSource
	// Principal is the caller's resolved session, nil when anonymous or invalid.
	Principal *sessions.Principal

	// Logger logs with the request's ids when given the handler's context.
	Logger *slog.Logger

	bodyErr    *Error
	prefetched any
}

// Prefetched returns what the route's Prefetch returned for r, as the type
// the route's handler expects; false when it did not run or returned another
// type.
func Prefetched[T any](r *Request) (T, bool) {
	v, ok := r.prefetched.(T)
	return v, ok
}

// Header returns a request header by case-insensitive name.
func (r *Request) Header(name string) string { return r.Headers[strings.ToLower(name)] }

// ProcessingTime renders the time since the request started as the original's "<n>ms".
func (r *Request) ProcessingTime(now time.Time) string {
	return fmt.Sprintf("%dms", now.Sub(r.Started).Milliseconds())
}

// DecodeJSON decodes the body, which must be a single JSON object, into dst,
// rejecting unknown fields and wrong types with the contract's codes.
func (r *Request) DecodeJSON(dst any) error {
	if r.bodyErr != nil {
		return r.bodyErr
	}
	return DecodeJSON(r.Body, dst)
}

// DecodeJSON decodes body into dst with the contract's errors: EMPTY_BODY,
// JSON_PARSE_ERROR, INVALID_BODY_TYPE and VALIDATION_ERROR (a key that is
// not exactly a field name, a key repeated in one object, a wrong type).
// Names match exactly, as the original's JavaScript read them: encoding/json
// alone would take "USERNAME" for "username" and the last of two "action"s.
// dst should be a pointer to a struct.
func DecodeJSON(body []byte, dst any) error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return BadRequest(CodeEmptyBody, "Request body is required")
	}
	if !json.Valid(trimmed) {
		return BadRequest(CodeJSONParse, "Invalid JSON in request body")
	}
	if trimmed[0] != '{' {
		return BadRequest(CodeInvalidBodyType, "Request body must be a JSON object")
	}
	if err := checkNames(trimmed, reflect.TypeOf(dst)); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return BadRequest(CodeJSONParse, "Invalid JSON in request body")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return BadRequest(CodeJSONParse, "Invalid JSON in request body")
	}
	return nil
}

// decodeError maps what encoding/json still finds after checkNames (a value
// of the wrong type) to VALIDATION_ERROR.
func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return Validation(fmt.Sprintf("%s must be of type %s", field, jsonType(typeErr.Type.Kind().String())))
	}
	return Validation("request body has an invalid value")
}

func jsonType(kind string) string {
	switch {
	case kind == "bool":
		return "boolean"
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "integer"
	case strings.HasPrefix(kind, "float"):
		return "number"
	case kind == "string":
		return "string"
	case kind == "slice" || kind == "array":
		return "array"
	}
	return "object"
}

// SessionResolver turns a token into the caller's principal; (nil, nil) when
// the token is unknown, expired or revoked. KnownUser names the user of a
// token validated on this instance before, without a call.
type SessionResolver interface {
	Resolve(ctx context.Context, token string) (*sessions.Principal, error)
	KnownUser(token string) (userID string, ok bool)
}

// Limiter decides whether a client's request may proceed under a policy.
// CachedDeny says, without a call, that the next request is known to be
// refused.
type Limiter interface {
	Limit(ctx context.Context, policy, clientKey string) (ratelimit.Decision, error)
	CachedDeny(ctx context.Context, policy, clientKey string) bool
}

// Recorder records finished requests; it must never fail or block a request
// for long. Start is called as a request begins (probes excepted) and returns
// what to call before the request is answered: a recorder may start a due
// flush of its counters there, so it overlaps the request's own work.
type Recorder interface {
	Start(ctx context.Context) (wait func())
	Record(ctx context.Context, o metrics.Observation)
}
