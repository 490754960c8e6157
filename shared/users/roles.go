package users

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// Role names of the seeded defaults.
const (
	RoleMasterAdmin = "master_admin"
	RoleStaffTester = "staff_tester"
)

// Permission names of API.md, the boolean fields of a role.
const (
	PermAIAPIs              = "aiApis"
	PermCompetitiveAnalysis = "competitiveAnalysis"
	PermGeoOptimization     = "geoOptimization"
	PermAdvancedAudits      = "advancedAudits"
	PermSystemMonitoring    = "systemMonitoring"
	PermUserManagement      = "userManagement"
	PermBillingAccess       = "billingAccess"
	PermWhiteLabel          = "whiteLabel"
	PermTrafficControl      = "trafficControl"
)

// RoleCacheTTL bounds how long an instance trusts a role it has read (API.md: at most 60 s).
const RoleCacheTTL = 60 * time.Second

// Role is a role item of the users table (pk "role#<id>"). Its JSON form is
// the contract's user.permissions object.
type Role struct {
	ID                  string `dynamodbav:"role" json:"-"`
	Name                string `dynamodbav:"name" json:"name"`
	Access              string `dynamodbav:"access" json:"access"`
	AIAPIs              bool   `dynamodbav:"aiApis" json:"aiApis"`
	CompetitiveAnalysis bool   `dynamodbav:"competitiveAnalysis" json:"competitiveAnalysis"`
	GeoOptimization     bool   `dynamodbav:"geoOptimization" json:"geoOptimization"`
	AdvancedAudits      bool   `dynamodbav:"advancedAudits" json:"advancedAudits"`
	SystemMonitoring    bool   `dynamodbav:"systemMonitoring" json:"systemMonitoring"`
	UserManagement      bool   `dynamodbav:"userManagement" json:"userManagement"`
	BillingAccess       bool   `dynamodbav:"billingAccess" json:"billingAccess"`
	WhiteLabel          bool   `dynamodbav:"whiteLabel" json:"whiteLabel"`
	TrafficControl      bool   `dynamodbav:"trafficControl" json:"trafficControl"`
	APIAccess           string `dynamodbav:"apiAccess" json:"apiAccess"`
	ExportFormats       string `dynamodbav:"exportFormats" json:"exportFormats"`
}

// Permissions returns the role's boolean permissions by API.md name.
func (r *Role) Permissions() map[string]bool {
	if r == nil {
		return map[string]bool{}
	}
	return map[string]bool{
		PermAIAPIs:              r.AIAPIs,
		PermCompetitiveAnalysis: r.CompetitiveAnalysis,
		PermGeoOptimization:     r.GeoOptimization,
		PermAdvancedAudits:      r.AdvancedAudits,
		PermSystemMonitoring:    r.SystemMonitoring,
		PermUserManagement:      r.UserManagement,
		PermBillingAccess:       r.BillingAccess,
		PermWhiteLabel:          r.WhiteLabel,
		PermTrafficControl:      r.TrafficControl,
	}
}

// DefaultRoles are API.md's default roles, seeded into the store by the auth
// function when absent and editable there afterwards.
func DefaultRoles() []Role {
	return []Role{
		{
			ID: RoleMasterAdmin, Name: "Master Administrator", Access: "all_features",
			AIAPIs: true, CompetitiveAnalysis: true, GeoOptimization: true, AdvancedAudits: true, SystemMonitoring: true,
			UserManagement: true, BillingAccess: true, WhiteLabel: true, TrafficControl: true,
			APIAccess: "unlimited", ExportFormats: "all",
		},
		{
			ID: RoleStaffTester, Name: "Staff Tester", Access: "premium_features",
			AIAPIs: true, CompetitiveAnalysis: true, GeoOptimization: true, AdvancedAudits: true, SystemMonitoring: true,
			UserManagement: false, BillingAccess: false, WhiteLabel: false, TrafficControl: false,
			APIAccess: "limited", ExportFormats: "standard",
		},
	}
}

// RoleKey is the users-table key of a role.
func RoleKey(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: rolePrefix + id}}
}

const (
	rolePrefix = "role#"
	userPrefix = "user#"
	kindRole   = "role"
	kindUser   = "user"
)

// RoleAPI is the part of the DynamoDB client the role reader uses.
type RoleAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Roles reads roles and caches each per instance for at most RoleCacheTTL.
type Roles struct {
	db    RoleAPI
	table string
	clock clock.Clock

	mu      sync.Mutex
	entries map[string]roleEntry
}

type roleEntry struct {
	role  *Role // nil: the role does not exist
	perms map[string]bool
	at    time.Time
}

// NewRoles returns a role reader over table.
func NewRoles(db RoleAPI, table string, clk clock.Clock) *Roles {
	if clk == nil {
		clk = clock.System{}
	}
	return &Roles{db: db, table: table, clock: clk, entries: map[string]roleEntry{}}
}

// Get returns the role and its permission map (shared: callers must not
// modify it), or a nil role and an empty map when no such role exists.
func (r *Roles) Get(ctx context.Context, id string) (*Role, map[string]bool, error) {
	now := r.clock.Now()
	r.mu.Lock()
	e, ok := r.entries[id]
	r.mu.Unlock()
	if ok && now.Sub(e.at) < RoleCacheTTL && !now.Before(e.at) {
		return e.role, e.perms, nil
	}
	role, err := r.Fresh(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	e = roleEntry{role: role, perms: role.Permissions(), at: now}
	r.mu.Lock()
	r.entries[id] = e
	r.mu.Unlock()
	return e.role, e.perms, nil
}

// Fresh reads a role from the store, bypassing the cache (nil when absent).
func (r *Roles) Fresh(ctx context.Context, id string) (*Role, error) {
	if id == "" {
		return nil, nil
	}
	out, err := r.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(r.table),
		Key:            RoleKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get role %s: %w", id, err)
	}
	if out.Item == nil {
		return nil, nil
	}
	var role Role
	if err := attributevalue.UnmarshalMap(out.Item, &role); err != nil {
		return nil, fmt.Errorf("decode role %s: %w", id, err)
	}
	role.ID = id
	return &role, nil
}

// Seed writes each default role that is absent (GetItem first, conditional
// put only when needed), so edits made in the store are never overwritten
// and concurrent starts write each role once.
func (r *Roles) Seed(ctx context.Context) error {
	defaults := DefaultRoles()
	keys := make([]map[string]types.AttributeValue, len(defaults))
	for i, d := range defaults {
		keys[i] = RoleKey(d.ID)
	}
	items, err := store.BatchGet(ctx, r.db, map[string][]map[string]types.AttributeValue{r.table: keys})
	if err != nil {
		return fmt.Errorf("read roles: %w", err)
	}
	present := map[string]bool{}
	for _, it := range items[r.table] {
		if pk, ok := it["pk"].(*types.AttributeValueMemberS); ok {
			present[pk.Value] = true
		}
	}
	absent, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return fmt.Errorf("build role seed: %w", err)
	}
	for _, d := range defaults {
		if present[rolePrefix+d.ID] {
			continue
		}
		item, err := attributevalue.MarshalMap(d)
		if err != nil {
			return fmt.Errorf("encode role %s: %w", d.ID, err)
		}
		item["pk"] = &types.AttributeValueMemberS{Value: rolePrefix + d.ID}
		item["kind"] = &types.AttributeValueMemberS{Value: kindRole}
		_, err = r.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(r.table),
			Item:                     item,
			ConditionExpression:      absent.Condition(),
			ExpressionAttributeNames: absent.Names(),
		})
		if err != nil && !store.IsConditionFailed(err) {
			return fmt.Errorf("seed role %s: %w", d.ID, err)
		}
	}
	return nil
}
