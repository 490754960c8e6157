// Package httpapi is the request layer every function shares: it turns an API
// Gateway HTTP API event into a Request, runs the session resolver, the rate
// limiter, the CSRF and permission checks and the route's handler, and renders
// every outcome, errors included, in the route's JSON envelope. It never
// returns an error to Lambda for an HTTP outcome.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/ctxlog"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// Envelope is the shape of an error body; the contract keeps the original's per route.
type Envelope int

// The three error envelopes of API.md.
const (
	// EnvelopeStandard: {"success":false,"error","code","requestId"}.
	EnvelopeStandard Envelope = iota
	// EnvelopeMonitor: {"error","code","requestId","timestamp"} (GET /api/system-monitor).
	EnvelopeMonitor
	// EnvelopeTraffic: {"error":true,"message","code","requestId","timestamp"} (GET /api/traffic-manager).
	EnvelopeTraffic
)

// Permission values of Route.Permission besides the role permissions.
const (
	Public        = ""         // anyone, session optional
	Authenticated = "*session" // any valid session
)

// HandlerFunc handles one routed request. It returns a *Error for every
// non-2xx outcome; any other error is a bug or an unreachable store.
type HandlerFunc func(ctx context.Context, r *Request) (*Response, error)

// Route binds a method and path pattern ("/api/auth/users/{username}") to a handler.
type Route struct {
	Method     string
	Path       string
	Permission string // Public, Authenticated, or a role permission name
	Handler    HandlerFunc
	// Probe marks a health probe: it never reads a session (a token is
	// ignored), spends no limiter quota and never starts a metrics flush, so
	// probing costs no DynamoDB call beyond the handler's own.
	Probe bool
	// Prefetch, when set, starts the handler's first reads alongside the
	// limiter's decision of an anonymous request, so the two cost one round
	// trip; the handler finds the result in Request.Prefetched. It must only
	// read (its result is dropped when the request is refused), and it does
	// not run for a client the limiter already knows to refuse.
	Prefetch func(ctx context.Context, r *Request) any
}

// Response is a successful (or handler-shaped) answer. Body is marshalled as
// JSON; when it is an object without "requestId" the request id is added.
type Response struct {
	Status  int
	Body    any
	Headers map[string]string
	Cookies []string
}

// JSON is a Response with status and body.
func JSON(status int, body any) *Response { return &Response{Status: status, Body: body} }

// App is one function's HTTP surface and its middleware.
type App struct {
	Function string // metric dimension and log field: "auth", "session", ...
	Routes   []Route

	// EnvelopeFor picks the error envelope by method; nil means EnvelopeStandard.
	EnvelopeFor func(method string) Envelope
	// PolicyFor picks the limiter policy; nil means ratelimit.PolicyAPI for every request.
	PolicyFor func(r *Request) string
	// QueryToken allows ?sessionId= as the last token source (GET /api/auth only).
	QueryToken func(r *Request) bool

	Sessions       SessionResolver // nil: no session support
	Limiter        Limiter         // nil: no limiting
	Recorder       Recorder        // nil: nothing recorded
	Clock          clock.Clock     // nil: system clock
	AllowedOrigins []string
	// TrustedProxies are the peers whose X-Forwarded-For is believed (TRUSTED_PROXY_CIDRS).
	TrustedProxies []netip.Prefix
	// RateLimitStatus is the status of a rate-limit deny: 429, or 503 (RATE_LIMIT_STATUS).
	RateLimitStatus int
	Logger          *slog.Logger // nil: lambdacontext.NewLogger()

	logOnce sync.Once
	log     *slog.Logger
}

func (a *App) now() time.Time {
	if a.Clock == nil {
		return time.Now()
	}
	return a.Clock.Now()
}

func (a *App) logger() *slog.Logger {
	a.logOnce.Do(func() {
		l := a.Logger
		if l == nil {
			l = lambdacontext.NewLogger().With("function", a.Function)
		}
		// The request ids travel in the context (ctxlog), so every
		// package's logger carries them, not only this one.
		a.log = ctxlog.New(l)
	})
	return a.log
}

// Handle is the Lambda handler. It returns a nil error for every HTTP outcome.
func (a *App) Handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (resp events.APIGatewayV2HTTPResponse, err error) {
	r := a.parse(ctx, ev)
	ctx = ctxlog.With(ctx, "apiRequestId", r.RequestID, "lambdaRequestId", r.LambdaRequestID)
	ctx, _ = store.WithUsage(ctx) // the capacity units of this request's calls, for its EMF line
	var st state
	env := a.envelope(r.Method)
	defer func() {
		if p := recover(); p != nil {
			// A panic is a bug; the client still gets the contract's 500.
			r.Logger.ErrorContext(ctx, "panic in handler", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			st.code = CodeInternal
			resp = a.render(ctx, r, env, nil, NewError(http.StatusInternalServerError, CodeInternal, "Internal server error"), &st)
		}
		a.record(ctx, r, &st, resp.StatusCode)
	}()
	res, herr := a.serve(ctx, r, &st)
	return a.render(ctx, r, env, res, herr, &st), nil
}

// state is what the pipeline learned about a request, for its answer and its record.
type state struct {
	route        *Route
	limitHeaders map[string]string
	admitted     bool   // spent quota under a policy and was admitted
	code         string // the answer's error code, "" on success
}

func (a *App) serve(ctx context.Context, r *Request, st *state) (*Response, error) {
	// Matching is pure, so it runs first: a denied request is still recorded
	// under its route. 404 and 405 are answered only after the limiter.
	route, allowed := a.match(r)
	st.route = route
	probe := route != nil && route.Probe
	if probe {
		return route.Handler(ctx, r)
	}
	if a.Recorder != nil {
		// A due metrics flush runs alongside this request's own calls.
		defer a.Recorder.Start(ctx)()
	}

	policy := ratelimit.PolicyAPI
	if a.PolicyFor != nil {
		policy = a.PolicyFor(r)
	}
	limited := a.Limiter != nil && policy != PolicyNone
	// A public request that spends nothing (status=true) needs no session:
	// its token is not read, so a token cannot buy a read there.
	needSession := r.TokenSource != TokenNone && a.Sessions != nil &&
		(policy != PolicyNone || (route != nil && route.Permission != Public))
	switch {
	case needSession:
		if err := a.resolve(ctx, r, st, policy, limited); err != nil {
			return nil, err
		}
	case limited && route != nil && route.Prefetch != nil && !a.Limiter.CachedDeny(ctx, policy, ratelimit.ClientKey("", r.ClientIP)):
		if err := a.limitWhilePrefetching(ctx, r, st, policy, route.Prefetch); err != nil {
			return nil, err
		}
	case limited:
		if err := a.limit(ctx, r, st, policy, ""); err != nil {
			return nil, err
		}
	}

	if route == nil {
		if len(allowed) > 0 {
			return nil, NewError(http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("Method %s not allowed", r.Method)).
				WithHeader("Allow", strings.Join(allowed, ", "))
		}
		return nil, NotFound(fmt.Sprintf("No route for %s", r.Path))
	}

	if isUnsafe(r.Method) && csrf(r, a.originAllowed) {
		return nil, NewError(http.StatusForbidden, CodeCSRF, "Cross-site request rejected")
	}
	switch route.Permission {
	case Public:
	case Authenticated:
		if r.Principal == nil {
			return nil, Unauthorized(CodeUnauthorized, "Authentication required")
		}
	default:
		if r.Principal == nil {
			return nil, Unauthorized(CodeUnauthorized, "Authentication required")
		}
		if !r.Principal.Can(route.Permission) {
			return nil, Forbidden()
		}
	}
	if r.bodyErr != nil && hasBody(r.Method) {
		return nil, r.bodyErr
	}
	return route.Handler(ctx, r)
}

// resolve reads the request's session and, when limited, decides its quota.
// A token this instance has validated before names its user for good, so the
// user's limiter write and the session read run together (one round trip);
// the read still decides validity, so revocation stays exact. Any other token
// is first paid for from its client address's budget, so forged tokens cost
// at most what the limiter allows that client; a token found valid then
// counts against its user's budget too, as API.md keys it.
func (a *App) resolve(ctx context.Context, r *Request, st *state, policy string, limited bool) error {
	if !limited {
		p, err := a.Sessions.Resolve(ctx, r.Token)
		r.Principal = p
		return err
	}
	if userID, ok := a.Sessions.KnownUser(r.Token); ok {
		readCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		var p *sessions.Principal
		var readErr error
		read := make(chan struct{})
		go func() {
			defer close(read)
			p, readErr = a.Sessions.Resolve(readCtx, r.Token)
		}()
		if err := a.limit(ctx, r, st, policy, userID); err != nil {
			cancel() // a denied request needs no session
			<-read
			return err
		}
		<-read
		r.Principal = p
		return readErr
	}
	if err := a.limit(ctx, r, st, policy, ""); err != nil {
		return err
	}
	p, err := a.Sessions.Resolve(ctx, r.Token)
	if err != nil || p == nil {
		return err
	}
	r.Principal = p
	return a.limit(ctx, r, st, policy, p.UserID)
}

// limitWhilePrefetching runs the route's prefetch alongside the limiter's
// decision; a refused request cancels the prefetch and drops its result.
func (a *App) limitWhilePrefetching(ctx context.Context, r *Request, st *state, policy string, prefetch func(context.Context, *Request) any) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got any
	done := make(chan struct{})
	go func() {
		defer close(done)
		got = prefetch(pctx, r)
	}()
	if err := a.limit(ctx, r, st, policy, ""); err != nil {
		cancel()
		<-done
		return err
	}
	<-done
	r.prefetched = got
	return nil
}

// limit spends one request of policy from the client's bucket (the user's
// when userID is set, else the address's); a refusal is returned as the
// contract's error. Its headers go on the answer.
func (a *App) limit(ctx context.Context, r *Request, st *state, policy, userID string) error {
	d, err := a.Limiter.Limit(ctx, policy, ratelimit.ClientKey(userID, r.ClientIP))
	if err != nil {
		return err
	}
	headers, deny := LimitAnswer(d, a.RateLimitStatus)
	st.limitHeaders = headers
	if deny != nil {
		st.admitted = false
		return deny
	}
	st.admitted = true
	return nil
}

func isUnsafe(method string) bool {
	return method == http.MethodPost || method == http.MethodPatch || method == http.MethodDelete || method == http.MethodPut
}

// csrf reports whether an unsafe request is refused as cross-site: a
// browser names the page's origin in Origin on every cross-origin unsafe
// request (a form post with a text/plain body included), so a foreign one is
// refused whatever the credentials, login included; a request without
// Origin is a non-browser client's, unless the session cookie carries it
// (the browser attaches that one by itself).
func csrf(r *Request, allowed func(string) bool) bool {
	origin, present := r.Headers["origin"]
	if present {
		return !allowed(origin)
	}
	return r.TokenSource == TokenCookie
}

func hasBody(method string) bool { return method != http.MethodGet && method != http.MethodHead }

func (a *App) originAllowed(origin string) bool {
	if origin == "" {
		return false
	}
	return slices.Contains(a.AllowedOrigins, strings.ToLower(strings.TrimRight(origin, "/")))
}

func (a *App) envelope(method string) Envelope {
	if a.EnvelopeFor == nil {
		return EnvelopeStandard
	}
	return a.EnvelopeFor(method)
}

// match finds the route for r, filling r.Params and r.RouteKey; when only the
// method is wrong it returns the allowed methods.
func (a *App) match(r *Request) (*Route, []string) {
	var allowed []string
	for i := range a.Routes {
		rt := &a.Routes[i]
		params, ok := matchPath(rt.Path, r.Path)
		if !ok {
			continue
		}
		if rt.Method != r.Method {
			if !slices.Contains(allowed, rt.Method) {
				allowed = append(allowed, rt.Method)
			}
			continue
		}
		r.Params = params
		r.RouteKey = rt.Method + " " + rt.Path
		return rt, nil
	}
	return nil, allowed
}

func matchPath(pattern, path string) (map[string]string, bool) {
	ps := strings.Split(strings.Trim(pattern, "/"), "/")
	xs := strings.Split(strings.Trim(path, "/"), "/")
	if len(ps) != len(xs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range ps {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if xs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = xs[i]
			continue
		}
		if p != xs[i] {
			return nil, false
		}
	}
	return params, true
}

func (a *App) parse(ctx context.Context, ev events.APIGatewayV2HTTPRequest) *Request {
	r := &Request{
		Method:    strings.ToUpper(ev.RequestContext.HTTP.Method),
		Path:      ev.RawPath,
		Query:     ev.QueryStringParameters,
		Headers:   make(map[string]string, len(ev.Headers)),
		Cookies:   map[string]string{},
		RequestID: ev.RequestContext.RequestID,
		SourceIP:  ev.RequestContext.HTTP.SourceIP,
		Started:   a.now(),
		Logger:    a.logger(),
	}
	if r.Path == "" {
		r.Path = ev.RequestContext.HTTP.Path
	}
	if r.Query == nil {
		r.Query = map[string]string{}
	}
	if r.RequestID == "" {
		r.RequestID = NewRequestID()
	}
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		r.LambdaRequestID = lc.AwsRequestID
	}
	for k, v := range ev.Headers {
		r.Headers[strings.ToLower(k)] = v
	}
	r.ClientIP = ratelimit.ClientIP(r.SourceIP, r.Headers["x-forwarded-for"], a.TrustedProxies)
	// HTTP API moves cookies out of the headers into ev.Cookies.
	cookies := ev.Cookies
	if c := r.Headers["cookie"]; c != "" {
		cookies = append(cookies, strings.Split(c, ";")...)
	}
	for _, c := range cookies {
		name, value, ok := strings.Cut(strings.TrimSpace(c), "=")
		if ok && name != "" {
			if _, seen := r.Cookies[name]; !seen {
				r.Cookies[name] = value
			}
		}
	}

	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		decoded, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			r.bodyErr = BadRequest(CodeJSONParse, "Request body is not valid base64")
		}
		body = decoded
	}
	if len(body) > MaxBodyBytes {
		r.bodyErr = NewError(http.StatusRequestEntityTooLarge, CodePayloadTooLarge, fmt.Sprintf("Request body exceeds %d bytes", MaxBodyBytes))
		body = nil
	}
	r.Body = body

	if auth := r.Headers["authorization"]; auth != "" {
		if scheme, tok, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(tok) != "" {
			r.Token, r.TokenSource = strings.TrimSpace(tok), TokenBearer
		}
	}
	if r.TokenSource == TokenNone {
		if c := r.Cookies[SessionCookie]; c != "" {
			r.Token, r.TokenSource = c, TokenCookie
		}
	}
	if r.TokenSource == TokenNone && a.QueryToken != nil && a.QueryToken(r) {
		if q := r.Query["sessionId"]; q != "" {
			r.Token, r.TokenSource = q, TokenQuery
		}
	}
	return r
}

// render turns a handler outcome into the API Gateway response.
func (a *App) render(ctx context.Context, r *Request, env Envelope, res *Response, herr error, st *state) events.APIGatewayV2HTTPResponse {
	out := events.APIGatewayV2HTTPResponse{Headers: map[string]string{}}
	for k, v := range st.limitHeaders {
		out.Headers[k] = v
	}
	if herr == nil && res == nil {
		herr = errors.New("handler returned neither response nor error")
	}
	var body any
	if herr != nil {
		e := a.classify(ctx, r, herr)
		st.code = e.Code
		out.StatusCode = e.Status
		for k, v := range e.Headers {
			out.Headers[k] = v
		}
		body = errorBody(env, e, r.RequestID, a.now())
	} else {
		out.StatusCode = res.Status
		if out.StatusCode == 0 {
			out.StatusCode = http.StatusOK
		}
		for k, v := range res.Headers {
			out.Headers[k] = v
		}
		out.Cookies = res.Cookies
		body = res.Body
	}
	b, err := marshalWithRequestID(body, r.RequestID)
	if err != nil {
		r.Logger.ErrorContext(ctx, "marshal response", "err", err)
		out.StatusCode = http.StatusInternalServerError
		b, _ = marshalWithRequestID(errorBody(env, NewError(http.StatusInternalServerError, CodeInternal, "Internal server error"), r.RequestID, a.now()), r.RequestID)
	}
	out.Body = string(b)
	out.Headers["Content-Type"] = "application/json"
	out.Headers["X-Request-ID"] = r.RequestID
	out.Headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
	return out
}

// classify maps any handler error to a contract error; internal text never leaves.
func (a *App) classify(ctx context.Context, r *Request, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	if store.IsUnavailable(err) {
		r.Logger.WarnContext(ctx, "store unavailable", "err", err)
		return ServiceUnavailable(time.Second)
	}
	r.Logger.ErrorContext(ctx, "internal error", "err", err)
	return NewError(http.StatusInternalServerError, CodeInternal, "Internal server error")
}

func errorBody(env Envelope, e *Error, requestID string, now time.Time) map[string]any {
	var m map[string]any
	switch env {
	case EnvelopeMonitor:
		m = map[string]any{"error": e.Message, "code": e.Code, "timestamp": now.UTC().Format(time.RFC3339Nano)}
	case EnvelopeTraffic:
		m = map[string]any{"error": true, "message": e.Message, "code": e.Code, "timestamp": now.UTC().Format(time.RFC3339Nano)}
	default:
		m = map[string]any{"success": false, "error": e.Message, "code": e.Code}
	}
	if e.Code == CodeValidation && len(e.Details) > 0 {
		m["details"] = e.Details
	}
	for k, v := range e.Extra {
		m[k] = v
	}
	m["requestId"] = requestID
	return m
}

func marshalWithRequestID(body any, requestID string) ([]byte, error) {
	if m, ok := body.(map[string]any); ok {
		if _, has := m["requestId"]; !has {
			m["requestId"] = requestID
		}
		return json.Marshal(m)
	}
	b, err := json.Marshal(body)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	if _, has := fields["requestId"]; has {
		return b, nil
	}
	id, _ := json.Marshal(requestID)
	fields["requestId"] = id
	return json.Marshal(fields)
}

func (a *App) record(ctx context.Context, r *Request, st *state, status int) {
	if a.Recorder == nil {
		return
	}
	name := "unmatched"
	if st.route != nil {
		name = st.route.Path
	}
	now := a.now()
	a.Recorder.Record(ctx, metrics.Observation{
		Function: a.Function, Route: name, Method: r.Method, Status: status, Code: st.code,
		// A limiter deny is throttled whatever its status (RATE_LIMIT_STATUS=503).
		Throttled: status == http.StatusTooManyRequests || st.code == CodeRateLimit,
		Admitted:  st.admitted, Duration: now.Sub(r.Started), At: now,
		ReadUnits: store.UsageFrom(ctx).ReadUnits(), WriteUnits: store.UsageFrom(ctx).WriteUnits(),
	})
}

// NewRequestID returns a random request id for callers outside API Gateway.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
