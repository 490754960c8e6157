// Package samtemplate reads template.yaml into typed values: the functions
// (settings, HttpApi routes, schedules, inline IAM statements), the DynamoDB
// tables and the HttpApi's CORS settings. It is the one reader the table
// bootstrap, the local API server and the contract tests share;
// template_test.go checks the template independently with goformation.
//
// Intrinsics are resolved only as far as those readers need: a !Ref to a
// parameter gives its default, a !GetAtt or !Sub naming a table's ARN gives the
// table's logical ID, and an !If around a statement or the CORS configuration
// gives its true branch.
package samtemplate

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	zenith "github.com/zenithfresh/zenith-serverless"
)

// Template is what the tools read of a SAM template.
type Template struct {
	Functions []Function // sorted by logical ID
	Tables    []Table    // sorted by logical ID
	CORS      *CORS      // nil when the API has no CorsConfiguration
}

// Function is one AWS::Serverless::Function: its settings (globals applied),
// its HttpApi routes, its schedules and its inline policy statements.
type Function struct {
	LogicalID string
	MemoryMB  int
	Timeout   int // seconds
	Routes    []Route
	Schedules []string // schedule expressions, e.g. "rate(1 minute)"
	Policy    []Statement
}

// Route is one HttpApi event: Method "ANY" or a method, Path a route path
// ("/api/auth/{proxy+}") or "$default".
type Route struct {
	Method string
	Path   string
}

// Key is the API Gateway route key, e.g. "ANY /api/auth" or "$default".
func (r Route) Key() string {
	if r.Path == DefaultRoute {
		return DefaultRoute
	}
	return r.Method + " " + r.Path
}

// DefaultRoute is the catch-all route key of an HTTP API.
const DefaultRoute = "$default"

// Statement is one statement of a function's inline policies.
type Statement struct {
	Sid     string
	Effect  string
	Actions []string
	// Resources name tables by logical ID: "UsersTable" for !GetAtt
	// UsersTable.Arn, "SessionsTable/index/userId-index" for
	// !Sub ${SessionsTable.Arn}/index/userId-index. Anything else ("*", other
	// ARNs) is kept as written.
	Resources []string
	// Condition is the template condition of a statement wrapped in !If (its
	// true branch is the statement); "" when the statement always applies.
	Condition string
	// LeadingKeys are the partition keys an IAM condition
	// "ForAllValues:StringEquals: dynamodb:LeadingKeys" limits the statement
	// to; nil when it has no such condition (any item). Any other IAM
	// condition operator or key is kept in OtherConditions.
	LeadingKeys     []string
	OtherConditions []string
}

// CORS is the HttpApi's CorsConfiguration, minus the origins (those come from
// ALLOWED_ORIGINS, as the template passes the same parameter to both).
type CORS struct {
	AllowMethods  []string
	AllowHeaders  []string
	ExposeHeaders []string
	MaxAge        int
}

// Table is one AWS::DynamoDB::Table, as far as creating a local copy and
// checking the template need.
type Table struct {
	LogicalID              string       `yaml:"-"`
	AttributeDefinitions   []Attribute  `yaml:"AttributeDefinitions"`
	KeySchema              []KeyElement `yaml:"KeySchema"`
	GlobalSecondaryIndexes []GSI        `yaml:"GlobalSecondaryIndexes"`
	TimeToLive             TTLSpec      `yaml:"TimeToLiveSpecification"`
	BillingMode            string       `yaml:"BillingMode"`
	PointInTimeRecovery    PITRSpec     `yaml:"PointInTimeRecoverySpecification"`
	DeletionProtection     bool         `yaml:"DeletionProtectionEnabled"`
	DeletionPolicy         string       `yaml:"-"`
	UpdateReplacePolicy    string       `yaml:"-"`
}

// Attribute is one of a table's AttributeDefinitions.
type Attribute struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"AttributeType"` // S, N or B
}

// KeyElement is one element of a key schema.
type KeyElement struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"KeyType"` // HASH or RANGE
}

// GSI is one global secondary index.
type GSI struct {
	IndexName  string       `yaml:"IndexName"`
	KeySchema  []KeyElement `yaml:"KeySchema"`
	Projection Projection   `yaml:"Projection"`
}

// Projection is the attributes a GSI carries.
type Projection struct {
	ProjectionType   string   `yaml:"ProjectionType"`
	NonKeyAttributes []string `yaml:"NonKeyAttributes"`
}

// TTLSpec is a table's TimeToLiveSpecification.
type TTLSpec struct {
	AttributeName string `yaml:"AttributeName"`
	Enabled       bool   `yaml:"Enabled"`
}

// PITRSpec is a table's PointInTimeRecoverySpecification.
type PITRSpec struct {
	Enabled bool `yaml:"PointInTimeRecoveryEnabled"`
}

// Function returns the function with the given logical ID.
func (t *Template) Function(logicalID string) (Function, bool) {
	for _, f := range t.Functions {
		if f.LogicalID == logicalID {
			return f, true
		}
	}
	return Function{}, false
}

// Embedded parses the template.yaml the module embeds (zenith.Template).
func Embedded() (*Template, error) {
	return Parse(zenith.Template)
}

// Parse reads a SAM template.
func Parse(src []byte) (*Template, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	if len(root.Content) == 0 {
		return nil, errors.New("parse template: empty document")
	}
	doc := root.Content[0]
	params := mapping(get(doc, "Parameters"))
	globals := get(get(doc, "Globals"), "Function")

	t := &Template{}
	for id, res := range mapping(get(doc, "Resources")) {
		props := get(res, "Properties")
		switch scalar(get(res, "Type")) {
		case "AWS::Serverless::Function":
			fn, err := parseFunction(id, props, globals, params)
			if err != nil {
				return nil, err
			}
			t.Functions = append(t.Functions, fn)
		case "AWS::Serverless::HttpApi":
			t.CORS = parseCORS(get(props, "CorsConfiguration"), params)
		case "AWS::DynamoDB::Table":
			var tb Table
			if props != nil {
				if err := props.Decode(&tb); err != nil {
					return nil, fmt.Errorf("parse table %s: %w", id, err)
				}
			}
			tb.LogicalID = id
			tb.DeletionPolicy = scalar(get(res, "DeletionPolicy"))
			tb.UpdateReplacePolicy = scalar(get(res, "UpdateReplacePolicy"))
			t.Tables = append(t.Tables, tb)
		}
	}
	sort.Slice(t.Functions, func(i, j int) bool { return t.Functions[i].LogicalID < t.Functions[j].LogicalID })
	sort.Slice(t.Tables, func(i, j int) bool { return t.Tables[i].LogicalID < t.Tables[j].LogicalID })
	return t, nil
}

func parseCORS(n *yaml.Node, params map[string]*yaml.Node) *CORS {
	n = ifTrue(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	c := &CORS{
		AllowMethods:  scalars(get(n, "AllowMethods")),
		AllowHeaders:  scalars(get(n, "AllowHeaders")),
		ExposeHeaders: scalars(get(n, "ExposeHeaders")),
	}
	c.MaxAge, _ = strconv.Atoi(resolve(get(n, "MaxAge"), params))
	return c
}

func parseFunction(id string, props, globals *yaml.Node, params map[string]*yaml.Node) (Function, error) {
	fn := Function{LogicalID: id, MemoryMB: 128, Timeout: 3} // Lambda's defaults
	for _, src := range []*yaml.Node{globals, props} {       // function settings override globals
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
	if err := parseEvents(&fn, get(props, "Events"), params); err != nil {
		return fn, err
	}
	if pol := get(props, "Policies"); pol != nil && pol.Kind == yaml.SequenceNode {
		for _, doc := range pol.Content {
			st := get(doc, "Statement")
			if st == nil {
				continue // a managed policy or a SAM policy template: not inline
			}
			for _, n := range nodes(st) {
				if s, ok := parseStatement(n); ok {
					fn.Policy = append(fn.Policy, s)
				}
			}
		}
	}
	return fn, nil
}

func parseEvents(fn *Function, events *yaml.Node, params map[string]*yaml.Node) error {
	if events == nil {
		return nil
	}
	for i := 0; i+1 < len(events.Content); i += 2 {
		name, ev := events.Content[i].Value, events.Content[i+1]
		p := get(ev, "Properties")
		switch typ := scalar(get(ev, "Type")); typ {
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
				return fmt.Errorf("%s event %s: path %q must start with /", fn.LogicalID, name, path)
			}
			if method == "" {
				method = "ANY"
			}
			fn.Routes = append(fn.Routes, Route{Method: method, Path: path})
		case "Schedule", "ScheduleV2":
			key := "Schedule"
			if typ == "ScheduleV2" {
				key = "ScheduleExpression"
			}
			if s := resolve(get(p, key), params); s != "" {
				fn.Schedules = append(fn.Schedules, s)
			}
		}
	}
	return nil
}

// parseStatement reads one policy statement; an !If gives its true branch
// under the condition's name, and an !If whose true branch is no statement
// gives nothing.
func parseStatement(n *yaml.Node) (Statement, bool) {
	var s Statement
	if cond, branch, ok := ifParts(n); ok {
		s.Condition = cond
		n = branch
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return Statement{}, false
	}
	s.Sid = scalar(get(n, "Sid"))
	s.Effect = scalar(get(n, "Effect"))
	if a := get(n, "Action"); a != nil {
		for _, c := range nodes(a) {
			s.Actions = append(s.Actions, c.Value)
		}
	}
	if r := get(n, "Resource"); r != nil {
		for _, c := range nodes(r) {
			s.Resources = append(s.Resources, resource(c))
		}
	}
	if c := get(n, "Condition"); c != nil && c.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(c.Content); i += 2 {
			op, body := c.Content[i].Value, c.Content[i+1]
			if body.Kind != yaml.MappingNode {
				s.OtherConditions = append(s.OtherConditions, op)
				continue
			}
			for j := 0; j+1 < len(body.Content); j += 2 {
				key := body.Content[j].Value
				if op == "ForAllValues:StringEquals" && key == "dynamodb:LeadingKeys" {
					for _, k := range nodes(body.Content[j+1]) {
						s.LeadingKeys = append(s.LeadingKeys, k.Value)
					}
					continue
				}
				s.OtherConditions = append(s.OtherConditions, op+" "+key)
			}
		}
	}
	return s, true
}

// resource names a table's ARN by the table's logical ID (and an index ARN
// as "<table>/index/<name>"); anything else stays as written.
func resource(n *yaml.Node) string {
	switch n.Tag {
	case "!GetAtt":
		if n.Kind == yaml.SequenceNode { // !GetAtt [Table, Arn]
			if len(n.Content) == 2 && n.Content[1].Value == "Arn" {
				return n.Content[0].Value
			}
			return strings.Join(scalars(n), ".")
		}
		return strings.TrimSuffix(n.Value, ".Arn")
	case "!Sub":
		v := n.Value
		if n.Kind == yaml.SequenceNode && len(n.Content) > 0 { // !Sub [string, variables]
			v = n.Content[0].Value
		}
		if rest, ok := strings.CutPrefix(v, "${"); ok {
			if table, tail, ok := strings.Cut(rest, ".Arn}"); ok && !strings.ContainsAny(table, "${}") {
				return table + tail
			}
		}
		return v
	}
	return n.Value
}

// ifTrue returns the true branch of an !If, or n itself.
func ifTrue(n *yaml.Node) *yaml.Node {
	if _, branch, ok := ifParts(n); ok {
		return branch
	}
	return n
}

// ifParts splits !If [condition, whenTrue, whenFalse].
func ifParts(n *yaml.Node) (cond string, whenTrue *yaml.Node, ok bool) {
	if n == nil || n.Tag != "!If" || n.Kind != yaml.SequenceNode || len(n.Content) != 3 {
		return "", nil, false
	}
	return n.Content[0].Value, n.Content[1], true
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

// nodes returns a sequence's items, or a single node as a one-item list.
func nodes(n *yaml.Node) []*yaml.Node {
	if n.Kind == yaml.SequenceNode && n.Tag != "!GetAtt" && n.Tag != "!Sub" && n.Tag != "!If" {
		return n.Content
	}
	return []*yaml.Node{n}
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
