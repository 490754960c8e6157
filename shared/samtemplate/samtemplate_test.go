package samtemplate_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
)

func embedded(t *testing.T) *samtemplate.Template {
	t.Helper()
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestEmbeddedTables(t *testing.T) {
	ts := embedded(t).Tables
	if len(ts) != len(config.TableSpecs) {
		t.Fatalf("template has %d tables, config.TableSpecs knows %d", len(ts), len(config.TableSpecs))
	}
	for _, tb := range ts {
		t.Run(tb.LogicalID, func(t *testing.T) {
			if _, ok := config.LookupTableSpec(tb.LogicalID); !ok {
				t.Errorf("no env var for %s", tb.LogicalID)
			}
			if !tb.TimeToLive.Enabled || tb.TimeToLive.AttributeName != "ttl" {
				t.Errorf("TTL not enabled on attribute ttl: %+v", tb.TimeToLive)
			}
			if tb.BillingMode != "PAY_PER_REQUEST" {
				t.Errorf("billing mode %q, want on-demand", tb.BillingMode)
			}
			if !tb.PointInTimeRecovery.Enabled {
				t.Error("point-in-time recovery off")
			}
		})
	}
	byID := map[string]samtemplate.Table{}
	for _, tb := range ts {
		byID[tb.LogicalID] = tb
	}
	sessions := byID["SessionsTable"]
	want := []samtemplate.GSI{{IndexName: "userId-index",
		KeySchema: []samtemplate.KeyElement{{Name: "userId", Type: "HASH"}},
		Projection: samtemplate.Projection{ProjectionType: "INCLUDE",
			NonKeyAttributes: []string{"handle", "sessionVersion", "createdAt", "lastActivity", "idleExpiresAt", "expiresAt", "countedExpiry"}}}}
	if !reflect.DeepEqual(sessions.GlobalSecondaryIndexes, want) {
		t.Errorf("sessions GSIs %+v, want %+v", sessions.GlobalSecondaryIndexes, want)
	}
	if !sessions.DeletionProtection || sessions.DeletionPolicy != "Retain" || sessions.UpdateReplacePolicy != "Retain" {
		t.Errorf("sessions protection %v, policies %q/%q", sessions.DeletionProtection, sessions.DeletionPolicy, sessions.UpdateReplacePolicy)
	}
	metrics := byID["MetricsTable"]
	if !reflect.DeepEqual(metrics.KeySchema, []samtemplate.KeyElement{{Name: "pk", Type: "HASH"}, {Name: "sk", Type: "RANGE"}}) ||
		len(metrics.AttributeDefinitions) != 2 || metrics.DeletionPolicy != "" || metrics.DeletionProtection {
		t.Errorf("metrics table %+v", metrics)
	}
}

func TestEmbeddedFunctions(t *testing.T) {
	tmpl := embedded(t)
	if tmpl.CORS == nil || len(tmpl.CORS.ExposeHeaders) == 0 || tmpl.CORS.MaxAge == 0 {
		t.Errorf("CORS settings not read from the template: %+v", tmpl.CORS)
	}
	ids := []string{}
	for _, fn := range tmpl.Functions {
		ids = append(ids, fn.LogicalID)
	}
	if strings.Join(ids, " ") != "AuthFunction SessionFunction SystemMonitorFunction TrafficManagerFunction" {
		t.Errorf("functions %v, want the four, sorted", ids)
	}
	if fn, _ := tmpl.Function("AuthFunction"); fn.MemoryMB < 1024 || fn.Timeout <= 0 {
		t.Errorf("auth memory %d MB timeout %d s, want the template's", fn.MemoryMB, fn.Timeout)
	}
	if fn, _ := tmpl.Function("SystemMonitorFunction"); len(fn.Schedules) != 1 || fn.Schedules[0] != "rate(1 minute)" || fn.Timeout != 20 {
		t.Errorf("system-monitor schedules %v timeout %d, want [rate(1 minute)] and 20", fn.Schedules, fn.Timeout)
	}
	auth, _ := tmpl.Function("AuthFunction")
	keys := []string{}
	for _, r := range auth.Routes {
		keys = append(keys, r.Key())
	}
	slices.Sort(keys)
	if strings.Join(keys, "|") != "$default|ANY /api/auth|ANY /api/auth/{proxy+}" {
		t.Errorf("auth routes %v", keys)
	}
	var byUser, secret *samtemplate.Statement
	for i, s := range auth.Policy {
		switch s.Sid {
		case "SessionsByUser":
			byUser = &auth.Policy[i]
		case "MasterPasswordSecretsManager":
			secret = &auth.Policy[i]
		}
	}
	if byUser == nil || byUser.Condition != "" || byUser.Effect != "Allow" ||
		!slices.Equal(byUser.Actions, []string{"dynamodb:Query"}) || !slices.Equal(byUser.Resources, []string{"SessionsTable/index/userId-index"}) {
		t.Errorf("SessionsByUser statement %+v", byUser)
	}
	if secret == nil || secret.Condition != "HasMasterPasswordSecret" || !slices.Equal(secret.Actions, []string{"secretsmanager:GetSecretValue"}) {
		t.Errorf("conditional secret statement %+v", secret)
	}
	// The other functions may create the deployment key, and only it.
	for _, id := range []string{"SessionFunction", "TrafficManagerFunction", "SystemMonitorFunction"} {
		fn, _ := tmpl.Function(id)
		var key *samtemplate.Statement
		for i, s := range fn.Policy {
			if s.Sid == "DeploymentKeyCreate" {
				key = &fn.Policy[i]
			}
		}
		if key == nil || !slices.Equal(key.Actions, []string{"dynamodb:PutItem"}) || !slices.Equal(key.Resources, []string{"UsersTable"}) ||
			!slices.Equal(key.LeadingKeys, []string{"meta#keys"}) || len(key.OtherConditions) != 0 {
			t.Errorf("%s DeploymentKeyCreate statement %+v", id, key)
		}
	}
	// Every unconditional statement's resources are tables of the template
	// (or "*", which IAM needs for cloudwatch:GetMetricData).
	for _, fn := range tmpl.Functions {
		for _, s := range fn.Policy {
			if s.Condition != "" {
				continue
			}
			for _, r := range s.Resources {
				table, _, _ := strings.Cut(r, "/index/")
				if _, ok := config.LookupTableSpec(table); !ok && r != "*" {
					t.Errorf("%s %s: resource %q is neither a table nor *", fn.LogicalID, s.Sid, r)
				}
			}
		}
	}
}

const small = `
Parameters:
  Mem:
    Type: Number
    Default: 256
  Rate:
    Type: String
    Default: rate(5 minutes)
  Age:
    Type: Number
    Default: 300
Conditions:
  Always: !Equals [a, a]
Globals:
  Function:
    Timeout: 7
    MemorySize: 512
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
    Properties:
      CorsConfiguration:
        AllowMethods: [GET]
        AllowHeaders: [x-a]
        MaxAge: !Ref Age
  BFunction:
    Type: AWS::Serverless::Function
    Properties:
      MemorySize: !Ref Mem
      Events:
        Catch:
          Type: HttpApi
        Slash:
          Type: HttpApi
          Properties:
            Path: /$default
        Items:
          Type: HttpApi
          Properties:
            Path: /items/{id}
            Method: get
        Every:
          Type: ScheduleV2
          Properties:
            ScheduleExpression: !Ref Rate
        Old:
          Type: Schedule
          Properties:
            Schedule: cron(0 12 * * ? *)
        Queue:
          Type: SQS
      Policies:
        - AWSLambdaBasicExecutionRole
        - DynamoDBReadPolicy:
            TableName: !Ref T
        - Statement:
            Sid: One
            Effect: Allow
            Action: dynamodb:GetItem
            Resource: [!GetAtt [T, Arn], !Sub '${T.Arn}/index/i', !Sub 'arn:aws:s3:::${Bucket}/x', '*']
        - Statement:
            - !If [Always, {Sid: Cond, Effect: Allow, Action: [a:B], Resource: '*'}, !Ref AWS::NoValue]
            - !If [Always, !Ref AWS::NoValue, !Ref AWS::NoValue]
  AFunction:
    Type: AWS::Serverless::Function
    Properties:
      Timeout: 2
  T:
    Type: AWS::DynamoDB::Table
    DeletionPolicy: Retain
    Properties:
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
`

func TestParseSmallTemplate(t *testing.T) {
	tmpl, err := samtemplate.Parse([]byte(small))
	if err != nil {
		t.Fatal(err)
	}
	if len(tmpl.Functions) != 2 || tmpl.Functions[0].LogicalID != "AFunction" {
		t.Fatalf("functions %+v, want A then B", tmpl.Functions)
	}
	a, b := tmpl.Functions[0], tmpl.Functions[1]
	checks := []struct {
		name      string
		got, want any
	}{
		{"globals apply", a.MemoryMB, 512},
		{"function overrides globals", a.Timeout, 2},
		{"!Ref gives the parameter default", b.MemoryMB, 256},
		{"global timeout", b.Timeout, 7},
		{"routes", routeKeys(b.Routes), "$default|$default|GET /items/{id}"},
		{"schedules", strings.Join(b.Schedules, "|"), "rate(5 minutes)|cron(0 12 * * ? *)"},
		{"CORS methods", strings.Join(tmpl.CORS.AllowMethods, ","), "GET"},
		{"CORS max age from a parameter", tmpl.CORS.MaxAge, 300},
		{"CORS expose headers", len(tmpl.CORS.ExposeHeaders), 0},
		{"inline statements only", len(b.Policy), 2},
		{"resources", strings.Join(b.Policy[0].Resources, " "), "T T/index/i arn:aws:s3:::${Bucket}/x *"},
		{"single action", strings.Join(b.Policy[0].Actions, ","), "dynamodb:GetItem"},
		{"!If statement", b.Policy[1].Condition + " " + b.Policy[1].Sid, "Always Cond"},
		{"table", tmpl.Tables[0].LogicalID + " " + tmpl.Tables[0].DeletionPolicy + " " + tmpl.Tables[0].KeySchema[0].Name, "T Retain pk"},
		{"no TTL", tmpl.Tables[0].TimeToLive.Enabled, false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if _, ok := tmpl.Function("CFunction"); ok {
		t.Error("found a function the template does not have")
	}
}

func routeKeys(rs []samtemplate.Route) string {
	keys := []string{}
	for _, r := range rs {
		keys = append(keys, r.Key())
	}
	slices.Sort(keys)
	return strings.Join(keys, "|")
}

func TestParseErrors(t *testing.T) {
	cases := map[string]struct{ src, want string }{
		"not yaml":         {"Resources: [", "parse template"},
		"empty":            {"", "empty document"},
		"bad memory":       {"Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      MemorySize: big\n", `F: MemorySize "big"`},
		"bad global":       {"Globals:\n  Function:\n    Timeout: soon\nResources:\n  F:\n    Type: AWS::Serverless::Function\n", `F: Timeout "soon"`},
		"relative path":    {"Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties:\n      Events:\n        E:\n          Type: HttpApi\n          Properties:\n            Path: api\n", `F event E: path "api" must start with /`},
		"bad table schema": {"Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      KeySchema: pk\n", "parse table T"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := samtemplate.Parse([]byte(c.src))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	tmpl, err := samtemplate.Parse([]byte("Resources:\n  X:\n    Type: AWS::SNS::Topic\n"))
	if err != nil || len(tmpl.Functions)+len(tmpl.Tables) != 0 || tmpl.CORS != nil {
		t.Errorf("template without functions or tables: %+v, %v", tmpl, err)
	}
}

func TestCORSInsideIf(t *testing.T) {
	src := "Resources:\n  Api:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n      CorsConfiguration: !If\n        - C\n        - AllowMethods: [GET, POST]\n          MaxAge: 600\n        - !Ref AWS::NoValue\n"
	tmpl, err := samtemplate.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.CORS == nil || strings.Join(tmpl.CORS.AllowMethods, ",") != "GET,POST" || tmpl.CORS.MaxAge != 600 {
		t.Errorf("CORS %+v", tmpl.CORS)
	}
}
