// Package openapitest checks real exchanges of the functions against the
// OpenAPI document (openapi.yaml at the repository root, zenith.OpenAPI):
// every answer's status, headers and JSON body, and, when the answer is 2xx,
// the request that got it (a request the functions refused may break the
// document; their refusal may not). Routes are found with kin-openapi's
// gorillamux router. Only tests import this package.
package openapitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// genericResponses are the components that describe an answer to a request
// no operation matches, when no documented path prefix has one (see the
// comment at the top of openapi.yaml).
var genericResponses = map[int]string{
	http.StatusNotFound:            "NotFound",
	http.StatusMethodNotAllowed:    "MethodNotAllowed",
	http.StatusTooManyRequests:     "RateLimited",
	http.StatusInternalServerError: "InternalError",
	http.StatusServiceUnavailable:  "ServiceUnavailable",
}

// Validator checks exchanges against one document. It is safe for concurrent use.
type Validator struct {
	doc      *openapi3.T
	all      routers.Router            // every path: tells a wrong method from an unknown path
	byMethod map[string]routers.Router // the paths having that method
	paths    []docPath                 // longest first, for unmatched requests

	mu        sync.Mutex
	responses int
	requests  int
	answers   map[string]int
}

type docPath struct {
	template string
	segments []string
	item     *openapi3.PathItem
}

// Load parses and validates the document (doc.Validate) and builds its routers.
func Load(doc []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	d, err := loader.LoadFromData(doc)
	if err != nil {
		return nil, fmt.Errorf("load openapi document: %w", err)
	}
	if err := d.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("invalid openapi document: %w", err)
	}
	all, err := gorillamux.NewRouter(d)
	if err != nil {
		return nil, fmt.Errorf("openapi router: %w", err)
	}
	v := &Validator{doc: d, all: all, byMethod: map[string]routers.Router{}, answers: map[string]int{}}
	// One router per method, so a path matching two templates (the literal
	// /api/sessions/count and /api/sessions/{id}) is routed by method as the
	// functions route it, instead of gorillamux stopping at the first path.
	byMethod := map[string]*openapi3.Paths{}
	for template, item := range d.Paths.Map() {
		for method := range item.Operations() {
			if byMethod[method] == nil {
				byMethod[method] = openapi3.NewPaths()
			}
			byMethod[method].Set(template, item)
		}
		v.paths = append(v.paths, docPath{template: template, segments: split(template), item: item})
	}
	for method, paths := range byMethod {
		r, err := gorillamux.NewRouter(&openapi3.T{OpenAPI: d.OpenAPI, Info: d.Info, Components: d.Components, Security: d.Security, Paths: paths})
		if err != nil {
			return nil, fmt.Errorf("openapi router for %s: %w", method, err)
		}
		v.byMethod[method] = r
	}
	sort.Slice(v.paths, func(i, j int) bool {
		if len(v.paths[i].segments) != len(v.paths[j].segments) {
			return len(v.paths[i].segments) > len(v.paths[j].segments)
		}
		return v.paths[i].template < v.paths[j].template
	})
	for status, name := range genericResponses {
		if d.Components == nil || d.Components.Responses[name] == nil {
			return nil, fmt.Errorf("openapi document lacks components.responses.%s (for unmatched %d answers)", name, status)
		}
	}
	return v, nil
}

// Counts is what a Validator has checked so far.
type Counts struct {
	Responses int // answers validated (status, headers, body)
	Requests  int // requests validated (those answered 2xx)
	// Answers counts validated answers by "<METHOD> <path template> <status>"
	// ("<METHOD> (unmatched) <status>" for requests no operation matches).
	Answers map[string]int
}

// Counts returns what has been checked so far, failures included.
func (v *Validator) Counts() Counts {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := Counts{Responses: v.responses, Requests: v.requests, Answers: make(map[string]int, len(v.answers))}
	for k, n := range v.answers {
		c.Answers[k] = n
	}
	return c
}

// Error is a mismatch between an exchange and the document.
type Error struct {
	Method, Path string // as requested
	Status       int
	Operation    string // "<METHOD> <template>", or what described an unmatched request
	Part         string // "response", "request" or "route"
	Err          error
}

func (e *Error) Error() string {
	return fmt.Sprintf("openapi: %s %s → %d [%s]: %s: %v", e.Method, e.Path, e.Status, e.Operation, e.Part, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Check validates a function's answer to an API Gateway event: the response
// always, the request too when the answer is 2xx.
func (v *Validator) Check(req events.APIGatewayV2HTTPRequest, res events.APIGatewayV2HTTPResponse) error {
	r, body := eventRequest(req)
	resBody := []byte(res.Body)
	if res.IsBase64Encoded {
		var err error
		if resBody, err = base64.StdEncoding.DecodeString(res.Body); err != nil {
			return &Error{Method: r.Method, Path: r.URL.Path, Status: res.StatusCode, Operation: "-", Part: "response", Err: fmt.Errorf("body is not valid base64: %w", err)}
		}
	}
	h := http.Header{}
	for k, val := range res.Headers {
		h.Set(k, val)
	}
	for k, vals := range res.MultiValueHeaders {
		for _, val := range vals {
			h.Add(k, val)
		}
	}
	for _, c := range res.Cookies {
		h.Add("Set-Cookie", c)
	}
	return v.check(r, body, res.StatusCode, h, resBody)
}

// CheckHTTP validates an exchange spoken over real HTTP (end-to-end tests):
// the response always, the request too when the answer is 2xx. reqBody and
// respBody are the bodies as sent; req's and res's own bodies are not read.
func (v *Validator) CheckHTTP(req *http.Request, reqBody []byte, res *http.Response, respBody []byte) error {
	r := req.Clone(context.Background())
	r.Body = nil
	return v.check(r, reqBody, res.StatusCode, res.Header.Clone(), respBody)
}

// eventRequest builds the HTTP request API Gateway received, from its event.
func eventRequest(ev events.APIGatewayV2HTTPRequest) (*http.Request, []byte) {
	method := strings.ToUpper(ev.RequestContext.HTTP.Method)
	raw := ev.RawPath
	if raw == "" {
		raw = ev.RequestContext.HTTP.Path
	}
	u := &url.URL{Scheme: "https", Host: "api.test", Path: raw}
	if p, err := url.PathUnescape(raw); err == nil && p != raw {
		u.Path, u.RawPath = p, raw
	}
	// The functions read queryStringParameters; rawQueryString is the fallback
	// for hand-built events that set only it.
	if len(ev.QueryStringParameters) > 0 {
		q := url.Values{}
		for k, val := range ev.QueryStringParameters {
			q.Set(k, val)
		}
		u.RawQuery = q.Encode()
	} else {
		u.RawQuery = ev.RawQueryString
	}
	h := http.Header{}
	for k, val := range ev.Headers {
		h.Set(k, val)
	}
	if len(ev.Cookies) > 0 {
		cookies := strings.Join(ev.Cookies, "; ")
		if c := h.Get("Cookie"); c != "" {
			cookies = c + "; " + cookies
		}
		h.Set("Cookie", cookies)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		// A body that is not base64 stays as sent: the function refuses it
		// (400), and a refused request is not validated.
		if b, err := base64.StdEncoding.DecodeString(ev.Body); err == nil {
			body = b
		}
	}
	r := &http.Request{Method: method, URL: u, Host: u.Host, Header: h, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	return r.WithContext(context.Background()), body
}

func (v *Validator) check(r *http.Request, reqBody []byte, status int, h http.Header, resBody []byte) error {
	ctx := context.Background()
	e := &Error{Method: r.Method, Path: r.URL.Path, Status: status}
	// The functions ignore a trailing slash.
	if p := strings.TrimRight(r.URL.Path, "/"); p != r.URL.Path && p != "" {
		u := *r.URL
		u.Path, u.RawPath = p, strings.TrimRight(u.RawPath, "/")
		r.URL = &u
	}
	route, params := v.findRoute(r)
	if route == nil {
		return v.checkUnmatched(ctx, r, status, h, resBody, e)
	}
	e.Operation = route.Method + " " + route.Path
	if err := v.validateResponse(ctx, r, route, params, status, h, resBody); err != nil {
		e.Part, e.Err = "response", err
		return e
	}
	if status < 200 || status > 299 {
		return nil
	}
	if err := v.validateRequest(ctx, r, route, params, reqBody); err != nil {
		e.Part, e.Err = "request (answered 2xx, so it must match the document)", err
		return e
	}
	return nil
}

// findRoute finds the operation of r, or nil when none matches (unknown
// path, or a known path without r's method).
func (v *Validator) findRoute(r *http.Request) (*routers.Route, map[string]string) {
	router := v.byMethod[r.Method]
	if router == nil {
		return nil, nil
	}
	route, params, err := router.FindRoute(r)
	if err != nil {
		return nil, nil
	}
	// The router was built on a per-method copy; validate against the document itself.
	route.Spec = v.doc
	return route, params
}

// checkUnmatched validates the answer to a request no operation matches:
// never 2xx, and as the longest documented path prefix's operation for the
// method answers that status, else as the generic component.
func (v *Validator) checkUnmatched(ctx context.Context, r *http.Request, status int, h http.Header, resBody []byte, e *Error) error {
	kind := "no such path"
	if _, _, err := v.all.FindRoute(r); errors.Is(err, routers.ErrMethodNotAllowed) {
		kind = "the path has no " + r.Method
	}
	e.Operation = "unmatched: " + kind
	if status < 400 {
		e.Part, e.Err = "route", fmt.Errorf("no operation is documented for this request, yet it was answered %d", status)
		return e
	}
	ref, source := v.unmatchedResponse(r.Method, r.URL.Path, status)
	if ref == nil {
		e.Part, e.Err = "response", fmt.Errorf("status %d is not documented for a request that matches no operation (only a prefix operation's responses and components %v are)", status, genericNames())
		return e
	}
	e.Operation += "; described by " + source
	op := &openapi3.Operation{Responses: openapi3.NewResponses(openapi3.WithStatus(status, ref))}
	// ValidateResponse skips HEAD answers; the functions answer HEAD as any
	// other unknown method, so it is checked like one.
	vr := r
	if r.Method == http.MethodHead {
		vr = r.Clone(ctx)
		vr.Method = http.MethodGet
	}
	route := &routers.Route{Spec: v.doc, Path: "(unmatched)", Method: r.Method, Operation: op}
	v.count(r.Method+" (unmatched) "+strconv.Itoa(status), false)
	if err := v.validateResponseWith(ctx, vr, route, nil, status, h, resBody, ref); err != nil {
		e.Part, e.Err = "response", err
		return e
	}
	return nil
}

func genericNames() []string {
	names := make([]string, 0, len(genericResponses))
	for _, n := range genericResponses {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// unmatchedResponse finds the response describing status for a request to
// path with method that no operation matches.
func (v *Validator) unmatchedResponse(method, path string, status int) (*openapi3.ResponseRef, string) {
	xs := split(path)
	for _, p := range v.paths {
		if len(p.segments) > len(xs) || !prefixOf(p.segments, xs) {
			continue
		}
		if op := p.item.GetOperation(method); op != nil {
			if ref := op.Responses.Status(status); ref != nil {
				return ref, fmt.Sprintf("%s %s's %d", method, p.template, status)
			}
		}
	}
	if name, ok := genericResponses[status]; ok {
		return v.doc.Components.Responses[name], "components.responses." + name
	}
	return nil, ""
}

func split(path string) []string {
	path = strings.Trim(path, "/")
	if path == "" {
		return nil
	}
	return strings.Split(path, "/")
}

// prefixOf reports whether the template segments match the first segments of xs.
func prefixOf(template, xs []string) bool {
	for i, s := range template {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if s != xs[i] {
			return false
		}
	}
	return true
}

func (v *Validator) count(answer string, request bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if request {
		v.requests++
		return
	}
	v.responses++
	v.answers[answer]++
}

func (v *Validator) options() *openapi3filter.Options {
	o := &openapi3filter.Options{
		IncludeResponseStatus: true, // an undocumented status is an error
		MultiError:            true,
		AuthenticationFunc:    authenticate,
	}
	o.WithCustomSchemaErrorFunc(schemaMessage)
	return o
}

func (v *Validator) validateResponse(ctx context.Context, r *http.Request, route *routers.Route, params map[string]string, status int, h http.Header, body []byte) error {
	v.count(route.Method+" "+route.Path+" "+strconv.Itoa(status), false)
	return v.validateResponseWith(ctx, r, route, params, status, h, body, route.Operation.Responses.Status(status))
}

func (v *Validator) validateResponseWith(ctx context.Context, r *http.Request, route *routers.Route, params map[string]string, status int, h http.Header, body []byte, ref *openapi3.ResponseRef) error {
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route, Options: v.options()},
		Status:                 status,
		Header:                 h,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                v.options(),
	}
	if err := openapi3filter.ValidateResponse(ctx, in); err != nil {
		return err
	}
	if ref != nil && ref.Value != nil {
		return checkRepeatedHeaders(ref.Value, h)
	}
	return nil
}

// checkRepeatedHeaders validates every value of a documented header sent more
// than once (Set-Cookie at login); openapi3filter reads only the first.
func checkRepeatedHeaders(res *openapi3.Response, h http.Header) error {
	for name, ref := range res.Headers {
		vals := h.Values(name)
		if len(vals) < 2 || ref.Value == nil || ref.Value.Schema == nil || ref.Value.Schema.Value == nil {
			continue
		}
		for i, val := range vals[1:] {
			if err := ref.Value.Schema.Value.VisitJSON(val, openapi3.EnableJSONSchema2020(), openapi3.SetSchemaErrorMessageCustomizer(schemaMessage)); err != nil {
				return fmt.Errorf("response header %q (value %d of %d) doesn't match schema: %w", name, i+2, len(vals), err)
			}
		}
	}
	return nil
}

func (v *Validator) validateRequest(ctx context.Context, r *http.Request, route *routers.Route, params map[string]string, body []byte) error {
	v.count("", true)
	vr := r.Clone(ctx)
	vr.Body, vr.GetBody, vr.ContentLength = http.NoBody, nil, 0
	if len(body) > 0 {
		// The functions read every body as JSON whatever its Content-Type
		// (API Gateway may have base64-encoded it for another type), so the
		// document describes it as application/json.
		vr.Header.Set("Content-Type", "application/json")
		vr.Body = io.NopCloser(bytes.NewReader(body))
		vr.ContentLength = int64(len(body))
		vr.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{
		Request: vr, PathParams: params, Route: route, Options: v.options(),
	})
}

// authenticate checks that a request answered 2xx carried the credential one
// of the operation's security requirements names (its validity is the
// functions' business).
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s, r := in.SecurityScheme, in.RequestValidationInput.Request
	switch {
	case s.Type == "http" && strings.EqualFold(s.Scheme, "bearer"):
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			return fmt.Errorf("no bearer token (security scheme %q)", in.SecuritySchemeName)
		}
	case s.Type == "apiKey" && s.In == "cookie":
		if c, err := r.Cookie(s.Name); err != nil || c.Value == "" {
			return fmt.Errorf("no %s cookie (security scheme %q)", s.Name, in.SecuritySchemeName)
		}
	case s.Type == "apiKey" && s.In == "header":
		if r.Header.Get(s.Name) == "" {
			return fmt.Errorf("no %s header (security scheme %q)", s.Name, in.SecuritySchemeName)
		}
	default:
		return fmt.Errorf("security scheme %q (%s) is not supported by openapitest", in.SecuritySchemeName, s.Type)
	}
	return nil
}

// schemaMessage renders a schema error as "at <JSON pointer>: <what>" for
// each problem, without the schema and value dumps of the default message.
// The JSON Schema 2020-12 validator (3.1 documents) reports a tree of
// problems in its reason; its leaves are the useful part.
func schemaMessage(e *openapi3.SchemaError) string {
	lines := strings.Split(e.Reason, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "jsonschema validation failed") {
		// kin's own validator (schemas without 2020-12 keywords) reports
		// allOf, anyOf and oneOf failures with the branches' errors as origin.
		if e.Origin != nil {
			if inner := problems(e.Origin); len(inner) > 0 {
				return strings.Join(inner, "; ")
			}
		}
		return "at " + pointer(e.JSONPointer()) + ": " + e.Reason
	}
	lines = lines[1:]
	var out []string
	for i, line := range lines {
		if i+1 < len(lines) && indent(lines[i+1]) > indent(line) {
			continue // an inner node: its leaves say what is wrong
		}
		text := strings.TrimPrefix(strings.TrimSpace(line), "- ")
		if rest, ok := strings.CutPrefix(text, "at '"); ok {
			if loc, msg, ok := strings.Cut(rest, "': "); ok {
				if loc == "" {
					loc = "/"
				}
				text = "at " + loc + ": " + msg
			}
		}
		out = append(out, text)
	}
	if len(out) == 0 {
		return "at " + pointer(e.JSONPointer()) + ": " + e.Reason
	}
	return strings.Join(out, "; ")
}

// problems renders the schema errors inside err.
func problems(err error) []string {
	var se *openapi3.SchemaError
	var me openapi3.MultiError
	switch {
	case errors.As(err, &me):
		var out []string
		for _, e := range me {
			out = append(out, problems(e)...)
		}
		return out
	case errors.As(err, &se):
		return []string{schemaMessage(se)}
	}
	return nil
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

func pointer(p []string) string { return "/" + strings.Join(p, "/") }
