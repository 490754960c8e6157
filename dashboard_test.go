package zenith_test

// The CloudWatch dashboard of template.yaml, checked metric by metric: the EMF
// metrics against the directive the recorder itself writes (metrics.RequestLine
// and metrics.EventLine), the AWS/* metrics against the metric names and
// dimensions AWS documents and the resources of the template, the alarm widget
// against the template's alarms and the log widgets against its log groups.
// The body is the !Sub text: each ${Name} becomes the placeholder {{Name}}
// (and must name a parameter, a resource, a resource attribute or a pseudo
// parameter), so "{{AuthFunction}}" below is "the name of AuthFunction".

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
)

// emfTruth is what the recorder's EMF lines declare in _aws.CloudWatchMetrics.
type emfTruth struct {
	namespace  string
	dimensions map[string][][]string // metric name -> its dimension sets (each sorted)
	units      map[string]string     // metric name -> unit
	request    []string              // the metrics of every request line
}

type emfDirective struct {
	Namespace  string
	Dimensions [][]string
	Metrics    []struct{ Name, Unit string }
}

// recorderTruth parses the directives of the lines the recorder writes for a
// request and for a failed login, and checks each line carries a root member
// for every dimension and metric it declares (or CloudWatch would drop it).
func recorderTruth(t *testing.T) emfTruth {
	t.Helper()
	at := time.Unix(1700000000, 0)
	lines := map[string][]byte{
		"request":      metrics.RequestLine(metrics.Observation{At: at, Function: "session", Route: "/api/sessions", Method: "GET", Status: 200, Duration: 3 * time.Millisecond}),
		"failed login": metrics.EventLine(at, "auth", metrics.EventFailedLogin),
	}
	truth := emfTruth{dimensions: map[string][][]string{}, units: map[string]string{}}
	for _, kind := range []string{"request", "failed login"} {
		var line map[string]json.RawMessage
		if err := json.Unmarshal(lines[kind], &line); err != nil {
			t.Fatalf("%s EMF line is not JSON: %v", kind, err)
		}
		var meta struct{ CloudWatchMetrics []emfDirective }
		if err := json.Unmarshal(line["_aws"], &meta); err != nil || len(meta.CloudWatchMetrics) == 0 {
			t.Fatalf("%s EMF line has no _aws.CloudWatchMetrics directive (%v): %s", kind, err, lines[kind])
		}
		for _, d := range meta.CloudWatchMetrics {
			if truth.namespace != "" && d.Namespace != truth.namespace {
				t.Fatalf("EMF lines use namespaces %q and %q; the dashboard check expects one", truth.namespace, d.Namespace)
			}
			truth.namespace = d.Namespace
			for _, m := range d.Metrics {
				if _, ok := line[m.Name]; !ok {
					t.Fatalf("%s EMF line declares metric %s but has no member %s", kind, m.Name, m.Name)
				}
				for _, set := range d.Dimensions {
					for _, dim := range set {
						if _, ok := line[dim]; !ok {
							t.Fatalf("%s EMF line declares dimension %s but has no member %s", kind, dim, dim)
						}
					}
					truth.dimensions[m.Name] = append(truth.dimensions[m.Name], sorted(set))
				}
				truth.units[m.Name] = m.Unit
				if kind == "request" {
					truth.request = append(truth.request, m.Name)
				}
			}
		}
	}
	if truth.namespace == "" || len(truth.request) == 0 {
		t.Fatal("the recorder's EMF lines declare no request metric")
	}
	return truth
}

// awsMetrics are the AWS/* metrics a widget may name, with the dimension sets
// AWS documents for them: Lambda (monitoring-metrics), API Gateway HTTP APIs
// (http-api-metrics: ApiId, no ApiName) and DynamoDB (metrics-dimensions:
// ThrottledRequests, SuccessfulRequestLatency and SystemErrors exist per
// TableName and Operation only).
var awsMetrics = map[string]map[string][][]string{
	"AWS/Lambda": {
		"Invocations": {{"FunctionName"}}, "Errors": {{"FunctionName"}}, "Throttles": {{"FunctionName"}},
		"Duration": {{"FunctionName"}}, "ConcurrentExecutions": {{"FunctionName"}},
	},
	"AWS/ApiGateway": {
		"Count": {{"ApiId"}}, "4xx": {{"ApiId"}}, "5xx": {{"ApiId"}}, "Latency": {{"ApiId"}},
		"IntegrationLatency": {{"ApiId"}}, "DataProcessed": {{"ApiId"}},
	},
	"AWS/DynamoDB": {
		"ConsumedReadCapacityUnits":  {{"TableName"}, {"GlobalSecondaryIndexName", "TableName"}},
		"ConsumedWriteCapacityUnits": {{"TableName"}, {"GlobalSecondaryIndexName", "TableName"}},
		"ReadThrottleEvents":         {{"TableName"}, {"GlobalSecondaryIndexName", "TableName"}},
		"WriteThrottleEvents":        {{"TableName"}, {"GlobalSecondaryIndexName", "TableName"}},
		"ThrottledRequests":          {{"Operation", "TableName"}},
		"SuccessfulRequestLatency":   {{"Operation", "TableName"}},
		"SystemErrors":               {{"Operation", "TableName"}},
	},
}

var dynamoOperations = []string{"GetItem", "BatchGetItem", "Query", "Scan", "PutItem", "UpdateItem",
	"DeleteItem", "BatchWriteItem", "TransactGetItems", "TransactWriteItems"}

// What the dashboard must show, per resource, as "metric/stat".
var (
	wantPerFunction = []string{"Errors/Sum", "Throttles/Sum", "Duration/p99", "ConcurrentExecutions/Maximum"}
	wantPerAPI      = []string{"Count/Sum", "4xx/Sum", "5xx/Sum", "Latency/p50", "Latency/p99"}
	wantPerTable    = []string{"ConsumedReadCapacityUnits/Sum", "ConsumedWriteCapacityUnits/Sum", "ReadThrottleEvents/Sum", "WriteThrottleEvents/Sum"}
)

// dashboardFacts is what the template declares that a dashboard may name.
type dashboardFacts struct {
	vars         map[string]bool     // names a ${} of a !Sub may use
	functions    map[string]string   // "{{AuthFunction}}" -> its EMF function dimension value
	functionLogs map[string]string   // "{{AuthFunction}}" -> "{{AuthLogGroup}}"
	tables       map[string][]string // "{{SessionsTable}}" -> its index names
	apis         map[string]bool     // "{{ZenithApi}}"
	alarms       map[string]bool     // "{{AuthErrorsAlarm.Arn}}"
	logGroups    map[string]bool     // "{{AuthLogGroup}}"
}

var pseudoParameters = []string{"AWS::AccountId", "AWS::NotificationARNs", "AWS::Partition", "AWS::Region",
	"AWS::StackId", "AWS::StackName", "AWS::URLSuffix"}

func ph(name string) string { return "{{" + name + "}}" }

// rawTemplate is template.yaml as plain values with long-form intrinsics.
func rawTemplate(t *testing.T, src []byte) map[string]any {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal(src, &node); err != nil {
		t.Fatalf("template.yaml is not YAML: %v", err)
	}
	raw, ok := longForm(node.Content[0]).(map[string]any)
	if !ok {
		t.Fatal("template.yaml is not a mapping")
	}
	return raw
}

func templateFacts(t *testing.T, raw map[string]any) dashboardFacts {
	t.Helper()
	f := dashboardFacts{vars: map[string]bool{}, functions: map[string]string{}, functionLogs: map[string]string{},
		tables: map[string][]string{}, apis: map[string]bool{}, alarms: map[string]bool{}, logGroups: map[string]bool{}}
	for _, p := range pseudoParameters {
		f.vars[p] = true
	}
	for name := range asMap(raw["Parameters"]) {
		f.vars[name] = true
	}
	for id, r := range asMap(raw["Resources"]) {
		f.vars[id] = true
		props := asMap(asMap(r)["Properties"])
		switch asMap(r)["Type"] {
		case "AWS::Serverless::Function":
			i := slices.IndexFunc(functions, func(x fn) bool { return x.logicalID == id })
			if i < 0 {
				t.Fatalf("function %s is not in template_test.go's functions (which ties it to its EMF function name)", id)
			}
			f.functions[ph(id)] = functions[i].dir
			group, _ := asMap(asMap(props["LoggingConfig"])["LogGroup"])["Ref"].(string)
			if group == "" {
				t.Fatalf("function %s has no LoggingConfig.LogGroup of the template", id)
			}
			f.functionLogs[ph(id)] = ph(group)
		case "AWS::DynamoDB::Table":
			var indexes []string
			for _, g := range asSlice(props["GlobalSecondaryIndexes"]) {
				indexes = append(indexes, fmt.Sprint(asMap(g)["IndexName"]))
			}
			f.tables[ph(id)] = indexes
		case "AWS::Serverless::HttpApi", "AWS::ApiGatewayV2::Api":
			f.apis[ph(id)] = true
		case "AWS::CloudWatch::Alarm":
			f.alarms[ph(id+".Arn")] = true
		case "AWS::Logs::LogGroup":
			f.logGroups[ph(id)] = true
		}
	}
	return f
}

// dashboardSub returns the logical ID and the !Sub text of the template's one dashboard.
func dashboardSub(t *testing.T, raw map[string]any) (string, string) {
	t.Helper()
	var id, body string
	for name, r := range asMap(raw["Resources"]) {
		if asMap(r)["Type"] != "AWS::CloudWatch::Dashboard" {
			continue
		}
		if id != "" {
			t.Fatalf("two dashboards, %s and %s; the check expects one", id, name)
		}
		s, ok := asMap(asMap(asMap(r)["Properties"])["DashboardBody"])["Fn::Sub"].(string)
		if !ok {
			t.Fatalf("%s: DashboardBody must be a !Sub of one string", name)
		}
		id, body = name, s
	}
	if id == "" {
		t.Fatal("template.yaml has no AWS::CloudWatch::Dashboard")
	}
	return id, body
}

var subVariable = regexp.MustCompile(`\$\{([^}]*)\}`)

// substitute replaces each ${Name} of a !Sub text with {{Name}} and ${!Literal}
// with the literal ${Literal}, reporting names the template does not declare.
func substitute(sub string, f dashboardFacts) (string, []string) {
	var problems []string
	out := subVariable.ReplaceAllStringFunc(sub, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		resource, _, _ := strings.Cut(name, ".")
		if !f.vars[name] && !(strings.Contains(name, ".") && f.vars[resource]) {
			problems = append(problems, fmt.Sprintf("unknown !Sub variable ${%s}", name))
		}
		return ph(name)
	})
	return out, problems
}

type widget struct {
	Type                string
	X, Y, Width, Height int
	Properties          map[string]any
}

// dashboardCheck accumulates the problems of one dashboard body and what it shows.
type dashboardCheck struct {
	f        dashboardFacts
	truth    emfTruth
	problems []string
	shown    map[string]bool // coverage keys, see show
	metrics  int
}

func (c *dashboardCheck) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *dashboardCheck) show(parts ...string) { c.shown[strings.Join(parts, " ")] = true }

// dashboardProblems checks a DashboardBody !Sub text; it returns every problem
// and the number of metrics and searches it checked.
func dashboardProblems(sub string, f dashboardFacts, truth emfTruth) ([]string, int) {
	c := &dashboardCheck{f: f, truth: truth, shown: map[string]bool{}}
	body, problems := substitute(sub, f)
	c.problems = problems
	var d struct{ Widgets []widget }
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		c.fail("DashboardBody is not JSON after substitution: %v", err)
		return c.problems, 0
	}
	if len(d.Widgets) == 0 {
		c.fail("the dashboard has no widgets")
	}
	for i, w := range d.Widgets {
		title, _ := w.Properties["title"].(string)
		where := fmt.Sprintf("widget %d (%s %q)", i, w.Type, title)
		if w.Width < 1 || w.Height < 1 || w.X < 0 || w.Y < 0 || w.X+w.Width > 24 {
			c.fail("%s: position x=%d y=%d width=%d height=%d is off the 24-column grid", where, w.X, w.Y, w.Width, w.Height)
		}
		for j, o := range d.Widgets[:i] {
			if w.X < o.X+o.Width && o.X < w.X+w.Width && w.Y < o.Y+o.Height && o.Y < w.Y+w.Height {
				c.fail("%s overlaps widget %d", where, j)
			}
		}
		switch w.Type {
		case "metric":
			c.metricWidget(where, w.Properties)
		case "log":
			c.logWidget(where, w.Properties)
		case "alarm":
			for _, a := range asSlice(w.Properties["alarms"]) {
				s := fmt.Sprint(a)
				if !f.alarms[s] {
					c.fail("%s: %s is not the ARN of an alarm of the template", where, s)
				}
				if c.shown["alarm "+s] {
					c.fail("%s: alarm %s listed twice", where, s)
				}
				c.show("alarm", s)
			}
		case "text":
		default:
			c.fail("%s: unknown widget type", where)
		}
	}
	c.coverage()
	return c.problems, c.metrics
}

func (c *dashboardCheck) metricWidget(where string, p map[string]any) {
	if p["region"] != ph("AWS::Region") {
		c.fail("%s: region %v, want ${AWS::Region} (the stack's region)", where, p["region"])
	}
	widgetStat, _ := p["stat"].(string)
	entries := asSlice(p["metrics"])
	if len(entries) == 0 {
		c.fail("%s: no metrics", where)
	}
	for _, e := range entries {
		c.metrics++
		items := asSlice(e)
		if len(items) == 0 {
			c.fail("%s: empty metric entry", where)
			continue
		}
		if opts := asMap(items[0]); opts != nil {
			expr, _ := opts["expression"].(string)
			if strings.HasPrefix(expr, "SEARCH(") {
				c.search(where, expr)
			} else if expr == "" {
				c.fail("%s: metric entry %v is neither a metric nor an expression", where, e)
			}
			continue // other metric math only combines metrics of the widget, checked here
		}
		stat := widgetStat
		if opts := asMap(items[len(items)-1]); opts != nil {
			if s, ok := opts["stat"].(string); ok {
				stat = s
			}
			items = items[:len(items)-1]
		}
		if stat == "" {
			stat = "Average"
		}
		var s []string
		for _, it := range items {
			str, ok := it.(string)
			if !ok || str == "." || str == "..." {
				c.fail("%s: metric entry %v: want [namespace, name, dimension, value, ...], spelled out", where, e)
				s = nil
				break
			}
			s = append(s, str)
		}
		if len(s) < 2 || len(s)%2 != 0 {
			if s != nil {
				c.fail("%s: metric entry %v: want [namespace, name, dimension, value, ...]", where, e)
			}
			continue
		}
		dims := map[string]string{}
		for i := 2; i < len(s); i += 2 {
			dims[s[i]] = s[i+1]
		}
		c.metric(where, s[0], s[1], dims, stat)
	}
}

// metric checks one explicitly named metric and records what it shows.
func (c *dashboardCheck) metric(where, namespace, name string, dims map[string]string, stat string) {
	id := fmt.Sprintf("%s %s %v", namespace, name, dims)
	if namespace == c.truth.namespace {
		if !c.emfDimensions(where, id, name, sortedKeys(dims)) {
			return
		}
		for dim, v := range dims {
			if dim == metrics.DimFunction && !slices.Contains(values(c.f.functions), v) {
				c.fail("%s: %s: function %q is none of the template's functions %v", where, id, v, values(c.f.functions))
			}
		}
		if len(dims) == 1 {
			c.show("emf", name, dims[metrics.DimFunction], stat)
		}
		return
	}
	known, ok := awsMetrics[namespace]
	if !ok {
		c.fail("%s: %s: namespace is neither the recorder's %q nor a known AWS one", where, id, c.truth.namespace)
		return
	}
	sets, ok := known[name]
	if !ok {
		c.fail("%s: %s: %s has no metric %s", where, id, namespace, name)
		return
	}
	if !slices.ContainsFunc(sets, func(set []string) bool { return slices.Equal(set, sortedKeys(dims)) }) {
		c.fail("%s: %s: %s %s has the dimension sets %v, not %v", where, id, namespace, name, sets, sortedKeys(dims))
		return
	}
	var resource string
	for dim, v := range dims {
		switch dim {
		case "FunctionName":
			if _, ok := c.f.functions[v]; !ok {
				c.fail("%s: %s: FunctionName %s is not an AWS::Serverless::Function of the template", where, id, v)
			}
			resource = v
		case "ApiId":
			if !c.f.apis[v] {
				c.fail("%s: %s: ApiId %s is not the HTTP API of the template", where, id, v)
			}
			resource = v
		case "TableName":
			indexes, ok := c.f.tables[v]
			if !ok {
				c.fail("%s: %s: TableName %s is not an AWS::DynamoDB::Table of the template", where, id, v)
			}
			if ix, has := dims["GlobalSecondaryIndexName"]; has && !slices.Contains(indexes, ix) {
				c.fail("%s: %s: table %s has no index %q (it has %v)", where, id, v, ix, indexes)
			}
			resource = v
		case "Operation":
			if !slices.Contains(dynamoOperations, v) {
				c.fail("%s: %s: %q is not a DynamoDB operation", where, id, v)
			}
		}
	}
	if len(dims) == 1 {
		c.show(namespace, name, resource, stat)
	}
}

// emfDimensions reports whether the recorder writes metric name with exactly
// the dimension set dims.
func (c *dashboardCheck) emfDimensions(where, id, name string, dims []string) bool {
	sets, ok := c.truth.dimensions[name]
	if !ok {
		c.fail("%s: %s: the recorder writes no metric %s (it writes %v)", where, id, name, sortedKeys(c.truth.dimensions))
		return false
	}
	if !slices.ContainsFunc(sets, func(set []string) bool { return slices.Equal(set, dims) }) {
		c.fail("%s: %s: the recorder writes %s with the dimension sets %v, not %v", where, id, name, sets, dims)
		return false
	}
	return true
}

var (
	searchExpr = regexp.MustCompile(`^SEARCH\('\s*\{([^}]*)\}\s*(.*?)\s*'\s*,\s*'([^']+)'\s*(?:,\s*\d+\s*)?\)$`)
	searchTerm = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9_]*)="([^"]*)"$`)
)

// search checks a SEARCH expression: only over the recorder's namespace (an
// AWS/* search would also find other stacks' resources), an exact schema of a
// dimension set the recorder writes, and exact Name="value" terms only.
func (c *dashboardCheck) search(where, expr string) {
	m := searchExpr.FindStringSubmatch(expr)
	if m == nil {
		c.fail("%s: %s: want SEARCH('{Namespace,dimension,...} MetricName=\"...\"', 'stat', period)", where, expr)
		return
	}
	schema := strings.Split(m[1], ",")
	for i := range schema {
		schema[i] = strings.Trim(strings.TrimSpace(schema[i]), `"`)
	}
	if schema[0] != c.truth.namespace {
		c.fail("%s: %s: SEARCH over namespace %q; only the recorder's %q may be searched", where, expr, schema[0], c.truth.namespace)
		return
	}
	var name string
	filters := map[string]string{}
	for _, term := range strings.Fields(m[2]) {
		tm := searchTerm.FindStringSubmatch(term)
		if tm == nil {
			c.fail("%s: %s: term %q is not an exact Name=\"value\" match", where, expr, term)
			return
		}
		if tm[1] == "MetricName" {
			name = tm[2]
		} else {
			filters[tm[1]] = tm[2]
		}
	}
	if name == "" {
		c.fail("%s: %s: SEARCH without MetricName=\"...\"", where, expr)
		return
	}
	dims := sorted(schema[1:])
	if !c.emfDimensions(where, expr, name, dims) {
		return
	}
	for dim, v := range filters {
		if !slices.Contains(dims, dim) {
			c.fail("%s: %s: filter on %s, which is not in the schema", where, expr, dim)
		}
		if dim == metrics.DimFunction && !slices.Contains(values(c.f.functions), v) {
			c.fail("%s: %s: function %q is none of the template's functions", where, expr, v)
		}
	}
	if len(filters) == 0 {
		c.show("search", name, strings.Join(dims, ","), m[3])
	}
}

var logSource = regexp.MustCompile(`SOURCE\s+'([^']*)'`)

func (c *dashboardCheck) logWidget(where string, p map[string]any) {
	if p["region"] != ph("AWS::Region") {
		c.fail("%s: region %v, want ${AWS::Region}", where, p["region"])
	}
	query, _ := p["query"].(string)
	sources := logSource.FindAllStringSubmatch(query, -1)
	if len(sources) == 0 {
		c.fail("%s: query names no log group (SOURCE '...')", where)
	}
	for _, s := range sources {
		if !c.f.logGroups[s[1]] {
			c.fail("%s: SOURCE %q is not a log group of the template", where, s[1])
		}
		if strings.Contains(query, "initDuration") {
			c.show("init", s[1])
		}
	}
}

// coverage reports what the dashboard must show and does not.
func (c *dashboardCheck) coverage() {
	for _, fn := range sortedKeys(c.f.functions) {
		for _, want := range wantPerFunction {
			name, stat, _ := strings.Cut(want, "/")
			if !c.shown["AWS/Lambda "+name+" "+fn+" "+stat] {
				c.fail("missing: AWS/Lambda %s (%s) of %s", name, stat, fn)
			}
		}
		if !c.shown["init "+c.f.functionLogs[fn]] {
			c.fail("missing: the init duration of %s (a log widget over %s)", fn, c.f.functionLogs[fn])
		}
		for _, name := range c.truth.request {
			for _, stat := range c.emfStats(name) {
				if !c.shown["emf "+name+" "+c.f.functions[fn]+" "+stat] {
					c.fail("missing: %s %s (%s) of function %s", c.truth.namespace, name, stat, c.f.functions[fn])
				}
			}
		}
	}
	for _, name := range c.truth.request {
		for _, set := range c.truth.dimensions[name] {
			if len(set) < 2 {
				continue
			}
			for _, stat := range c.emfStats(name) {
				if !c.shown["search "+name+" "+strings.Join(set, ",")+" "+stat] {
					c.fail("missing: a SEARCH of %s %s (%s) over the dimension set %v", c.truth.namespace, name, stat, set)
				}
			}
		}
	}
	for _, api := range sortedKeys(c.f.apis) {
		for _, want := range wantPerAPI {
			name, stat, _ := strings.Cut(want, "/")
			if !c.shown["AWS/ApiGateway "+name+" "+api+" "+stat] {
				c.fail("missing: AWS/ApiGateway %s (%s) of %s", name, stat, api)
			}
		}
	}
	for _, table := range sortedKeys(c.f.tables) {
		for _, want := range wantPerTable {
			name, stat, _ := strings.Cut(want, "/")
			if !c.shown["AWS/DynamoDB "+name+" "+table+" "+stat] {
				c.fail("missing: AWS/DynamoDB %s (%s) of %s", name, stat, table)
			}
		}
	}
	for _, alarm := range sortedKeys(c.f.alarms) {
		if !c.shown["alarm "+alarm] {
			c.fail("missing: alarm %s in an alarm widget", alarm)
		}
	}
}

// emfStats are the statistics a request metric is shown with: percentiles for
// a latency, sums for a count.
func (c *dashboardCheck) emfStats(name string) []string {
	if c.truth.units[name] == "Milliseconds" {
		return []string{"p50", "p99"}
	}
	return []string{"Sum"}
}

func TestDashboardIsNamedAfterTheStack(t *testing.T) {
	raw := rawTemplate(t, zenith.Template)
	id, _ := dashboardSub(t, raw)
	props := asMap(asMap(asMap(raw["Resources"])[id])["Properties"])
	if name := asMap(props["DashboardName"])["Fn::Sub"]; name != "${AWS::StackName}" {
		t.Errorf("DashboardName %v, want !Sub ${AWS::StackName}", props["DashboardName"])
	}
	url := fmt.Sprint(asMap(asMap(asMap(raw["Outputs"])["DashboardUrl"])["Value"])["Fn::Sub"])
	want := "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards/dashboard/${" + id + "}"
	if url != want {
		t.Errorf("output DashboardUrl %q, want %q", url, want)
	}
}

func TestDashboardMetricsExist(t *testing.T) {
	raw := rawTemplate(t, zenith.Template)
	_, sub := dashboardSub(t, raw)
	f := templateFacts(t, raw)
	truth := recorderTruth(t)
	problems, n := dashboardProblems(sub, f, truth)
	for _, p := range problems {
		t.Error(p)
	}
	if n == 0 {
		t.Error("no metric was checked")
	}
	t.Logf("%d metric entries checked against namespace %s, %d functions, %d tables, %d alarms",
		n, truth.namespace, len(f.functions), len(f.tables), len(f.alarms))
}

// Each mutation of the real body is a dashboard error the check has to report.
func TestDashboardCheckBites(t *testing.T) {
	raw := rawTemplate(t, zenith.Template)
	_, sub := dashboardSub(t, raw)
	f := templateFacts(t, raw)
	truth := recorderTruth(t)
	cases := []struct {
		name, old, new string
		all            bool
		want           string
	}{
		{"EMF metric renamed", `"ZenithFresh", "Throttled", "function", "auth"`, `"ZenithFresh", "Throttles", "function", "auth"`, false,
			"the recorder writes no metric Throttles"},
		{"EMF metric renamed in a SEARCH", `MetricName=\"Errors5xx\"`, `MetricName=\"Errors\"`, false,
			"the recorder writes no metric Errors"},
		{"other namespace", `["ZenithFresh", "Requests", "function", "auth"`, `["Zenith", "Requests", "function", "auth"`, false,
			`namespace is neither the recorder's "ZenithFresh"`},
		{"dimension set the recorder does not write", `{ZenithFresh,function,route} MetricName=\"Requests\"`, `{ZenithFresh,route} MetricName=\"Requests\"`, false,
			"not [route]"},
		{"unknown function value", `"function", "session", {"label"`, `"function", "sessions", {"label"`, false,
			`function "sessions" is none of the template's functions`},
		{"partial-match SEARCH term", `MetricName=\"Requests\"'`, `MetricName=\"Requests\" auth'`, false,
			`term "auth" is not an exact`},
		{"AWS/* SEARCH", `'{ZenithFresh,function,route} MetricName=\"Throttled\"'`, `'{AWS/Lambda,FunctionName} MetricName=\"Throttles\"'`, false,
			`SEARCH over namespace "AWS/Lambda"`},
		{"unknown table", `"TableName", "${MetricsTable}"`, `"TableName", "${MetricTable}"`, false,
			"unknown !Sub variable ${MetricTable}"},
		{"log group as FunctionName", `"Errors", "FunctionName", "${AuthFunction}"`, `"Errors", "FunctionName", "${AuthLogGroup}"`, false,
			"FunctionName {{AuthLogGroup}} is not an AWS::Serverless::Function"},
		{"ThrottledRequests without Operation", `"ReadThrottleEvents", "TableName", "${UsersTable}"`, `"ThrottledRequests", "TableName", "${UsersTable}"`, false,
			"ThrottledRequests has the dimension sets [[Operation TableName]]"},
		{"index the table does not have", `"GlobalSecondaryIndexName", "userId-index"`, `"GlobalSecondaryIndexName", "user-index"`, false,
			`has no index "user-index"`},
		{"AWS metric misspelled", `"ConcurrentExecutions", "FunctionName", "${AuthFunction}"`, `"ConcurrentExecution", "FunctionName", "${AuthFunction}"`, false,
			"AWS/Lambda has no metric ConcurrentExecution"},
		{"ApiId of another resource", `"Count", "ApiId", "${ZenithApi}"`, `"Count", "ApiId", "${AlarmTopic}"`, false,
			"ApiId {{AlarmTopic}} is not the HTTP API"},
		{"ApiName, a REST API dimension", `"Count", "ApiId", "${ZenithApi}"`, `"Count", "ApiName", "${ZenithApi}"`, false,
			"not [ApiName]"},
		{"alarm left out", `"${Api5xxAlarm.Arn}", `, ``, false,
			"missing: alarm {{Api5xxAlarm.Arn}}"},
		{"resource that is no alarm", `"${ApiLatencyAlarm.Arn}"`, `"${AlarmTopic.TopicArn}"`, false,
			"{{AlarmTopic.TopicArn}} is not the ARN of an alarm"},
		{"log group outside the template", `SOURCE '${SystemMonitorLogGroup}'`, `SOURCE '/aws/lambda/elsewhere'`, false,
			`SOURCE "/aws/lambda/elsewhere" is not a log group of the template`},
		{"a function left out", `${SystemMonitorFunction}`, `${SessionFunction}`, true,
			"missing: AWS/Lambda Errors (Sum) of {{SystemMonitorFunction}}"},
		{"a percentile left out", `"Latency p99 (ms)", "view": "timeSeries", "stacked": false, "region": "${AWS::Region}", "period": 60, "stat": "p99"`,
			`"Latency p99 (ms)", "view": "timeSeries", "stacked": false, "region": "${AWS::Region}", "period": 60, "stat": "p90"`, false,
			"missing: ZenithFresh LatencyMs (p99) of function auth"},
		{"hard-coded region", `"region": "${AWS::Region}"`, `"region": "us-east-1"`, false,
			`region us-east-1, want ${AWS::Region}`},
		{"overlapping widgets", `"x": 18, "y": 5`, `"x": 16, "y": 5`, false,
			"overlaps widget"},
		{"not JSON", `"widgets": [`, `"widgets": `, false,
			"not JSON after substitution"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(sub, tc.old) {
				t.Fatalf("mutation anchor %q not found in the DashboardBody", tc.old)
			}
			n := 1
			if tc.all {
				n = -1
			}
			problems, _ := dashboardProblems(strings.Replace(sub, tc.old, tc.new, n), f, truth)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("the dashboard check did not report %q; it reported %q", tc.want, problems)
			}
		})
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
