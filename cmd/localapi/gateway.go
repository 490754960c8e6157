package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Handler is a function's Lambda handler for HTTP API events.
type Handler func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Route binds a route of the template to the handler of its function.
type Route struct {
	RouteSpec
	Function string // the function's short name, for the log
	Timeout  time.Duration
	Handler  Handler
	segments []segment
}

type segmentKind int

// The order is HTTP API's route priority: a static segment beats a {param},
// which beats a greedy {proxy+}.
const (
	segStatic segmentKind = iota
	segParam
	segGreedy
)

type segment struct {
	kind  segmentKind
	value string // static text, or the parameter's name
}

// MaxPayloadBytes is HTTP API's request payload limit; larger requests are
// refused by API Gateway itself, before any function runs.
const MaxPayloadBytes = 10 << 20

// MaxEventBytes is Lambda's limit on a synchronous invocation's payload (6
// MB), which for an HTTP API is the whole event: headers, cookies and the
// body, base64-encoded (a third larger) unless its Content-Type is text. A
// larger event never reaches the function: API Gateway answers 413 itself.
const MaxEventBytes = 6 << 20

// Gateway turns HTTP requests into API Gateway HTTP API (payload 2.0) events,
// the way API Gateway does, and the functions' answers back into HTTP.
type Gateway struct {
	routes         []Route
	cors           *CORS
	allowedOrigins []string
	logger         *slog.Logger
	now            func() time.Time
	newID          func() string
}

// NewGateway compiles the routes. Two routes with the same key are an error.
func NewGateway(routes []Route, cors *CORS, allowedOrigins []string, logger *slog.Logger) (*Gateway, error) {
	seen := map[string]bool{}
	g := &Gateway{cors: cors, logger: logger, now: time.Now, newID: randomID}
	for _, o := range allowedOrigins {
		g.allowedOrigins = append(g.allowedOrigins, strings.ToLower(strings.TrimRight(o, "/")))
	}
	for _, r := range routes {
		if seen[r.Key()] {
			return nil, fmt.Errorf("route %q is defined twice", r.Key())
		}
		seen[r.Key()] = true
		if r.Timeout <= 0 {
			r.Timeout = 30 * time.Second // HTTP API's integration timeout
		}
		if r.Path != DefaultRoute {
			segs, err := compile(r.Path)
			if err != nil {
				return nil, err
			}
			r.segments = segs
		}
		g.routes = append(g.routes, r)
	}
	return g, nil
}

func compile(path string) ([]segment, error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	segs := make([]segment, 0, len(parts))
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}"):
			if i != len(parts)-1 {
				return nil, fmt.Errorf("route %q: a greedy variable must be the last segment", path)
			}
			segs = append(segs, segment{kind: segGreedy, value: p[1 : len(p)-2]})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			segs = append(segs, segment{kind: segParam, value: p[1 : len(p)-1]})
		default:
			segs = append(segs, segment{kind: segStatic, value: p})
		}
	}
	return segs, nil
}

// match returns the path parameters when the route's path matches.
func (r *Route) match(parts []string) (map[string]string, bool) {
	var params map[string]string
	for i, s := range r.segments {
		if s.kind == segGreedy {
			if i >= len(parts) {
				return nil, false
			}
			rest := strings.Join(parts[i:], "/")
			if rest == "" {
				return nil, false // a greedy variable matches at least one character
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s.value] = rest
			return params, true
		}
		if i >= len(parts) {
			return nil, false
		}
		switch s.kind {
		case segStatic:
			if parts[i] != s.value {
				return nil, false
			}
		case segParam:
			if parts[i] == "" {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[s.value] = parts[i]
		}
	}
	return params, len(parts) == len(r.segments)
}

// moreSpecific reports whether route a wins over route b for the same request:
// segment by segment static > {param} > {proxy+}, then the longer path, then a
// named method over ANY.
func moreSpecific(a, b *Route) bool {
	for i := 0; i < len(a.segments) && i < len(b.segments); i++ {
		if a.segments[i].kind != b.segments[i].kind {
			return a.segments[i].kind < b.segments[i].kind
		}
	}
	if len(a.segments) != len(b.segments) {
		return len(a.segments) > len(b.segments)
	}
	return a.Method != "ANY" && b.Method == "ANY"
}

// Select picks the route API Gateway would pick for method and path (the
// decoded path), with its path parameters; nil when nothing matches.
func (g *Gateway) Select(method, path string) (*Route, map[string]string) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	var best *Route
	var bestParams map[string]string
	var fallback *Route
	for i := range g.routes {
		r := &g.routes[i]
		if r.Path == DefaultRoute {
			fallback = r
			continue
		}
		if r.Method != "ANY" && r.Method != method {
			continue
		}
		params, ok := r.match(parts)
		if !ok {
			continue
		}
		if best == nil || moreSpecific(r, best) {
			best, bestParams = r, params
		}
	}
	if best != nil {
		return best, bestParams
	}
	return fallback, nil
}

// IsTextContentType is HTTP API's base64 rule: a body is passed as text only
// when its Content-Type is text/*, JSON, XML or JavaScript; anything else
// (no Content-Type included) arrives base64-encoded with isBase64Encoded.
func IsTextContentType(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0]))
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return true
	case mt == "application/json", strings.HasSuffix(mt, "+json"):
		return true
	case mt == "application/xml", strings.HasSuffix(mt, "+xml"):
		return true
	case mt == "application/javascript", mt == "application/x-javascript", mt == "application/ecmascript":
		return true
	}
	return false
}

// gatewayError is an answer API Gateway gives itself, outside the contract.
func gatewayError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
}

// ServeHTTP answers one request as API Gateway and the function would.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.now()
	if g.preflight(w, r) {
		return
	}
	g.corsHeaders(w, r)
	route, params := g.Select(r.Method, r.URL.Path)
	if route == nil {
		gatewayError(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPayloadBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
			return
		}
		gatewayError(w, http.StatusBadRequest, "Bad Request")
		return
	}
	ev := g.Event(r, route, params, body, start)
	if raw, err := json.Marshal(ev); err != nil || len(raw) > MaxEventBytes {
		gatewayError(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), route.Timeout)
	defer cancel()
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       g.newID(),
		InvokedFunctionArn: "arn:aws:lambda:local:000000000000:function:" + route.Function,
	})
	type result struct {
		resp events.APIGatewayV2HTTPResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("handler panic: %v", p)}
			}
		}()
		resp, err := route.Handler(ctx, ev)
		done <- result{resp, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		// Lambda stops a function at its timeout; API Gateway then answers 500 itself.
		res.err = fmt.Errorf("function %s timed out after %s", route.Function, route.Timeout)
	}
	if res.err != nil {
		g.logger.Error("function failed", "function", route.Function, "routeKey", route.Key(), "err", res.err)
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	if err := writeResponse(w, res.resp); err != nil {
		g.logger.Error("bad function response", "function", route.Function, "err", err)
		gatewayError(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	g.logger.Info("request", "method", r.Method, "path", r.URL.Path, "routeKey", route.Key(),
		"function", route.Function, "status", statusOf(res.resp), "ms", g.now().Sub(start).Milliseconds())
}

// Event builds the API Gateway v2 event of a request.
func (g *Gateway) Event(r *http.Request, route *Route, params map[string]string, body []byte, at time.Time) events.APIGatewayV2HTTPRequest {
	sourceIP := r.RemoteAddr
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		sourceIP = host
	}
	headers := map[string]string{}
	var cookies []string
	for name, values := range r.Header {
		key := strings.ToLower(name)
		if key == "cookie" {
			// HTTP API moves cookies out of the headers into the cookies field.
			for _, v := range values {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[key] = strings.Join(values, ",")
	}
	headers["host"] = r.Host
	if r.ContentLength > 0 {
		headers["content-length"] = strconv.FormatInt(r.ContentLength, 10)
	}
	// API Gateway appends the caller's address to X-Forwarded-For.
	if xff := headers["x-forwarded-for"]; xff != "" {
		headers["x-forwarded-for"] = xff + ", " + sourceIP
	} else {
		headers["x-forwarded-for"] = sourceIP
	}
	headers["x-forwarded-proto"] = "http"

	var query map[string]string
	if r.URL.RawQuery != "" {
		values, _ := url.ParseQuery(r.URL.RawQuery)
		query = make(map[string]string, len(values))
		for k, vs := range values {
			query[k] = strings.Join(vs, ",") // HTTP API joins repeated parameters with commas
		}
	}

	ev := events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              route.Key(),
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Cookies:               cookies,
		Headers:               headers,
		QueryStringParameters: query,
		PathParameters:        params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     route.Key(),
			AccountID:    "000000000000",
			Stage:        "$default",
			RequestID:    g.newID(),
			APIID:        "local",
			DomainName:   r.Host,
			DomainPrefix: strings.SplitN(r.Host, ".", 2)[0],
			Time:         at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    at.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  sourceIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if len(body) > 0 {
		if IsTextContentType(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

func statusOf(resp events.APIGatewayV2HTTPResponse) int {
	if resp.StatusCode == 0 {
		return http.StatusOK
	}
	return resp.StatusCode
}

// writeResponse renders a function's answer: headers, cookies as Set-Cookie,
// status and the (base64-decoded when flagged) body.
func writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse) error {
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return fmt.Errorf("body flagged base64 is not base64: %w", err)
		}
		body = b
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		h.Set("Content-Type", "application/json")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(statusOf(resp))
	_, err := w.Write(body)
	return err
}

func (g *Gateway) originAllowed(origin string) bool {
	return origin != "" && slices.Contains(g.allowedOrigins, strings.ToLower(strings.TrimRight(origin, "/")))
}

// preflight answers a CORS preflight as HTTP API does when the API has a
// CorsConfiguration, without calling any function.
func (g *Gateway) preflight(w http.ResponseWriter, r *http.Request) bool {
	if g.cors == nil || r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	origin := r.Header.Get("Origin")
	if g.originAllowed(origin) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Access-Control-Allow-Methods", strings.Join(g.cors.AllowMethods, ","))
		h.Set("Access-Control-Allow-Headers", strings.Join(g.cors.AllowHeaders, ","))
		if g.cors.MaxAge > 0 {
			h.Set("Access-Control-Max-Age", strconv.Itoa(g.cors.MaxAge))
		}
		h.Add("Vary", "Origin")
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

func (g *Gateway) corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if g.cors == nil || !g.originAllowed(origin) {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if len(g.cors.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(g.cors.ExposeHeaders, ","))
	}
	h.Add("Vary", "Origin")
}

// randomID is a CSPRNG request id (API Gateway's are opaque strings too).
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
