// Package tables reads the DynamoDB tables from template.yaml and creates them
// (with TTL) on DynamoDB Local, idempotently, so tables are defined only once.
package tables

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"gopkg.in/yaml.v3"

	"github.com/zenithfresh/zenith-serverless/shared/config"
)

// Env maps each table's logical ID in the template to the environment
// variable that carries its name to the functions.
var Env = map[string]string{
	"UsersTable":         "USERS_TABLE",
	"SessionsTable":      "SESSIONS_TABLE",
	"LoginAttemptsTable": "LOGIN_ATTEMPTS_TABLE",
	"RateLimitsTable":    "RATE_LIMITS_TABLE",
	"MetricsTable":       "METRICS_TABLE",
	"AlertsTable":        "ALERTS_TABLE",
	"LoadOverridesTable": "LOAD_OVERRIDES_TABLE",
}

// Name returns the configured name of a table given its logical ID.
func Name(t config.Tables, logicalID string) (string, bool) {
	switch logicalID {
	case "UsersTable":
		return t.Users, true
	case "SessionsTable":
		return t.Sessions, true
	case "LoginAttemptsTable":
		return t.LoginAttempts, true
	case "RateLimitsTable":
		return t.RateLimits, true
	case "MetricsTable":
		return t.Metrics, true
	case "AlertsTable":
		return t.Alerts, true
	case "LoadOverridesTable":
		return t.LoadOverrides, true
	}
	return "", false
}

// Table is one AWS::DynamoDB::Table of the template, as far as a local copy needs.
type Table struct {
	LogicalID              string
	AttributeDefinitions   []attr   `yaml:"AttributeDefinitions"`
	KeySchema              []key    `yaml:"KeySchema"`
	GlobalSecondaryIndexes []gsi    `yaml:"GlobalSecondaryIndexes"`
	TimeToLive             ttlSpec  `yaml:"TimeToLiveSpecification"`
	BillingMode            string   `yaml:"BillingMode"`
	PointInTimeRecovery    pitrSpec `yaml:"PointInTimeRecoverySpecification"`
	DeletionProtection     bool     `yaml:"DeletionProtectionEnabled"`
	DeletionPolicy         string   `yaml:"-"`
	UpdateReplacePolicy    string   `yaml:"-"`
}

type attr struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"AttributeType"`
}

type key struct {
	Name string `yaml:"AttributeName"`
	Type string `yaml:"KeyType"`
}

type gsi struct {
	IndexName  string `yaml:"IndexName"`
	KeySchema  []key  `yaml:"KeySchema"`
	Projection struct {
		ProjectionType   string   `yaml:"ProjectionType"`
		NonKeyAttributes []string `yaml:"NonKeyAttributes"`
	} `yaml:"Projection"`
}

type ttlSpec struct {
	AttributeName string `yaml:"AttributeName"`
	Enabled       bool   `yaml:"Enabled"`
}

type pitrSpec struct {
	Enabled bool `yaml:"PointInTimeRecoveryEnabled"`
}

// Parse returns the tables of a SAM/CloudFormation template, sorted by logical ID.
func Parse(template []byte) ([]Table, error) {
	var doc struct {
		Resources map[string]struct {
			Type                string    `yaml:"Type"`
			DeletionPolicy      string    `yaml:"DeletionPolicy"`
			UpdateReplacePolicy string    `yaml:"UpdateReplacePolicy"`
			Properties          yaml.Node `yaml:"Properties"`
		} `yaml:"Resources"`
	}
	if err := yaml.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("parse template: %w", err)
	}
	var out []Table
	for id, r := range doc.Resources {
		if r.Type != "AWS::DynamoDB::Table" {
			continue
		}
		var t Table
		if err := r.Properties.Decode(&t); err != nil {
			return nil, fmt.Errorf("parse table %s: %w", id, err)
		}
		t.LogicalID = id
		t.DeletionPolicy = r.DeletionPolicy
		t.UpdateReplacePolicy = r.UpdateReplacePolicy
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("template has no AWS::DynamoDB::Table")
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LogicalID < out[j].LogicalID })
	return out, nil
}

// CreateInput returns the CreateTable input for t under the given name.
func (t Table) CreateInput(name string) *dynamodb.CreateTableInput {
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
	}
	for _, a := range t.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{
			AttributeName: aws.String(a.Name), AttributeType: types.ScalarAttributeType(a.Type),
		})
	}
	in.KeySchema = keySchema(t.KeySchema)
	for _, g := range t.GlobalSecondaryIndexes {
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName),
			KeySchema: keySchema(g.KeySchema),
			Projection: &types.Projection{
				ProjectionType:   types.ProjectionType(g.Projection.ProjectionType),
				NonKeyAttributes: g.Projection.NonKeyAttributes,
			},
		})
	}
	return in
}

func keySchema(ks []key) []types.KeySchemaElement {
	out := make([]types.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, types.KeySchemaElement{AttributeName: aws.String(k.Name), KeyType: types.KeyType(k.Type)})
	}
	return out
}

// API is the part of the DynamoDB client Bootstrap uses.
type API interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
}

// Result says what Bootstrap did to one table.
type Result struct {
	LogicalID, Name string
	Created         bool // false: it existed already
	TTLEnabled      bool // false: TTL was on already
}

// Bootstrap creates every table of the template under the names in names and
// enables TTL on each; running it again changes nothing.
func Bootstrap(ctx context.Context, db API, template []byte, names config.Tables) ([]Result, error) {
	ts, err := Parse(template)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, t := range ts {
		name, ok := Name(names, t.LogicalID)
		if !ok {
			return nil, fmt.Errorf("table %s of the template has no configured name", t.LogicalID)
		}
		res := Result{LogicalID: t.LogicalID, Name: name}
		_, err := db.CreateTable(ctx, t.CreateInput(name))
		var inUse *types.ResourceInUseException
		switch {
		case err == nil:
			res.Created = true
		case errors.As(err, &inUse):
		default:
			return out, fmt.Errorf("create table %s: %w", name, err)
		}
		if t.TimeToLive.Enabled && t.TimeToLive.AttributeName != "" {
			enabled, err := enableTTL(ctx, db, name, t.TimeToLive.AttributeName)
			if err != nil {
				return out, err
			}
			res.TTLEnabled = enabled
		}
		out = append(out, res)
	}
	return out, nil
}

func enableTTL(ctx context.Context, db API, name, attribute string) (bool, error) {
	d, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		return false, fmt.Errorf("describe ttl of %s: %w", name, err)
	}
	if d.TimeToLiveDescription != nil && d.TimeToLiveDescription.TimeToLiveStatus == types.TimeToLiveStatusEnabled {
		return false, nil
	}
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attribute), Enabled: aws.Bool(true)},
	})
	if err != nil && !strings.Contains(err.Error(), "already enabled") {
		return false, fmt.Errorf("enable ttl on %s: %w", name, err)
	}
	return err == nil, nil
}
