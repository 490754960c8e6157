package alerts

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// TTL is how long an alert is kept after its last change (raised, extended,
// resolved); listing and acknowledging check it themselves.
const TTL = 7 * 24 * time.Hour

// MaxList caps the alerts one listing returns (newest first).
const MaxList = 100

// ErrNotFound is returned for an unknown (or expired) alert id.
var ErrNotFound = errors.New("alert not found")

const (
	alertPartition = "alert"
	rulePartition  = "rule"
)

// API is the part of the DynamoDB client the alert store uses.
type API interface {
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

// Alert is one alert as the API shows it.
type Alert struct {
	ID           string         `json:"id"`
	Rule         string         `json:"rule"`
	Level        string         `json:"level"`
	Message      string         `json:"message"`
	State        string         `json:"state"`
	Timestamp    int64          `json:"timestamp"` // epoch ms: start of the window that raised it
	Acknowledged bool           `json:"acknowledged"`
	Metadata     map[string]any `json:"metadata"`
}

// item is an alert as stored: pk "alert", sk "<window epoch s>#<rule>", so
// the partition lists newest first and a rule has one item per window.
type item struct {
	PK             string  `dynamodbav:"pk"`
	SK             string  `dynamodbav:"sk"`
	ID             string  `dynamodbav:"id"`
	Rule           string  `dynamodbav:"rule"`
	Level          string  `dynamodbav:"level"`
	Message        string  `dynamodbav:"message"`
	State          string  `dynamodbav:"state"`
	Window         int64   `dynamodbav:"window"`     // epoch s of the raising window
	LastBreach     int64   `dynamodbav:"lastBreach"` // epoch s of the latest breached window
	Breaches       int64   `dynamodbav:"breaches"`   // breached windows while firing
	Value          float64 `dynamodbav:"value"`      // value that raised it
	LastValue      float64 `dynamodbav:"lastValue"`
	Threshold      float64 `dynamodbav:"threshold"`
	Acknowledged   bool    `dynamodbav:"acknowledged"`
	AcknowledgedAt int64   `dynamodbav:"acknowledgedAt,omitempty"`
	AcknowledgedBy string  `dynamodbav:"acknowledgedBy,omitempty"`
	CreatedAt      int64   `dynamodbav:"createdAt"`
	ResolvedAt     int64   `dynamodbav:"resolvedAt,omitempty"`
	ResolvedWindow int64   `dynamodbav:"resolvedWindow,omitempty"`
	TTL            int64   `dynamodbav:"ttl"`
}

func (it item) alert() Alert {
	meta := map[string]any{
		"value":           it.Value,
		"lastValue":       it.LastValue,
		"threshold":       it.Threshold,
		"windowStart":     it.Window * 1000,
		"windowEnd":       (it.Window + 60) * 1000,
		"lastBreach":      it.LastBreach * 1000,
		"breachedWindows": it.Breaches,
	}
	if it.ResolvedAt != 0 {
		meta["resolvedAt"] = it.ResolvedAt
	}
	if it.Acknowledged {
		meta["acknowledgedAt"] = it.AcknowledgedAt
		if it.AcknowledgedBy != "" {
			meta["acknowledgedBy"] = it.AcknowledgedBy
		}
	}
	return Alert{
		ID: it.ID, Rule: it.Rule, Level: it.Level, Message: it.Message, State: it.State,
		Timestamp: it.Window * 1000, Acknowledged: it.Acknowledged, Metadata: meta,
	}
}

// Store keeps alerts and each rule's state (pk "rule", sk = rule name, with
// the sort key of its firing alert and the last window that resolved one).
type Store struct {
	db    API
	table string
	clock clock.Clock
}

// NewStore returns the alert store on ALERTS_TABLE.
func NewStore(db API, table string, c clock.Clock) *Store {
	return &Store{db: db, table: table, clock: c}
}

// Action says what one evaluation did for a rule.
type Action string

// Actions of an evaluation.
const (
	ActionNone     Action = "none"     // clean, nothing firing
	ActionRaised   Action = "raised"   // this evaluation created the alert
	ActionExtended Action = "extended" // the firing alert saw another breached window
	ActionResolved Action = "resolved" // this evaluation resolved the firing alert
	ActionDisabled Action = "disabled" // an input is null
	ActionSkipped  Action = "skipped"  // another evaluation already did it, or the window is stale
)

// Result is the outcome of one rule in one evaluation.
type Result struct {
	Rule    string `json:"rule"`
	Action  Action `json:"action"`
	AlertID string `json:"alertId,omitempty"`
}

type ruleState struct {
	firing         string // sk of the firing alert, "" when none
	resolvedWindow int64
}

// Evaluate applies the rules to in and raises, extends or resolves alerts.
// Any number of concurrent evaluations of the same window leave the same
// single alert per rule: every write is conditional.
func (s *Store) Evaluate(ctx context.Context, in Inputs) ([]Result, error) {
	states, err := s.States(ctx)
	if err != nil {
		return nil, err
	}
	return s.EvaluateFrom(ctx, in, states)
}

// RuleStates are the rules' states as one consistent read saw them (States).
type RuleStates struct{ m map[string]ruleState }

// States reads every rule's state (one strongly consistent Query), so a
// caller can issue it together with the reads of the inputs and then call
// EvaluateFrom.
func (s *Store) States(ctx context.Context) (RuleStates, error) {
	m, err := s.states(ctx)
	return RuleStates{m}, err
}

// EvaluateFrom is Evaluate with the rule states already read. The states may
// be a little stale: every write is conditional on the stored state, so a
// stale read never raises twice or resolves wrongly.
func (s *Store) EvaluateFrom(ctx context.Context, in Inputs, rs RuleStates) ([]Result, error) {
	window := in.Window.Truncate(time.Minute)
	states := rs.m
	var err error
	var results []Result
	var errs []error
	for _, c := range Evaluate(in) {
		res := Result{Rule: c.Rule, Action: ActionNone}
		st := states[c.Rule]
		switch {
		case !c.Enabled:
			res.Action = ActionDisabled
		case c.Breached:
			res.Action, res.AlertID, err = s.raise(ctx, c, window, st)
		case st.firing != "":
			res.Action, res.AlertID, err = s.resolve(ctx, c.Rule, st.firing, window)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", c.Rule, err))
		}
		results = append(results, res)
	}
	return results, errors.Join(errs...)
}

func (s *Store) states(ctx context.Context) (map[string]ruleState, error) {
	keyCond := expression.Key("pk").Equal(expression.Value(rulePartition))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).Build()
	if err != nil {
		return nil, fmt.Errorf("build rule state query: %w", err)
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("query rule states: %w", err)
	}
	states := map[string]ruleState{}
	for _, it := range out.Items {
		states[store.String(it["sk"])] = ruleState{firing: store.String(it["firing"]), resolvedWindow: store.Int(it["resolvedWindow"])}
	}
	return states, nil
}

// raise creates the alert of (rule, window) and marks the rule firing, in one
// transaction: the alert put is conditional on its absence (one alert per
// rule per window), the state update on no alert firing and no later window
// having resolved one.
func (s *Store) raise(ctx context.Context, c Check, window time.Time, st ruleState) (Action, string, error) {
	if st.firing != "" {
		return s.extend(ctx, c, window, st.firing)
	}
	now := s.clock.Now()
	w := window.Unix()
	it := item{
		PK: alertPartition, SK: alertSK(w, c.Rule), ID: alertID(c.Rule, w),
		Rule: c.Rule, Level: c.Level, Message: c.Message, State: StateFiring,
		Window: w, LastBreach: w, Breaches: 1, Value: c.Value, LastValue: c.Value, Threshold: c.Threshold,
		CreatedAt: now.UnixMilli(), TTL: window.Add(TTL).Unix(),
	}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return "", "", fmt.Errorf("marshal alert: %w", err)
	}
	putCond, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return "", "", fmt.Errorf("build alert condition: %w", err)
	}
	stateCond := expression.AttributeNotExists(expression.Name("firing")).And(
		expression.AttributeNotExists(expression.Name("resolvedWindow")).Or(expression.Name("resolvedWindow").LessThan(expression.Value(w))))
	stateExpr, err := expression.NewBuilder().WithCondition(stateCond).
		WithUpdate(expression.Set(expression.Name("firing"), expression.Value(it.SK))).Build()
	if err != nil {
		return "", "", fmt.Errorf("build rule state update: %w", err)
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: aws.String(s.table), Item: av,
			ConditionExpression: putCond.Condition(), ExpressionAttributeNames: putCond.Names(),
		}},
		{Update: &types.Update{
			TableName:                           aws.String(s.table),
			Key:                                 key(rulePartition, c.Rule),
			ConditionExpression:                 stateExpr.Condition(),
			UpdateExpression:                    stateExpr.Update(),
			ExpressionAttributeNames:            stateExpr.Names(),
			ExpressionAttributeValues:           stateExpr.Values(),
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		}},
	}})
	if err == nil {
		return ActionRaised, it.ID, nil
	}
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) || len(tce.CancellationReasons) != 2 {
		return "", "", fmt.Errorf("raise alert: %w", err)
	}
	alertExists := reasonFailed(tce.CancellationReasons[0])
	stateFailed := reasonFailed(tce.CancellationReasons[1])
	if !alertExists && !stateFailed {
		// Cancelled for another reason (a conflicting transaction): the
		// next evaluation, a minute later, retries.
		return "", "", fmt.Errorf("raise alert: %w", err)
	}
	if alertExists {
		return ActionSkipped, it.ID, nil // another evaluation of this window raised it
	}
	if firing := store.String(tce.CancellationReasons[1].Item["firing"]); firing != "" {
		return s.extend(ctx, c, window, firing)
	}
	return ActionSkipped, "", nil // a later window already resolved this rule: stale evaluation
}

// extend records another breached window on the firing alert; once per window.
func (s *Store) extend(ctx context.Context, c Check, window time.Time, firingSK string) (Action, string, error) {
	now := s.clock.Now()
	w := window.Unix()
	cond := expression.Name("state").Equal(expression.Value(StateFiring)).
		And(expression.Name("lastBreach").LessThan(expression.Value(w))).
		And(expression.Name("ttl").GreaterThan(expression.Value(now.Unix())))
	upd := expression.Set(expression.Name("lastBreach"), expression.Value(w)).
		Set(expression.Name("lastValue"), expression.Value(c.Value)).
		Set(expression.Name("ttl"), expression.Value(window.Add(TTL).Unix())).
		Add(expression.Name("breaches"), expression.Value(1))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return "", "", fmt.Errorf("build alert extension: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 key(alertPartition, firingSK),
		ConditionExpression:                 expr.Condition(),
		UpdateExpression:                    expr.Update(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	id := idFromSK(firingSK)
	if err == nil {
		return ActionExtended, id, nil
	}
	if !store.IsConditionFailed(err) {
		return "", "", fmt.Errorf("extend alert: %w", err)
	}
	old := store.ConditionItem(err)
	if len(old) > 0 && store.Int(old["ttl"]) > now.Unix() && store.String(old["state"]) == StateFiring {
		return ActionSkipped, id, nil // this window was already counted
	}
	// The firing alert expired or vanished: release the rule and raise anew.
	if err := s.clearFiring(ctx, c.Rule, firingSK, 0); err != nil {
		return "", "", err
	}
	return s.raise(ctx, c, window, ruleState{})
}

// resolve marks the firing alert resolved by the clean window, unless a later
// window breached meanwhile, then releases the rule.
func (s *Store) resolve(ctx context.Context, rule, firingSK string, window time.Time) (Action, string, error) {
	now := s.clock.Now()
	w := window.Unix()
	cond := expression.Name("state").Equal(expression.Value(StateFiring)).
		And(expression.Name("lastBreach").LessThan(expression.Value(w)))
	upd := expression.Set(expression.Name("state"), expression.Value(StateResolved)).
		Set(expression.Name("resolvedAt"), expression.Value(now.UnixMilli())).
		Set(expression.Name("resolvedWindow"), expression.Value(w)).
		Set(expression.Name("ttl"), expression.Value(window.Add(TTL).Unix()))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return "", "", fmt.Errorf("build alert resolution: %w", err)
	}
	action := ActionResolved
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 key(alertPartition, firingSK),
		ConditionExpression:                 expr.Condition(),
		UpdateExpression:                    expr.Update(),
		ExpressionAttributeNames:            expr.Names(),
		ExpressionAttributeValues:           expr.Values(),
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		if !store.IsConditionFailed(err) {
			return "", "", fmt.Errorf("resolve alert: %w", err)
		}
		old := store.ConditionItem(err)
		if len(old) > 0 && store.String(old["state"]) == StateFiring {
			return ActionSkipped, idFromSK(firingSK), nil // a later window breached: stale evaluation
		}
		action = ActionSkipped // resolved by a concurrent evaluation (or gone): release the rule anyway
	}
	if err := s.clearFiring(ctx, rule, firingSK, w); err != nil {
		return "", "", err
	}
	return action, idFromSK(firingSK), nil
}

func (s *Store) clearFiring(ctx context.Context, rule, firingSK string, resolvedWindow int64) error {
	upd := expression.Remove(expression.Name("firing"))
	if resolvedWindow > 0 {
		upd = upd.Set(expression.Name("resolvedWindow"), expression.Value(resolvedWindow))
	}
	expr, err := expression.NewBuilder().
		WithCondition(expression.Name("firing").Equal(expression.Value(firingSK))).
		WithUpdate(upd).Build()
	if err != nil {
		return fmt.Errorf("build rule release: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(rulePartition, rule),
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if err != nil && !store.IsConditionFailed(err) {
		return fmt.Errorf("release rule: %w", err)
	}
	return nil
}

// List returns the firing or unacknowledged alerts of the last 7 days, newest
// first, at most MaxList.
func (s *Store) List(ctx context.Context) ([]Alert, error) {
	now := s.clock.Now()
	keyCond := expression.Key("pk").Equal(expression.Value(alertPartition))
	filter := expression.Name("ttl").GreaterThan(expression.Value(now.Unix())).And(
		expression.Name("state").Equal(expression.Value(StateFiring)).Or(expression.Name("acknowledged").Equal(expression.Value(false))))
	expr, err := expression.NewBuilder().WithKeyCondition(keyCond).WithFilter(filter).Build()
	if err != nil {
		return nil, fmt.Errorf("build alert query: %w", err)
	}
	p := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    expr.KeyCondition(),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ScanIndexForward:          aws.Bool(false),
	})
	out := []Alert{}
	for p.HasMorePages() && len(out) < MaxList {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("query alerts: %w", err)
		}
		for _, av := range page.Items {
			var it item
			if err := attributevalue.UnmarshalMap(av, &it); err != nil {
				return nil, fmt.Errorf("unmarshal alert: %w", err)
			}
			if it.TTL <= now.Unix() || (it.State != StateFiring && it.Acknowledged) {
				continue
			}
			out = append(out, it.alert())
			if len(out) == MaxList {
				break
			}
		}
	}
	return out, nil
}

// Acknowledge marks the alert acknowledged by username; a second call changes
// nothing and returns the same alert. ErrNotFound for an unknown or expired id.
func (s *Store) Acknowledge(ctx context.Context, id, username string) (Alert, error) {
	sk, ok := skFromID(id)
	if !ok {
		return Alert{}, ErrNotFound
	}
	now := s.clock.Now()
	cond := expression.AttributeExists(expression.Name("pk")).
		And(expression.Name("ttl").GreaterThan(expression.Value(now.Unix())))
	upd := expression.Set(expression.Name("acknowledged"), expression.Value(true)).
		Set(expression.Name("acknowledgedAt"), expression.IfNotExists(expression.Name("acknowledgedAt"), expression.Value(now.UnixMilli()))).
		Set(expression.Name("acknowledgedBy"), expression.IfNotExists(expression.Name("acknowledgedBy"), expression.Value(username)))
	expr, err := expression.NewBuilder().WithCondition(cond).WithUpdate(upd).Build()
	if err != nil {
		return Alert{}, fmt.Errorf("build acknowledgement: %w", err)
	}
	out, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key(alertPartition, sk),
		ConditionExpression:       expr.Condition(),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ReturnValues:              types.ReturnValueAllNew,
	})
	if err != nil {
		if store.IsConditionFailed(err) {
			return Alert{}, ErrNotFound
		}
		return Alert{}, fmt.Errorf("acknowledge alert: %w", err)
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Attributes, &it); err != nil {
		return Alert{}, fmt.Errorf("unmarshal alert: %w", err)
	}
	return it.alert(), nil
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk},
		"sk": &types.AttributeValueMemberS{Value: sk},
	}
}

func alertSK(window int64, rule string) string { return fmt.Sprintf("%012d#%s", window, rule) }

func alertID(rule string, window int64) string { return rule + "-" + strconv.FormatInt(window, 10) }

func idFromSK(sk string) string {
	w, rule, ok := strings.Cut(sk, "#")
	if !ok {
		return ""
	}
	n, err := strconv.ParseInt(w, 10, 64)
	if err != nil {
		return ""
	}
	return alertID(rule, n)
}

// skFromID maps a public alert id ("<rule>-<window epoch s>": 1 to 32 of
// [a-z_], a dash, 1 to 12 digits) to its sort key.
func skFromID(id string) (string, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 1 || i > 32 || len(id)-i-1 < 1 || len(id)-i-1 > 12 {
		return "", false
	}
	rule, window := id[:i], id[i+1:]
	for j := 0; j < len(rule); j++ {
		if c := rule[j]; !(c >= 'a' && c <= 'z' || c == '_') {
			return "", false
		}
	}
	for j := 0; j < len(window); j++ {
		if c := window[j]; c < '0' || c > '9' {
			return "", false
		}
	}
	if _, ok := RuleByName(rule); !ok {
		return "", false
	}
	w, err := strconv.ParseInt(window, 10, 64)
	if err != nil || w%60 != 0 {
		return "", false
	}
	return alertSK(w, rule), true
}

func reasonFailed(r types.CancellationReason) bool {
	return aws.ToString(r.Code) == "ConditionalCheckFailed"
}
