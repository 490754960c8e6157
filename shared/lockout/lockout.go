// Package lockout keeps the failed-login counters of the login-attempts
// table (DESIGN.md): per (username, client IP /64) pair, 5 failures lock the
// pair for 1 s, doubling with each further failure up to 15 min, and the
// counter expires 15 min after the last failure; per username, a soft limit
// of 50 failures per 15 min bounds guessing spread over many addresses. The
// soft limit does not apply to a pair that has logged in successfully
// before, so an attack from elsewhere cannot lock the real user out of the
// place they usually log in from. Keys are SHA-256 hashes: no username or IP
// is stored in the clear.
package lockout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
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

// API is the part of the DynamoDB client this package uses.
type API interface {
	store.BatchGetAPI
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
}

// Policy holds the lockout figures.
type Policy struct {
	Threshold  int           // failures that lock a pair (5)
	BaseLock   time.Duration // first lock (1 s), doubled per further failure
	MaxLock    time.Duration // cap of a lock (15 min)
	Window     time.Duration // a pair's counter expires this long after its last failure (15 min)
	UserLimit  int           // failures per username per UserWindow (50)
	UserWindow time.Duration // 15 min
	TrustTTL   time.Duration // how long a successful login exempts its pair from the soft limit
}

// DefaultPolicy is DESIGN.md's.
var DefaultPolicy = Policy{
	Threshold: 5, BaseLock: time.Second, MaxLock: 15 * time.Minute, Window: 15 * time.Minute,
	UserLimit: 50, UserWindow: 15 * time.Minute, TrustTTL: 30 * 24 * time.Hour,
}

// LockFor returns the lock a pair gets after its n-th consecutive failure (0 below the threshold).
func (p Policy) LockFor(n int) time.Duration {
	if n < p.Threshold {
		return 0
	}
	shift := n - p.Threshold
	if shift > 30 {
		return p.MaxLock
	}
	d := p.BaseLock << shift
	if d > p.MaxLock || d <= 0 {
		return p.MaxLock
	}
	return d
}

// Key identifies one login attempt's counters (hashed).
type Key struct {
	Pair string // pk of the (username, client prefix) counter
	User string // pk of the username counter
}

// NewKey returns the counters' keys for a username (any case) and a client IP.
func NewKey(username, clientIP string) Key {
	u := strings.ToLower(username)
	return Key{
		Pair: "pair#" + digest("zenith-login-pair|"+u+"|"+ClientPrefix(clientIP)),
		User: "user#" + digest("zenith-login-user|"+u),
	}
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// ClientPrefix returns the address an IP counts as: an IPv4 address itself,
// an IPv6 address its /64 (one customer's allocation). An already reduced
// prefix is kept; anything else is used verbatim (it is only ever hashed).
func ClientPrefix(ip string) string {
	ip = strings.TrimSpace(ip)
	if addr, err := netip.ParseAddr(ip); err == nil {
		addr = addr.WithZone("").Unmap()
		if addr.Is4() {
			return addr.String()
		}
		p, _ := addr.Prefix(64)
		return p.String()
	}
	if p, err := netip.ParsePrefix(ip); err == nil {
		return p.Masked().String()
	}
	if ip == "" {
		return "unknown"
	}
	return ip
}

// State is what Check found.
type State struct {
	Locked     bool
	RetryAfter time.Duration
	Reason     string // "pair" or "username" when locked

	pair pairItem
	user userItem
}

// Failures is the pair's live consecutive failure count.
func (s State) Failures() int { return s.pair.liveFailures }

type pairItem struct {
	exists       bool
	Failures     int   `dynamodbav:"failures"`
	LastFailure  int64 `dynamodbav:"lastFailure"`  // epoch ms
	LockedUntil  int64 `dynamodbav:"lockedUntil"`  // epoch ms
	TrustedUntil int64 `dynamodbav:"trustedUntil"` // epoch ms
	liveFailures int
	trusted      bool
}

type userItem struct {
	exists      bool
	Count       int   `dynamodbav:"count"`
	WindowStart int64 `dynamodbav:"windowStart"` // epoch ms
}

// Guard reads and writes the counters.
type Guard struct {
	db     API
	table  string
	clock  clock.Clock
	policy Policy
}

// New returns a Guard over table.
func New(db API, table string, clk clock.Clock, policy Policy) *Guard {
	if clk == nil {
		clk = clock.System{}
	}
	return &Guard{db: db, table: table, clock: clk, policy: policy}
}

// Keys are the counter items of key, for a caller that reads them in one
// BatchGetItem together with its own items (a login reads the user too).
func (g *Guard) Keys(key Key) store.Keys {
	return store.Keys{g.table: {pk(key.Pair), pk(key.User)}}
}

// Check reads the counters of key in one strongly consistent BatchGetItem
// and says whether the attempt must be refused. A refused attempt is not counted.
func (g *Guard) Check(ctx context.Context, key Key) (State, error) {
	items, err := store.BatchGet(ctx, g.db, g.Keys(key))
	if err != nil {
		return State{}, fmt.Errorf("login attempts read: %w", err)
	}
	return g.Evaluate(key, items)
}

// Evaluate decides from the counter items of key among items (as Check read
// them, or a caller's batch that included Keys(key)).
func (g *Guard) Evaluate(key Key, items store.Items) (State, error) {
	var st State
	if it := items.Find(g.table, pk(key.Pair)); it != nil {
		if err := attributevalue.UnmarshalMap(it, &st.pair); err != nil {
			return State{}, fmt.Errorf("decode login counter: %w", err)
		}
		st.pair.exists = true
	}
	if it := items.Find(g.table, pk(key.User)); it != nil {
		if err := attributevalue.UnmarshalMap(it, &st.user); err != nil {
			return State{}, fmt.Errorf("decode login counter: %w", err)
		}
		st.user.exists = true
	}
	g.evaluate(&st)
	return st, nil
}

// evaluate decides from the items alone, with read-time expiry: the TTL
// sweep may leave expired counters behind for days.
func (g *Guard) evaluate(st *State) {
	now := g.clock.Now().UnixMilli()
	p := &st.pair
	if p.exists && p.LastFailure+g.policy.Window.Milliseconds() > now {
		p.liveFailures = p.Failures
	}
	p.trusted = p.exists && p.TrustedUntil > now
	if p.liveFailures > 0 && p.LockedUntil > now {
		st.Locked, st.Reason = true, "pair"
		st.RetryAfter = time.Duration(p.LockedUntil-now) * time.Millisecond
		return
	}
	u := st.user
	end := u.WindowStart + g.policy.UserWindow.Milliseconds()
	if !p.trusted && u.exists && end > now && u.Count >= g.policy.UserLimit {
		st.Locked, st.Reason = true, "username"
		st.RetryAfter = time.Duration(end-now) * time.Millisecond
	}
}

// RecordFailure counts a failed login against the pair and the username.
// st is the state Check returned for the same attempt.
func (g *Guard) RecordFailure(ctx context.Context, key Key, st State) error {
	if err := g.failPair(ctx, key, st.pair); err != nil {
		return err
	}
	return g.failUser(ctx, key, st.user)
}

// failPair counts a failure against the pair without a read-modify-write:
// ADD while the counter is live, else restart it at 1 (each branch
// conditional, so concurrent failures are all counted and an expired
// counter is never continued); a failure that reaches the threshold then
// sets the lock for the count it produced.
func (g *Guard) failPair(ctx context.Context, key Key, p pairItem) error {
	window := g.policy.Window.Milliseconds()
	live := p.exists && p.LastFailure+window > g.clock.Now().UnixMilli()
	failures, lastFailure := expression.Name("failures"), expression.Name("lastFailure")
	for attempt := 0; attempt < 4; attempt++ {
		now := g.clock.Now().UnixMilli()
		cutoff := expression.Value(now - window)
		upd := expression.Set(lastFailure, expression.Value(now)).
			Set(expression.Name("ttl"), expression.Value(ceilSeconds(max(now+window, p.TrustedUntil))))
		var cond expression.ConditionBuilder
		if live {
			upd = upd.Add(failures, expression.Value(1))
			cond = lastFailure.GreaterThan(cutoff)
		} else {
			upd = upd.Set(failures, expression.Value(1)).Set(expression.Name("lockedUntil"), expression.Value(0))
			cond = expression.AttributeNotExists(lastFailure).Or(lastFailure.LessThanEqual(cutoff))
		}
		out, err := g.update(ctx, key.Pair, upd, cond, types.ReturnValueUpdatedNew)
		if store.IsConditionFailed(err) {
			live = !live // another failure restarted the counter, or it expired meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("count login failure: %w", err)
		}
		var n struct {
			Failures int `dynamodbav:"failures"`
		}
		if err := attributevalue.UnmarshalMap(out.Attributes, &n); err != nil {
			return fmt.Errorf("decode login counter: %w", err)
		}
		return g.lockPair(ctx, key, n.Failures, now, p.TrustedUntil)
	}
	return errors.New("count login failure: too many concurrent updates")
}

// update runs one conditional UpdateItem on the counter item with key pk.
func (g *Guard) update(ctx context.Context, key string, upd expression.UpdateBuilder, cond expression.ConditionBuilder, rv types.ReturnValue) (*dynamodb.UpdateItemOutput, error) {
	b := expression.NewBuilder().WithUpdate(upd)
	if cond.IsSet() {
		b = b.WithCondition(cond)
	}
	expr, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build login counter update: %w", err)
	}
	return g.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(g.table),
		Key:                       pk(key),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ReturnValues:              rv,
	})
}

// lockPair sets the lock earned by the n-th failure, unless a later failure
// has already moved the count on (and set its own, longer lock).
func (g *Guard) lockPair(ctx context.Context, key Key, n int, now, trustedUntil int64) error {
	d := g.policy.LockFor(n)
	if d <= 0 {
		return nil
	}
	until := now + d.Milliseconds()
	upd := expression.Set(expression.Name("lockedUntil"), expression.Value(until)).
		Set(expression.Name("ttl"), expression.Value(ceilSeconds(max(now+g.policy.Window.Milliseconds(), trustedUntil, until))))
	_, err := g.update(ctx, key.Pair, upd, expression.Name("failures").Equal(expression.Value(n)), types.ReturnValueNone)
	if err != nil && !store.IsConditionFailed(err) {
		return fmt.Errorf("lock login pair: %w", err)
	}
	return nil
}

// failUser counts against the username's window: ADD while the window is
// live, else start a new one; each branch is conditional, so concurrent
// failures neither lose counts nor resurrect an expired window.
func (g *Guard) failUser(ctx context.Context, key Key, u userItem) error {
	live := u.exists && u.WindowStart+g.policy.UserWindow.Milliseconds() > g.clock.Now().UnixMilli()
	count, windowStart := expression.Name("count"), expression.Name("windowStart")
	for attempt := 0; attempt < 4; attempt++ {
		now := g.clock.Now().UnixMilli()
		cutoff := expression.Value(now - g.policy.UserWindow.Milliseconds())
		var upd expression.UpdateBuilder
		var cond expression.ConditionBuilder
		if live {
			upd = expression.Add(count, expression.Value(1))
			cond = windowStart.GreaterThan(cutoff)
		} else {
			upd = expression.Set(count, expression.Value(1)).Set(windowStart, expression.Value(now)).
				Set(expression.Name("ttl"), expression.Value(ceilSeconds(now+g.policy.UserWindow.Milliseconds())))
			cond = expression.AttributeNotExists(expression.Name("pk")).Or(windowStart.LessThanEqual(cutoff))
		}
		_, err := g.update(ctx, key.User, upd, cond, types.ReturnValueNone)
		if err == nil {
			return nil
		}
		if !store.IsConditionFailed(err) {
			return fmt.Errorf("count username failure: %w", err)
		}
		live = !live
	}
	return errors.New("count username failure: too many concurrent updates")
}

// RecordSuccess clears the pair's failures and marks the pair trusted, so
// the username's soft limit does not apply to it. It writes only when
// something would change or the trust is more than half way to expiry, so a
// regular login costs no write here.
func (g *Guard) RecordSuccess(ctx context.Context, key Key, st State) error {
	now := g.clock.Now()
	p := st.pair
	refreshAt := p.TrustedUntil - g.policy.TrustTTL.Milliseconds()/2
	if p.exists && p.Failures == 0 && p.LockedUntil == 0 && p.trusted && now.UnixMilli() < refreshAt {
		return nil
	}
	until := now.Add(g.policy.TrustTTL).UnixMilli()
	upd := expression.Set(expression.Name("failures"), expression.Value(0)).
		Set(expression.Name("lockedUntil"), expression.Value(0)).
		Set(expression.Name("trustedUntil"), expression.Value(until)).
		Set(expression.Name("ttl"), expression.Value(ceilSeconds(until)))
	if _, err := g.update(ctx, key.Pair, upd, expression.ConditionBuilder{}, types.ReturnValueNone); err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}

func pk(v string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: v}}
}

func ceilSeconds(ms int64) int64 { return (ms + 999) / 1000 }
