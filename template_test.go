package zenith_test

// The template, parsed with goformation (a CloudFormation/SAM parser with a typed
// model of every resource): routes, build wiring, environment, IAM, tables,
// logs, alarms. goformation v7.14.9's SAM schema predates two properties SAM
// has today (Function.LoggingConfig and HttpApi.AccessLogSettings; it knows the
// latter as AccessLogSetting) and rejects them as unknown fields, so parse()
// lifts exactly those out before handing the template to goformation and the
// tests check them from the raw document.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"
	"gopkg.in/yaml.v3"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/config"
)

// fn describes what each function must have.
type fn struct {
	logicalID string
	dir       string // functions/<dir>, and its config.Load name
	base      string // its API route
	tables    []string
	other     []string // non-DynamoDB actions it may have (with any condition true)
}

var functions = []fn{
	{"AuthFunction", "auth", "/api/auth",
		[]string{"UsersTable", "SessionsTable", "LoginAttemptsTable", "RateLimitsTable", "MetricsTable"},
		[]string{"secretsmanager:GetSecretValue", "ssm:GetParameter"}},
	{"SessionFunction", "session", "/api/sessions",
		[]string{"UsersTable", "SessionsTable", "RateLimitsTable", "MetricsTable"}, nil},
	{"TrafficManagerFunction", "traffic-manager", "/api/traffic-manager",
		[]string{"UsersTable", "SessionsTable", "RateLimitsTable", "MetricsTable", "LoadOverridesTable"}, nil},
	{"SystemMonitorFunction", "system-monitor", "/api/system-monitor",
		[]string{"UsersTable", "SessionsTable", "RateLimitsTable", "MetricsTable", "AlertsTable", "LoadOverridesTable"},
		[]string{"cloudwatch:GetMetricData"}},
}

// lifted are the SAM properties goformation v7.14.9 does not know, by resource type.
var lifted = map[string][]string{
	"AWS::Serverless::Function": {"LoggingConfig"},
	"AWS::Serverless::HttpApi":  {"AccessLogSettings"},
}

// parsed is the template as goformation reads it, plus the raw document.
type parsed struct {
	cf  *cloudformation.Template
	raw map[string]any // long-form intrinsics, before anything was lifted
}

// parse reads template.yaml with the given parameter values. Intrinsics are
// rendered readable: a !Ref to a resource or to a parameter without default
// becomes "${Name}", !GetAtt "${Name.Attr}", !Sub keeps its text, and !If is
// decided by evaluating its condition over the parameters.
func parse(t *testing.T, src []byte, params map[string]any) parsed {
	t.Helper()
	var node yaml.Node
	if err := yaml.Unmarshal(src, &node); err != nil {
		t.Fatalf("template.yaml is not YAML: %v", err)
	}
	raw, ok := longForm(node.Content[0]).(map[string]any)
	if !ok {
		t.Fatal("template.yaml is not a mapping")
	}
	doc := deepCopy(raw).(map[string]any)
	for _, r := range asMap(doc["Resources"]) {
		res := asMap(r)
		for _, prop := range lifted[fmt.Sprint(res["Type"])] {
			delete(asMap(res["Properties"]), prop)
		}
	}
	if g := asMap(asMap(doc["Globals"])["Function"]); g != nil {
		delete(g, "LoggingConfig")
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := goformation.ParseJSONWithOptions(b, &intrinsics.ProcessorOptions{
		ParameterOverrides: params,
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref": func(name string, input, template any) any {
				if v := intrinsics.Ref(name, input, template); v != nil {
					return v
				}
				if input == "AWS::NoValue" {
					return nil
				}
				return fmt.Sprintf("${%v}", input)
			},
			"Fn::GetAtt": func(name string, input, template any) any {
				parts, _ := input.([]any)
				s := make([]string, len(parts))
				for i, p := range parts {
					s[i] = fmt.Sprint(p)
				}
				return "${" + strings.Join(s, ".") + "}"
			},
			"Fn::Sub": func(name string, input, template any) any {
				if s, ok := input.(string); ok {
					return s
				}
				return fmt.Sprint(input)
			},
			"Fn::If": func(name string, input, template any) any {
				args, _ := input.([]any)
				if len(args) != 3 {
					return nil
				}
				if condition(t, fmt.Sprint(args[0]), asMap(template)) {
					return args[1]
				}
				return args[2]
			},
		},
	})
	if err != nil {
		t.Fatalf("goformation cannot parse template.yaml: %v", err)
	}
	return parsed{cf: cf, raw: raw}
}

// condition evaluates a named condition over the parameters' (overridden) defaults.
func condition(t *testing.T, name string, template map[string]any) bool {
	t.Helper()
	expr, ok := asMap(template["Conditions"])[name]
	if !ok {
		t.Fatalf("unknown condition %q", name)
	}
	var eval func(e any) bool
	value := func(v any) string {
		if m := asMap(v); m != nil {
			if ref, ok := m["Ref"]; ok {
				p := asMap(asMap(template["Parameters"])[fmt.Sprint(ref)])
				return fmt.Sprint(p["Default"])
			}
			t.Fatalf("condition %s: unsupported value %v", name, v)
		}
		return fmt.Sprint(v)
	}
	eval = func(e any) bool {
		m := asMap(e)
		switch {
		case m["Fn::Equals"] != nil:
			args := m["Fn::Equals"].([]any)
			return value(args[0]) == value(args[1])
		case m["Fn::Not"] != nil:
			return !eval(m["Fn::Not"].([]any)[0])
		case m["Fn::And"] != nil:
			for _, a := range m["Fn::And"].([]any) {
				if !eval(a) {
					return false
				}
			}
			return true
		case m["Fn::Or"] != nil:
			for _, a := range m["Fn::Or"].([]any) {
				if eval(a) {
					return true
				}
			}
			return false
		case m["Condition"] != nil:
			return condition(t, fmt.Sprint(m["Condition"]), template)
		}
		t.Fatalf("condition %s: unsupported expression %v", name, e)
		return false
	}
	return eval(expr)
}

// longForm converts a YAML node to plain values, short-form tags (!Ref X,
// !GetAtt A.B, !Sub s, ...) to CloudFormation's long form.
func longForm(n *yaml.Node) any {
	custom := strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!")
	var v any
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = longForm(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, longForm(c))
		}
		v = s
	case yaml.AliasNode:
		return longForm(n.Alias)
	default:
		var x any
		if custom || n.Decode(&x) != nil {
			x = n.Value
		}
		v = x
	}
	if !custom {
		return v
	}
	tag := strings.TrimPrefix(n.Tag, "!")
	switch tag {
	case "Ref", "Condition":
		return map[string]any{tag: v}
	case "GetAtt":
		if s, ok := v.(string); ok {
			a, b, _ := strings.Cut(s, ".")
			return map[string]any{"Fn::GetAtt": []any{a, b}}
		}
		return map[string]any{"Fn::GetAtt": v}
	default:
		return map[string]any{"Fn::" + tag: v}
	}
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, fmt.Sprint(e))
		}
		return out
	}
	return nil
}

func TestTemplateParsesWithGoformation(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	if got := len(p.cf.GetAllServerlessFunctionResources()); got != len(functions) {
		t.Errorf("%d functions, want %d", got, len(functions))
	}
	if got := len(p.cf.GetAllServerlessHttpApiResources()); got != 1 {
		t.Errorf("%d HttpApi resources, want exactly one", got)
	}
	if got := len(p.cf.GetAllDynamoDBTableResources()); got != len(config.TableSpecs) {
		t.Errorf("%d tables, want %d", got, len(config.TableSpecs))
	}
}

func TestFunctionsRuntimeBuildAndRoutes(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	g, err := p.cf.GetServerlessGlobalFunction()
	if err != nil {
		t.Fatal(err)
	}
	seenRoutes := map[string]string{}
	for _, f := range functions {
		t.Run(f.logicalID, func(t *testing.T) {
			res, err := p.cf.GetServerlessFunctionWithName(f.logicalID)
			if err != nil {
				t.Fatal(err)
			}
			runtime, arch, handler := res.Runtime, res.Architectures, res.Handler
			if runtime == nil {
				runtime = g.Runtime
			}
			if arch == nil && g.Architectures != nil {
				arch = *g.Architectures
			}
			if handler == nil {
				handler = g.Handler
			}
			if runtime == nil || *runtime != "provided.al2023" {
				t.Errorf("runtime %v, want provided.al2023", deref(runtime))
			}
			if !slices.Equal(arch, []string{"arm64"}) {
				t.Errorf("architectures %v, want [arm64]", arch)
			}
			if handler == nil || *handler != "bootstrap" {
				t.Errorf("handler %v, want bootstrap", deref(handler))
			}
			codeURI := res.CodeUri
			if codeURI == nil {
				codeURI = g.CodeUri
			}
			if codeURI == nil || codeURI.String == nil || *codeURI.String != "." {
				t.Errorf("CodeUri must be the project root '.', so the Makefile and go.mod are in the build context")
			}
			if bm := res.AWSCloudFormationMetadata["BuildMethod"]; bm != "makefile" {
				t.Errorf("Metadata.BuildMethod %v, want makefile", bm)
			}
			mem := res.MemorySize
			if mem == nil {
				mem = g.MemorySize
			}
			switch {
			case mem == nil:
				t.Error("no MemorySize")
			case f.logicalID == "AuthFunction" && *mem < 1024:
				t.Errorf("auth memory %d MB, want >= 1024 (argon2id is CPU-bound)", *mem)
			case *mem < 128:
				t.Errorf("memory %d MB", *mem)
			}
			if res.ReservedConcurrentExecutions != nil {
				t.Errorf("reserved concurrency %d set by default, want unset", *res.ReservedConcurrentExecutions)
			}

			var routes []string
			for name, ev := range res.Events {
				if ev.Type != "HttpApi" {
					continue
				}
				h := ev.Properties.HttpApiEvent
				if h == nil {
					t.Fatalf("event %s is not a valid HttpApi event", name)
				}
				if deref(h.ApiId) != "${ZenithApi}" {
					t.Errorf("event %s ApiId %q, want the template's HttpApi", name, deref(h.ApiId))
				}
				if deref(h.PayloadFormatVersion) != "2.0" {
					t.Errorf("event %s payload format %q, want 2.0", name, deref(h.PayloadFormatVersion))
				}
				key := deref(h.Method) + " " + deref(h.Path)
				if other, dup := seenRoutes[key]; dup {
					t.Errorf("route %s is owned by %s and %s", key, other, f.logicalID)
				}
				seenRoutes[key] = f.logicalID
				routes = append(routes, key)
			}
			want := []string{"ANY " + f.base, "ANY " + f.base + "/{proxy+}"}
			switch f.logicalID {
			case "AuthFunction":
				want = append(want, "ANY /$default")
			case "SystemMonitorFunction":
				want = append(want, "ANY /api/health")
			}
			sort.Strings(routes)
			sort.Strings(want)
			if !slices.Equal(routes, want) {
				t.Errorf("routes %v, want %v", routes, want)
			}

			// LoggingConfig is lifted out for goformation; check it from the raw document.
			rawRes := asMap(asMap(p.raw["Resources"])[f.logicalID])
			lc := asMap(asMap(rawRes["Properties"])["LoggingConfig"])
			if lc["LogFormat"] != "JSON" {
				t.Errorf("LoggingConfig.LogFormat %v, want JSON", lc["LogFormat"])
			}
			group := fmt.Sprint(asMap(lc["LogGroup"])["Ref"])
			lg, err := p.cf.GetLogsLogGroupWithName(group)
			if err != nil {
				t.Fatalf("LoggingConfig.LogGroup %q is not a log group of the template: %v", group, err)
			}
			if lg.RetentionInDays == nil || *lg.RetentionInDays <= 0 {
				t.Errorf("log group %s has no retention", group)
			}
		})
	}
}

func TestScheduleRunsTheAlertEvaluator(t *testing.T) {
	res, err := parse(t, zenith.Template, nil).cf.GetServerlessFunctionWithName("SystemMonitorFunction")
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, ev := range res.Events {
		if ev.Type == "Schedule" && ev.Properties.ScheduleEvent != nil && ev.Properties.ScheduleEvent.Schedule == "rate(1 minute)" {
			found = true
		}
	}
	if !found {
		t.Error("SystemMonitorFunction has no Schedule event rate(1 minute)")
	}
}

func TestEveryConfigVariableIsDeclaredOnEveryFunction(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	g, err := p.cf.GetServerlessGlobalFunction()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range functions {
		t.Run(f.logicalID, func(t *testing.T) {
			res, err := p.cf.GetServerlessFunctionWithName(f.logicalID)
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			if g.Environment != nil {
				for k, v := range g.Environment.Variables {
					env[k] = v
				}
			}
			if res.Environment != nil {
				for k, v := range res.Environment.Variables {
					env[k] = v
				}
			}
			for _, name := range config.Variables {
				if _, ok := env[name]; !ok {
					t.Errorf("%s is not declared (sam local only overrides declared variables)", name)
				}
			}
			for _, spec := range config.TableSpecs {
				if got := env[spec.Env]; got != "${"+spec.LogicalID+"}" {
					t.Errorf("%s = %q, want !Ref %s", spec.Env, got, spec.LogicalID)
				}
			}
			for name, want := range map[string]string{
				"METRICS_HISTORY_SOURCE": "cloudwatch", "DYNAMODB_ENDPOINT": "", "MASTER_PASSWORD": "",
				"MASTER_PASSWORD_SECRET": "", "ALLOWED_ORIGINS": "${AllowedOrigins}",
			} {
				if env[name] != want {
					t.Errorf("%s = %q, want %q", name, env[name], want)
				}
			}
		})
	}
}

func TestTablesTTLRetentionAndProtection(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	protected := map[string]bool{"UsersTable": true, "SessionsTable": true, "AlertsTable": true}
	for id, tbl := range p.cf.GetAllDynamoDBTableResources() {
		t.Run(id, func(t *testing.T) {
			if _, ok := config.LookupTableSpec(id); !ok {
				t.Errorf("table %s has no environment variable in config.TableSpecs", id)
			}
			ttl := tbl.TimeToLiveSpecification
			if ttl == nil || !ttl.Enabled || deref(ttl.AttributeName) != "ttl" {
				t.Errorf("TTL not enabled on attribute ttl")
			}
			if deref(tbl.BillingMode) != "PAY_PER_REQUEST" {
				t.Errorf("billing mode %q, want on-demand", deref(tbl.BillingMode))
			}
			pitr := tbl.PointInTimeRecoverySpecification
			if pitr == nil || pitr.PointInTimeRecoveryEnabled == nil || !*pitr.PointInTimeRecoveryEnabled {
				t.Error("point-in-time recovery off")
			}
			if protected[id] {
				if tbl.AWSCloudFormationDeletionPolicy != "Retain" || tbl.AWSCloudFormationUpdateReplacePolicy != "Retain" {
					t.Errorf("deletion/replace policy %q/%q, want Retain/Retain", tbl.AWSCloudFormationDeletionPolicy, tbl.AWSCloudFormationUpdateReplacePolicy)
				}
				if tbl.DeletionProtectionEnabled == nil || !*tbl.DeletionProtectionEnabled {
					t.Error("deletion protection off")
				}
			}
		})
	}
}

var tableResource = regexp.MustCompile(`^\$\{([A-Za-z]+Table)\.Arn\}(/index/[A-Za-z-]+)?$`)

// statements returns a function's IAM statements. Policies must be inline
// policy documents only (no managed policy names, no SAM policy templates):
// goformation's union type cannot tell these apart in a list, so the form is
// checked on the raw document.
func statements(t *testing.T, p parsed, id string, res *serverless.Function) []map[string]any {
	t.Helper()
	rawPolicies, ok := asMap(asMap(asMap(p.raw["Resources"])[id])["Properties"])["Policies"].([]any)
	if !ok || len(rawPolicies) == 0 {
		t.Fatal("Policies must be a list of inline policy documents")
	}
	for _, doc := range rawPolicies {
		m := asMap(doc)
		if m == nil || m["Statement"] == nil {
			t.Fatalf("policy %v is not an inline policy document (managed policies and SAM templates grant more than named tables)", doc)
		}
		for k := range m {
			if k != "Statement" && k != "Version" {
				t.Fatalf("policy document has unexpected key %q", k)
			}
		}
	}
	if res.Policies == nil {
		t.Fatal("no Policies")
	}
	var out []map[string]any
	if res.Policies.IAMPolicyDocumentArray == nil {
		t.Fatal("Policies has no policy document")
	}
	for _, doc := range *res.Policies.IAMPolicyDocumentArray {
		for _, s := range doc.Statement {
			if s == nil {
				continue // an !If that chose AWS::NoValue
			}
			out = append(out, asMap(s))
		}
	}
	return out
}

func TestPoliciesNameOnlyTheirTablesAndActions(t *testing.T) {
	for _, secret := range []string{"", "zenith/master-password"} {
		p := parse(t, zenith.Template, map[string]any{"MasterPasswordSecret": secret})
		for _, f := range functions {
			t.Run(fmt.Sprintf("%s/secret=%q", f.logicalID, secret), func(t *testing.T) {
				for _, problem := range policyProblems(t, p, f, secret != "") {
					t.Error(problem)
				}
			})
		}
	}
}

// The policy check must catch what it guards against: each mutation of the
// template below is a grant it has to report.
func TestPolicyCheckCatchesBroadGrants(t *testing.T) {
	session := functions[1]
	cases := []struct{ name, old, new string }{
		{"dynamodb wildcard action", "Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt UsersTable.Arn\n            - Sid: Sessions\n",
			"Action: ['dynamodb:*']\n              Resource: !GetAtt UsersTable.Arn\n            - Sid: Sessions\n"},
		{"table action on Resource '*'", "Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt UsersTable.Arn\n            - Sid: Sessions\n",
			"Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]\n              Resource: '*'\n            - Sid: Sessions\n"},
		{"another function's table", "Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt UsersTable.Arn\n            - Sid: Sessions\n",
			"Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:UpdateItem]\n              Resource: !GetAtt AlertsTable.Arn\n            - Sid: Sessions\n"},
		{"users table write beyond the key item", "              Condition:\n                ForAllValues:StringEquals:\n                  dynamodb:LeadingKeys: ['meta#keys']\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := string(zenith.Template)
			// The first match is in SessionFunction's policy (auth's Users statement differs).
			if !strings.Contains(src, tc.old) {
				t.Fatalf("mutation anchor not found in template.yaml")
			}
			p := parse(t, []byte(strings.Replace(src, tc.old, tc.new, 1)), nil)
			if len(policyProblems(t, p, session, false)) == 0 {
				t.Errorf("the policy check did not notice: %s", tc.name)
			}
		})
	}
}

// policyProblems lists every way a function's policy grants more than its own
// tables and actions.
func policyProblems(t *testing.T, p parsed, f fn, secretSet bool) []string {
	t.Helper()
	res, err := p.cf.GetServerlessFunctionWithName(f.logicalID)
	if err != nil {
		t.Fatal(err)
	}
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	named := map[string]bool{}
	var others []string
	for _, s := range statements(t, p, f.logicalID, res) {
		if s["Effect"] != "Allow" {
			fail("statement %v: only Allow statements expected", s["Sid"])
		}
		actions, resources := strs(s["Action"]), strs(s["Resource"])
		if len(actions) == 0 || len(resources) == 0 {
			fail("statement %v has no action or resource", s["Sid"])
			continue
		}
		var dynamo bool
		for _, a := range actions {
			if strings.Contains(a, "*") {
				fail("statement %v grants wildcard action %q", s["Sid"], a)
			}
			if strings.HasPrefix(strings.ToLower(a), "dynamodb:") {
				dynamo = true
			} else {
				others = append(others, a)
			}
		}
		for _, r := range resources {
			if !dynamo {
				if r == "*" && !slices.Equal(actions, []string{"cloudwatch:GetMetricData"}) {
					fail("statement %v: Resource '*' is allowed only for cloudwatch:GetMetricData", s["Sid"])
				}
				if (strings.HasPrefix(actions[0], "secretsmanager:") || strings.HasPrefix(actions[0], "ssm:")) &&
					!strings.Contains(r, "${MasterPasswordSecret}") {
					fail("statement %v: secret grant on %q, want the MasterPasswordSecret only", s["Sid"], r)
				}
				continue
			}
			m := tableResource.FindStringSubmatch(r)
			if m == nil {
				fail("statement %v: table action on resource %q; want a table ARN of the template", s["Sid"], r)
				continue
			}
			if m[2] != "" && (m[2] != "/index/userId-index" || m[1] != "SessionsTable" || !slices.Equal(actions, []string{"dynamodb:Query"})) {
				fail("statement %v: the only index grant is Query on the sessions GSI, got %v on %s", s["Sid"], actions, r)
			}
			named[m[1]] = true
			if m[1] == "UsersTable" && f.logicalID != "AuthFunction" && slices.Contains(actions, "dynamodb:PutItem") && !onlyKeyItem(s) {
				fail("statement %v: PutItem on the users table outside auth must be limited to the key item (dynamodb:LeadingKeys meta#keys)", s["Sid"])
			}
		}
	}
	var got []string
	for id := range named {
		got = append(got, id)
	}
	sort.Strings(got)
	want := slices.Clone(f.tables)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		fail("tables %v, want exactly %v", got, want)
	}
	wantOthers := f.other
	if f.logicalID == "AuthFunction" && !secretSet {
		wantOthers = nil // no secret, no secret grant
	}
	sort.Strings(others)
	if !slices.Equal(others, wantOthers) {
		fail("non-table actions %v, want %v", others, wantOthers)
	}
	return problems
}

// onlyKeyItem reports whether a statement is limited to the deployment
// key's item by ForAllValues:StringEquals dynamodb:LeadingKeys [meta#keys]
// and nothing else.
func onlyKeyItem(s map[string]any) bool {
	cond := asMap(s["Condition"])
	if len(cond) != 1 {
		return false
	}
	eq := asMap(cond["ForAllValues:StringEquals"])
	return len(eq) == 1 && slices.Equal(strs(eq["dynamodb:LeadingKeys"]), []string{"meta#keys"})
}

func TestReservedConcurrencyIsAnOptionalParameter(t *testing.T) {
	p := parse(t, zenith.Template, map[string]any{"ReservedConcurrency": 25})
	for _, f := range functions {
		res, err := p.cf.GetServerlessFunctionWithName(f.logicalID)
		if err != nil {
			t.Fatal(err)
		}
		if res.ReservedConcurrentExecutions == nil || *res.ReservedConcurrentExecutions != 25 {
			t.Errorf("%s: reserved concurrency not taken from the parameter", f.logicalID)
		}
	}
}

func TestHTTPAPICorsAndAccessLog(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	for id, api := range p.cf.GetAllServerlessHttpApiResources() {
		if api.CorsConfiguration == nil || api.CorsConfiguration.CorsConfigurationObject == nil {
			t.Fatalf("%s has no CorsConfiguration object", id)
		}
		c := api.CorsConfiguration.CorsConfigurationObject
		if !slices.Equal(c.AllowOrigins, []string{"${AllowedOrigins}"}) {
			t.Errorf("AllowOrigins %v, want the AllowedOrigins parameter", c.AllowOrigins)
		}
		if c.AllowCredentials == nil || !*c.AllowCredentials {
			t.Error("AllowCredentials must be true (the session cookie)")
		}
		for _, h := range []string{"x-request-id", "retry-after", "x-ratelimit-remaining"} {
			if !slices.Contains(c.ExposeHeaders, h) {
				t.Errorf("ExposeHeaders lacks %s", h)
			}
		}
		if api.DefaultRouteSettings == nil || api.DefaultRouteSettings.ThrottlingRateLimit == nil || api.DefaultRouteSettings.ThrottlingBurstLimit == nil {
			t.Error("no stage throttling")
		}
		als := asMap(asMap(asMap(asMap(p.raw["Resources"])[id])["Properties"])["AccessLogSettings"])
		if asMap(als["DestinationArn"])["Fn::GetAtt"] == nil || als["Format"] == nil {
			t.Errorf("AccessLogSettings %v, want a log group and a format", als)
		}
	}
}

func TestAlarmsNotifyTheTopic(t *testing.T) {
	p := parse(t, zenith.Template, nil)
	type key struct{ namespace, metric, dim, value string }
	have := map[key]bool{}
	for id, a := range p.cf.GetAllCloudWatchAlarmResources() {
		if !slices.Contains(a.AlarmActions, "${AlarmTopic}") {
			t.Errorf("%s does not notify AlarmTopic", id)
		}
		for _, d := range a.Dimensions {
			have[key{deref(a.Namespace), deref(a.MetricName), d.Name, d.Value}] = true
		}
		if deref(a.MetricName) == "Duration" || deref(a.MetricName) == "Latency" {
			if deref(a.ExtendedStatistic) != "p99" {
				t.Errorf("%s: %s alarm on %q, want p99", id, deref(a.MetricName), deref(a.ExtendedStatistic))
			}
		}
	}
	for _, f := range functions {
		for _, m := range []string{"Errors", "Throttles", "Duration"} {
			if !have[key{"AWS/Lambda", m, "FunctionName", "${" + f.logicalID + "}"}] {
				t.Errorf("no AWS/Lambda %s alarm on %s", m, f.logicalID)
			}
		}
	}
	for _, m := range []string{"5xx", "Latency"} {
		if !have[key{"AWS/ApiGateway", m, "ApiId", "${ZenithApi}"}] {
			t.Errorf("no AWS/ApiGateway %s alarm on the API (dimension ApiId)", m)
		}
	}
	subs := p.cf.GetAllSNSSubscriptionResources()
	if len(subs) != 1 {
		t.Fatalf("%d SNS subscriptions, want the optional e-mail one", len(subs))
	}
	for id, s := range subs {
		if s.AWSCloudFormationCondition != "HasAlarmEmail" || s.Protocol != "email" || s.TopicArn != "${AlarmTopic}" {
			t.Errorf("%s: want an e-mail subscription to AlarmTopic under condition HasAlarmEmail", id)
		}
	}
	for _, o := range []string{"ApiUrl", "AlarmTopicArn", "UsersTableName", "SessionsTableName"} {
		if _, ok := p.cf.Outputs[o]; !ok {
			t.Errorf("output %s missing", o)
		}
	}
}

// SAM's makefile builder runs `make build-<LogicalId>`; each target must build
// that function's own main package into $(ARTIFACTS_DIR)/bootstrap, static and stripped.
func TestMakefileTargetsBuildTheRightPackage(t *testing.T) {
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(mk)
	// The version of GET /api/health is stamped by -X from git describe.
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "-tags lambda.norpc", "-trimpath", "-ldflags='-s -w $(VERSION_FLAG)'",
		"-X github.com/zenithfresh/zenith-serverless/shared/buildinfo.Version=", "git describe --tags --always --dirty"} {
		if !strings.Contains(text, want) {
			t.Errorf("Makefile build command lacks %s", want)
		}
	}
	targets := map[string][]string{}
	var current string
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "\t") && current != "":
			targets[current] = append(targets[current], strings.TrimSpace(line))
		case strings.Contains(line, ":") && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "#"):
			current = strings.TrimSpace(strings.SplitN(line, ":", 2)[0])
		default:
			current = ""
		}
	}
	for _, f := range functions {
		t.Run(f.logicalID, func(t *testing.T) {
			recipe := strings.Join(targets["build-"+f.logicalID], "\n")
			if recipe == "" {
				t.Fatalf("Makefile has no target build-%s", f.logicalID)
			}
			if !strings.Contains(recipe, `-o "$(ARTIFACTS_DIR)/bootstrap" ./functions/`+f.dir) ||
				strings.Count(recipe, "./functions/") != 1 {
				t.Errorf("build-%s recipe %q does not build ./functions/%s into $(ARTIFACTS_DIR)/bootstrap", f.logicalID, recipe, f.dir)
			}
			main, err := os.ReadFile(filepath.Join("functions", f.dir, "main.go"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(main), "package main") || !strings.Contains(string(main), fmt.Sprintf("config.Load(%q", f.dir)) {
				t.Errorf("functions/%s/main.go is not the %s function's main package", f.dir, f.dir)
			}
		})
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
