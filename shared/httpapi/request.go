package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
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
	Started         time.Time

	Token       string
	TokenSource TokenSource
	// Principal is the caller's resolved session, nil when anonymous or invalid.
	Principal *Principal

	Logger *slog.Logger

	bodyErr *Error
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
// JSON_PARSE_ERROR, INVALID_BODY_TYPE and VALIDATION_ERROR (unknown field,
// wrong type). dst should be a pointer to a struct.
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

func decodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return Validation(fmt.Sprintf("%s must be of type %s", field, jsonType(typeErr.Type.Kind().String())))
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return Validation(fmt.Sprintf("unknown field %s", f))
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

// Principal is the caller behind a valid session, resolved once per request.
type Principal struct {
	UserID      string
	Username    string
	Name        string
	Role        string
	SessionHash string // hex SHA-256 of the token; the token itself is never kept
	Handle      string // public session handle
	// Permissions holds the role's boolean permissions by API.md name
	// (systemMonitoring, userManagement, trafficControl, ...).
	Permissions map[string]bool
	// Session is the domain's own session record, for handlers that need more.
	Session any
}

// Can reports whether the principal's role grants permission.
func (p *Principal) Can(permission string) bool {
	return p != nil && p.Permissions[permission]
}

// SessionResolver turns a token into a principal; (nil, nil) when the token is
// unknown, expired or revoked.
type SessionResolver interface {
	Resolve(ctx context.Context, token string) (*Principal, error)
}

// LimitResult is a limiter's decision on one request.
type LimitResult struct {
	Headers map[string]string // rate-limit headers for the answer, allow or deny
	Denied  bool
	// Deny is the answer to a denied request (429 RATE_LIMIT, or 503); nil when allowed.
	Deny *Error
}

// Limiter decides whether a request may proceed under policy.
type Limiter interface {
	Limit(ctx context.Context, policy string, r *Request) (LimitResult, error)
}

// Observation is one finished request, for the metrics recorder.
type Observation struct {
	Function string
	Route    string // route pattern, "unmatched" for 404s
	Method   string
	Status   int
	// Code is the answer's error code ("" on success); RATE_LIMIT marks a
	// throttled request whatever its status (RATE_LIMIT_STATUS=503).
	Code string
	// Admitted is true when the request spent quota under a limiter policy and
	// was let through: the traffic a client's quota bounds, which the load
	// signal counts. Free probes (status=true) and denials are not admitted.
	Admitted bool
	Duration time.Duration
	At       time.Time
}

// Recorder records observations; it must never fail or block a request for long.
type Recorder interface {
	Record(ctx context.Context, o Observation)
}
