// Package lockout keeps the failed-login counters of the login-attempts
// table (DESIGN.md): per (username, client IP /64) pair, 5 failures lock the
// pair for 1 s, doubling with each further failure up to 15 min; a counter
// stays live until a window (15 min) after its last failure or the end of
// its lock, whichever is later, so a pair guessing at the cap stays at the
// cap (one guess per lock). Per username, a soft limit of 50 failures per
// 15 min bounds guessing spread over many addresses. The soft limit does not
// apply to a client with a valid device cookie for that username (OWASP's
// device cookies: identity issues and checks it; the device then has its own
// counter with the pair's curve), nor to a pair that has logged in
// successfully before, so an attack from elsewhere cannot lock the real user
// out. Keys are HMAC-SHA256 under the deployment key's subkey: no username
// or IP is stored in the clear, nor can one be found by hashing guesses.
package lockout

import (
	"context"
	"crypto/hmac"
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
	Window     time.Duration // a counter expires this long after its last failure or the end of its lock, the later (15 min)
	UserLimit  int           // failures per username per UserWindow (50)
	UserWindow time.Duration // 15 min
	TrustTTL   time.Duration // how long a successful login exempts its pair (and its device cookie) from the soft limit
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

// Key identifies one login attempt's counters (keyed hashes).
type Key struct {
	Pair   string // pk of the (username, client prefix) counter
	User   string // pk of the username counter
	Device string // pk of the device-cookie counter; "" without a valid device cookie
}

// KeySource gives the current deployment key's subkey for a purpose
// (keyring.Keyring). A rotation changes it: the counters start afresh.
type KeySource interface {
	Subkey(ctx context.Context, purpose string) ([]byte, error)
}

// keyPurpose names the lockout's subkey.
const keyPurpose = "lockout"

// NewKey returns the counters' keys for a username (any case), a client IP
// and, when the attempt carries a valid device cookie for that username,
// the cookie's device id ("" otherwise), hashed under secret.
func NewKey(secret []byte, username, clientIP, device string) Key {
	u := strings.ToLower(username)
	k := Key{
		Pair: "pair#" + digest(secret, "zenith-login-pair|"+u+"|"+ClientPrefix(clientIP)),
		User: "user#" + digest(secret, "zenith-login-user|"+u),
	}
	if device != "" {
		k.Device = "device#" + digest(secret, "zenith-login-device|"+u+"|"+device)
	}
	return k
}

func digest(secret []byte, s string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
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
	Reason     string // "pair", "device" or "username" when locked

	pair   counter
	device counter
	user   userItem
}

// Failures is the pair's live consecutive failure count.
func (s State) Failures() int { return s.pair.liveFailures }

// counter is a pair's or a device's failure counter.
type counter struct {
	exists       bool
	Failures     int   `dynamodbav:"failures"`
	LastFailure  int64 `dynamodbav:"lastFailure"`  // epoch ms
	LockedUntil  int64 `dynamodbav:"lockedUntil"`  // epoch ms
	TrustedUntil int64 `dynamodbav:"trustedUntil"` // epoch ms (pairs only)
	liveFailures int
	trusted      bool
}

// liveUntil is when the counter expires: a window after its last failure or
// after its lock ends, whichever is later, so the lock at the cap is earned
// again by the next failure instead of the count starting over.
func (c counter) liveUntil(window time.Duration) int64 {
	return max(c.LastFailure, c.LockedUntil) + window.Milliseconds()
}

func (c counter) live(window time.Duration, now int64) bool {
	return c.exists && c.liveUntil(window) > now
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
	keys   KeySource
}

// New returns a Guard over table, hashing keys under keys' subkey.
func New(db API, table string, clk clock.Clock, policy Policy, keys KeySource) *Guard {
	if clk == nil {
		clk = clock.System{}
	}
	return &Guard{db: db, table: table, clock: clk, policy: policy, keys: keys}
}

// Policy returns the guard's figures.
func (g *Guard) Policy() Policy { return g.policy }

// Key returns the counters' keys of an attempt (see NewKey), reading the
// deployment key if this instance has not yet.
func (g *Guard) Key(ctx context.Context, username, clientIP, device string) (Key, error) {
	if g.keys == nil {
		return Key{}, errors.New("lockout: no key source")
	}
	secret, err := g.keys.Subkey(ctx, keyPurpose)
	if err != nil {
		return Key{}, err
	}
	return NewKey(secret, username, clientIP, device), nil
}

// Keys are the counter items of key, for a caller that reads them in one
// BatchGetItem together with its own items (a login reads the user too).
func (g *Guard) Keys(key Key) store.Keys {
	keys := []map[string]types.AttributeValue{pk(key.Pair), pk(key.User)}
	if key.Device != "" {
		keys = append(keys, pk(key.Device))
	}
	return store.Keys{g.table: keys}
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
	decode := func(k string, dst any) (bool, error) {
		it := items.Find(g.table, pk(k))
		if it == nil {
			return false, nil
		}
		if err := attributevalue.UnmarshalMap(it, dst); err != nil {
			return false, fmt.Errorf("decode login counter: %w", err)
		}
		return true, nil
	}
	var err error
	if st.pair.exists, err = decode(key.Pair, &st.pair); err != nil {
		return State{}, err
	}
	if st.user.exists, err = decode(key.User, &st.user); err != nil {
		return State{}, err
	}
	if key.Device != "" {
		if st.device.exists, err = decode(key.Device, &st.device); err != nil {
			return State{}, err
		}
	}
	g.evaluate(&st, key.Device != "")
	return st, nil
}

// evaluate decides from the items alone, with read-time expiry: the TTL
// sweep may leave expired counters behind for days. A valid device cookie
// (hasDevice) or a trusted pair lifts the username's soft limit; their own
// locks still apply.
func (g *Guard) evaluate(st *State, hasDevice bool) {
	now := g.clock.Now().UnixMilli()
	for _, c := range []*counter{&st.pair, &st.device} {
		if c.live(g.policy.Window, now) {
			c.liveFailures = c.Failures
		}
	}
	p := &st.pair
	p.trusted = p.exists && p.TrustedUntil > now
	for _, c := range []struct {
		counter *counter
		reason  string
	}{{p, "pair"}, {&st.device, "device"}} {
		if c.counter.liveFailures > 0 && c.counter.LockedUntil > now {
			st.Locked, st.Reason = true, c.reason
			st.RetryAfter = time.Duration(c.counter.LockedUntil-now) * time.Millisecond
			return
		}
	}
	u := st.user
	end := u.WindowStart + g.policy.UserWindow.Milliseconds()
	if !p.trusted && !hasDevice && u.exists && end > now && u.Count >= g.policy.UserLimit {
		st.Locked, st.Reason = true, "username"
		st.RetryAfter = time.Duration(end-now) * time.Millisecond
	}
}

// RecordFailure counts a failed login against the pair, the device (when
// the attempt had a valid device cookie) and the username. st is the state
// Check returned for the same attempt.
func (g *Guard) RecordFailure(ctx context.Context, key Key, st State) error {
	if err := g.fail(ctx, key.Pair, st.pair); err != nil {
		return err
	}
	if key.Device != "" {
		if err := g.fail(ctx, key.Device, st.device); err != nil {
			return err
		}
	}
	return g.failUser(ctx, key, st.user)
}

// fail counts a failure against a pair's or a device's counter without a
// read-modify-write: ADD while the counter is live, else restart it at 1
// (each branch conditional, so concurrent failures are all counted and an
// expired counter is never continued); a failure that reaches the threshold
// then sets the lock for the count it produced.
func (g *Guard) fail(ctx context.Context, key string, c counter) error {
	window := g.policy.Window.Milliseconds()
	live := c.live(g.policy.Window, g.clock.Now().UnixMilli())
	failures, lastFailure, lockedUntil := expression.Name("failures"), expression.Name("lastFailure"), expression.Name("lockedUntil")
	for attempt := 0; attempt < 4; attempt++ {
		now := g.clock.Now().UnixMilli()
		cutoff := expression.Value(now - window)
		upd := expression.Set(lastFailure, expression.Value(now)).
			Set(expression.Name("ttl"), expression.Value(ceilSeconds(max(now+window, c.LockedUntil+window, c.TrustedUntil))))
		var cond expression.ConditionBuilder
		if live {
			upd = upd.Add(failures, expression.Value(1))
			cond = lastFailure.GreaterThan(cutoff).Or(lockedUntil.GreaterThan(cutoff))
		} else {
			upd = upd.Set(failures, expression.Value(1)).Set(lockedUntil, expression.Value(0))
			cond = expression.AttributeNotExists(lastFailure).Or(lastFailure.LessThanEqual(cutoff)).
				And(expression.AttributeNotExists(lockedUntil).Or(lockedUntil.LessThanEqual(cutoff)))
		}
		out, err := g.update(ctx, key, upd, cond, types.ReturnValueUpdatedNew)
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
		return g.lock(ctx, key, n.Failures, now, c.TrustedUntil)
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

// lock sets the lock earned by the n-th failure, unless a later failure
// has already moved the count on (and set its own, longer lock).
func (g *Guard) lock(ctx context.Context, key string, n int, now, trustedUntil int64) error {
	d := g.policy.LockFor(n)
	if d <= 0 {
		return nil
	}
	until := now + d.Milliseconds()
	upd := expression.Set(expression.Name("lockedUntil"), expression.Value(until)).
		Set(expression.Name("ttl"), expression.Value(ceilSeconds(max(until+g.policy.Window.Milliseconds(), trustedUntil))))
	_, err := g.update(ctx, key, upd, expression.Name("failures").Equal(expression.Value(n)), types.ReturnValueNone)
	if err != nil && !store.IsConditionFailed(err) {
		return fmt.Errorf("lock login counter: %w", err)
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
