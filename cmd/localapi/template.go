package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Function is what the local server needs of one AWS::Serverless::Function:
// its HttpApi routes, its schedules and the settings Lambda would give it.
type Function struct {
	LogicalID string
	MemoryMB  int
	Timeout   int // seconds
	Routes    []RouteSpec
	Schedules []string // schedule expressions, e.g. "rate(1 minute)"
}

// RouteSpec is one HttpApi event: Method "ANY" or a method, Path a route path
// ("/api/auth/{proxy+}") or "$default".
type RouteSpec struct {
	Method string
	Path   string
}

// Key is the API Gateway route key, e.g. "ANY /api/auth" or "$default".
func (r RouteSpec) Key() string {
	if r.Path == DefaultRoute {
		return DefaultRoute
	}
	return r.Method + " " + r.Path
}

// DefaultRoute is the catch-all route key of an HTTP API.
const DefaultRoute = "$default"

// CORS is the HttpApi's CorsConfiguration, minus the origins (those come from
// ALLOWED_ORIGINS, as the template passes the same parameter to both).
type CORS struct {
	AllowMethods  []string
	AllowHeaders  []string
	ExposeHeaders []string
	MaxAge        int
}

// Template is the part of template.yaml the local server serves.
type Template struct {
	Functions []Function // sorted by logical ID
	CORS      *CORS      // nil when the API has no CorsConfiguration
}

// ParseTemplate reads the functions, routes and CORS settings of a SAM template.
// Intrinsics are resolved only as far as the local server needs: a !Ref to a
// parameter gives its default.
func ParseTemplate(src []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("parse template: empty document")
	}
	doc := root.Content[0]
	params := mapping(get(doc, "Parameters"))
	resources := mapping(get(doc, "Resources"))
	globals := get(get(doc, "Globals"), "Function")

	t := &Template{}
	for id, res := range resources {
		typ := scalar(get(res, "Type"))
		props := get(res, "Properties")
		switch typ {
		case "AWS::Serverless::Function":
			fn, err := parseFunction(id, props, globals, params)
			if err != nil {
				return nil, err
			}
			t.Functions = append(t.Functions, fn)
		case "AWS::Serverless::HttpApi":
			cors := get(props, "CorsConfiguration")
			if cors != nil && cors.Tag == "!If" && cors.Kind == yaml.SequenceNode && len(cors.Content) == 3 {
				cors = cors.Content[1] // the configuration inside the always-true !If
			}
			if cors != nil && cors.Kind == yaml.MappingNode {
				c := &CORS{
					AllowMethods:  scalars(get(cors, "AllowMethods")),
					AllowHeaders:  scalars(get(cors, "AllowHeaders")),
					ExposeHeaders: scalars(get(cors, "ExposeHeaders")),
				}
				c.MaxAge, _ = strconv.Atoi(resolve(get(cors, "MaxAge"), params))
				t.CORS = c
			}
		}
	}
	if len(t.Functions) == 0 {
		return nil, errors.New("template has no AWS::Serverless::Function")
	}
	sort.Slice(t.Functions, func(i, j int) bool { return t.Functions[i].LogicalID < t.Functions[j].LogicalID })
	return t, nil
}

func parseFunction(id string, props, globals *yaml.Node, params map[string]*yaml.Node) (Function, error) {
	fn := Function{LogicalID: id, MemoryMB: 128, Timeout: 3}
	for _, src := range []*yaml.Node{globals, props} { // function settings override globals
		if v := resolve(get(src, "MemorySize"), params); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fn, fmt.Errorf("%s: MemorySize %q: %w", id, v, err)
			}
			fn.MemoryMB = n
		}
		if v := resolve(get(src, "Timeout"), params); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fn, fmt.Errorf("%s: Timeout %q: %w", id, v, err)
			}
			fn.Timeout = n
		}
	}
	events := get(props, "Events")
	if events == nil {
		return fn, nil
	}
	for i := 0; i+1 < len(events.Content); i += 2 {
		name, ev := events.Content[i].Value, events.Content[i+1]
		p := get(ev, "Properties")
		switch scalar(get(ev, "Type")) {
		case "HttpApi":
			method := strings.ToUpper(resolve(get(p, "Method"), params))
			path := resolve(get(p, "Path"), params)
			switch {
			case path == "" && method == "":
				// An HttpApi event without path and method is the $default route.
				path, method = DefaultRoute, "ANY"
			case path == "/"+DefaultRoute || path == DefaultRoute:
				path = DefaultRoute
			case !strings.HasPrefix(path, "/"):
				return fn, fmt.Errorf("%s event %s: path %q must start with /", id, name, path)
			}
			if method == "" {
				method = "ANY"
			}
			fn.Routes = append(fn.Routes, RouteSpec{Method: method, Path: path})
		case "Schedule", "ScheduleV2":
			key := "Schedule"
			if scalar(get(ev, "Type")) == "ScheduleV2" {
				key = "ScheduleExpression"
			}
			if s := resolve(get(p, key), params); s != "" {
				fn.Schedules = append(fn.Schedules, s)
			}
		}
	}
	return fn, nil
}

// get returns the value of key in a mapping node, nil if absent.
func get(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func mapping(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		out[n.Content[i].Value] = n.Content[i+1]
	}
	return out
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func scalars(n *yaml.Node) []string {
	if n == nil || n.Kind != yaml.SequenceNode {
		return nil
	}
	var out []string
	for _, c := range n.Content {
		if c.Kind == yaml.ScalarNode {
			out = append(out, c.Value)
		}
	}
	return out
}

// resolve returns a scalar's value, following a !Ref to a parameter's default.
func resolve(n *yaml.Node, params map[string]*yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	if n.Tag == "!Ref" {
		return scalar(get(params[n.Value], "Default"))
	}
	return n.Value
}
