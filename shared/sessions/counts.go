package sessions

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// Counting sessions without a scan (docs/identity.md, "Counting sessions").
//
// A counted session item carries countedExpiry: the effective expiry (ms)
// under which the counter items hold it. Counter items live in the sessions
// table under keys starting "count#", which a hex SHA-256 key never does.
// Each counted session adds 1 to the bucket of its countedExpiry at three
// granularities: its minute (one item per hour), its hour (one item per day)
// and its day (one item per 64 days). Count reads the minutes left in the
// current hour, the hours left in the current day and the days up to the
// longest lifetime the configuration allows: at most 10 small items, however
// many sessions there are.
//
// Every write that starts, moves or ends a session's count is conditional on
// the countedExpiry it read (or deletes the item and gets it back), so one
// writer owns each change; the counter deltas it implies are plain ADDs,
// which commute and never conflict, issued together with the session write
// and taken back when that write fails. A delta whose outcome is unknown (a
// counter write failed, or a session write failed other than on its
// condition) marks the count approximate until the buckets involved have
// passed.

const (
	countPrefix   = "count#"
	countMetaKey  = countPrefix + "meta"
	attrCounted   = "countedExpiry"
	attrSkewUntil = "skewUntil"
	// configAttrPrefix names the meta attribute of one configuration,
	// cfg_<SESSION_TTL s>_<SESSION_MAX_LIFETIME s>, holding when an instance
	// with it last wrote counters (ms).
	configAttrPrefix = "cfg_"
	// ConfigRefresh is how often an instance that writes counters renews its
	// configuration's entry in the meta item.
	ConfigRefresh = 10 * time.Minute
	// countRetention is how long a counter item outlives its last bucket
	// before the TTL sweep may remove it.
	countRetention = 24 * time.Hour
	// countParallel bounds the counter writes in flight for one operation:
	// enough for all the items the sessions of a default 24-hour SESSION_TTL
	// can touch (25 minute items, 2 hour items, 2 day items) at once.
	countParallel = 32
)

// level is one granularity of the counters.
type level struct {
	tag  string // the item key's and the attribute names' prefix
	unit int64  // ms per bucket
	span int64  // buckets per item
}

var levels = [3]level{
	{"m", time.Minute.Milliseconds(), 60},
	{"h", time.Hour.Milliseconds(), 24},
	{"d", 24 * time.Hour.Milliseconds(), 64},
}

// bucket returns the bucket of the expiry e (ms, > 0). Buckets are closed on
// the right, bucket b holding the expiries in (b·unit, (b+1)·unit], so at a
// bucket boundary no bucket is partly expired.
func (l level) bucket(e int64) int64 { return (e - 1) / l.unit }

func (l level) key(b int64) string {
	return countPrefix + l.tag + "#" + strconv.FormatInt(b/l.span, 10)
}

func (l level) attr(b int64) string { return l.tag + strconv.FormatInt(b, 10) }

// ttl is the TTL (epoch s) of the item holding bucket b.
func (l level) ttl(b int64) int64 {
	end := (b/l.span + 1) * l.span * l.unit
	return ceilSeconds(end + countRetention.Milliseconds())
}

// isCountKey reports whether pk is a counter item's key.
func isCountKey(pk string) bool { return strings.HasPrefix(pk, countPrefix) && len(pk) <= 40 }

// counterItem is the deltas to one counter item.
type counterItem struct {
	ttl  int64
	adds map[string]int64
}

// countWrites are counter deltas by item, as of now (ms).
type countWrites struct {
	now   int64
	until int64 // the end of the latest minute bucket involved
	items map[string]*counterItem
}

func newCountWrites(now int64) *countWrites {
	return &countWrites{now: now, items: map[string]*counterItem{}}
}

// add counts n more sessions expiring at e (ms). Nothing for e = 0 (an item
// not counted) or an expiry whose minute has passed, which no count reads.
func (w *countWrites) add(e, n int64) {
	if e <= 0 || n == 0 {
		return
	}
	minuteEnd := (levels[0].bucket(e) + 1) * levels[0].unit
	if minuteEnd <= w.now {
		return
	}
	w.until = max(w.until, minuteEnd)
	for _, l := range levels {
		b := l.bucket(e)
		w.addAttr(l.key(b), l.ttl(b), l.attr(b), n)
	}
}

func (w *countWrites) addAttr(key string, ttl int64, attr string, n int64) {
	it := w.items[key]
	if it == nil {
		it = &counterItem{ttl: ttl, adds: map[string]int64{}}
		w.items[key] = it
	}
	it.adds[attr] += n
	if it.adds[attr] == 0 {
		delete(it.adds, attr)
	}
}

// move moves one session's count from the expiry from to the expiry to
// (either 0: not counted).
func (w *countWrites) move(from, to int64) {
	w.add(from, -1)
	w.add(to, 1)
}

// keys returns the items with a non-zero delta, sorted.
func (w *countWrites) keys() []string {
	var out []string
	for k, it := range w.items {
		if len(it.adds) > 0 {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (w *countWrites) empty() bool { return len(w.keys()) == 0 }

// minus returns w − o, leaving out the items in skip.
func (w *countWrites) minus(o *countWrites, skip map[string]bool) *countWrites {
	out := newCountWrites(w.now)
	out.until = max(w.until, o.until)
	for k, it := range w.items {
		if !skip[k] {
			for a, n := range it.adds {
				out.addAttr(k, it.ttl, a, n)
			}
		}
	}
	for k, it := range o.items {
		if !skip[k] {
			for a, n := range it.adds {
				out.addAttr(k, it.ttl, a, -n)
			}
		}
	}
	return out
}

// applyCounts writes the deltas, one UpdateItem per counter item, at once.
// It returns the items whose write succeeded and the first error; an item
// whose write failed may or may not have been written.
func (m *Manager) applyCounts(ctx context.Context, w *countWrites) (map[string]bool, error) {
	keys := w.keys()
	done := make(map[string]bool, len(keys))
	var mu sync.Mutex
	var first error
	calls := make([]func(context.Context) error, 0, len(keys)+1)
	for _, k := range keys {
		it := w.items[k]
		calls = append(calls, func(ctx context.Context) error {
			err := m.addCounts(ctx, k, it)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				done[k] = true
			} else if first == nil {
				first = err
			}
			return nil
		})
	}
	if c := m.configNote(w.now); c != nil && len(keys) > 0 {
		calls = append(calls, func(ctx context.Context) error { c(ctx); return nil })
	}
	_ = parallel(ctx, countParallel, calls)
	return done, first
}

// addCounts is the UpdateItem of one counter item.
func (m *Manager) addCounts(ctx context.Context, key string, it *counterItem) error {
	upd := expression.Set(expression.Name("ttl"), expression.Value(it.ttl))
	for _, a := range slices.Sorted(maps.Keys(it.adds)) {
		upd = upd.Add(expression.Name(a), expression.Value(it.adds[a]))
	}
	expr, err := expression.NewBuilder().WithUpdate(upd).Build()
	if err != nil {
		return fmt.Errorf("build session count update: %w", err)
	}
	_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(m.table),
		Key:                       hashKey(key),
		UpdateExpression:          expr.Update(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if err != nil {
		return fmt.Errorf("update session count: %w", err)
	}
	return nil
}

// withCounts runs write, a conditional write of one session item, and
// applies w, the counter deltas it implies, at the same time; if write fails
// the deltas are taken back (see settle).
func (m *Manager) withCounts(ctx context.Context, w *countWrites, write func() error) error {
	if w.empty() {
		return write()
	}
	bg := context.WithoutCancel(ctx) // the accounting finishes even if the caller leaves
	var done map[string]bool
	var cerr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done, cerr = m.applyCounts(bg, w)
	}()
	werr := write()
	<-finished
	want := w
	var uncertain error
	if werr != nil {
		want = newCountWrites(w.now)
		if !store.IsConditionFailed(werr) {
			uncertain = werr // it may have been written all the same
		}
	}
	m.settle(bg, w, done, cerr, want, uncertain)
	return werr
}

// settle makes the counters hold want, given that attempted was issued and
// the items in done were written (the others failed with cerr, their outcome
// unknown). The difference is written; anything unknown marks the count
// skewed until the buckets involved have passed.
func (m *Manager) settle(ctx context.Context, attempted *countWrites, done map[string]bool, cerr error, want *countWrites, uncertain error) {
	failed := map[string]bool{}
	for _, k := range attempted.keys() {
		if !done[k] {
			failed[k] = true
		}
	}
	fix := want.minus(attempted, failed)
	if !fix.empty() {
		fixed, err := m.applyCounts(ctx, fix)
		for _, k := range fix.keys() {
			if !fixed[k] {
				failed[k] = true
				cerr = err
			}
		}
	}
	cause := uncertain
	if len(failed) > 0 {
		cause = cerr
	}
	if cause != nil {
		m.markSkew(ctx, max(attempted.until, want.until), cause)
	}
}

// markSkew records that the counters may be off until the given time (ms):
// Count reports approximate until then.
func (m *Manager) markSkew(ctx context.Context, until int64, cause error) {
	m.logger.WarnContext(ctx, "session count may be off until its buckets pass", "until", until, "err", cause)
	name := expression.Name(attrSkewUntil)
	cond := expression.AttributeNotExists(name).Or(name.LessThan(expression.Value(until)))
	expr, err := expression.NewBuilder().WithUpdate(expression.Set(name, expression.Value(until))).WithCondition(cond).Build()
	if err == nil {
		_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(m.table),
			Key:                       hashKey(countMetaKey),
			UpdateExpression:          expr.Update(),
			ConditionExpression:       expr.Condition(),
			ExpressionAttributeNames:  expr.Names(),
			ExpressionAttributeValues: expr.Values(),
		})
	}
	if err != nil && !store.IsConditionFailed(err) {
		m.logger.ErrorContext(ctx, "marking the session count approximate failed", "until", until, "err", err)
	}
}

// configAttr is the meta attribute of a configuration.
func configAttr(c Config) string {
	return fmt.Sprintf("%s%d_%d", configAttrPrefix, int64(c.IdleTTL/time.Second), int64(c.MaxLifetime/time.Second))
}

// configNote returns the write that renews this instance's configuration in
// the meta item when it is due (nil otherwise), so that Count can tell when
// counters were written under a longer configuration than its own.
func (m *Manager) configNote(now int64) func(context.Context) {
	m.noteMu.Lock()
	defer m.noteMu.Unlock()
	if m.notedAt != 0 && now-m.notedAt < ConfigRefresh.Milliseconds() && now >= m.notedAt {
		return nil
	}
	prev := m.notedAt
	m.notedAt = now // claimed: concurrent writers do not repeat it
	return func(ctx context.Context) {
		expr, err := expression.NewBuilder().WithUpdate(expression.Set(expression.Name(configAttr(m.cfg)), expression.Value(now))).Build()
		if err == nil {
			_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName:                 aws.String(m.table),
				Key:                       hashKey(countMetaKey),
				UpdateExpression:          expr.Update(),
				ExpressionAttributeNames:  expr.Names(),
				ExpressionAttributeValues: expr.Values(),
			})
		}
		if err != nil {
			m.logger.WarnContext(ctx, "noting the session configuration failed", "err", err)
			m.noteMu.Lock()
			if m.notedAt == now {
				m.notedAt = prev
			}
			m.noteMu.Unlock()
		}
	}
}

// Count returns the number of live sessions of all users, from the counter
// items (at most 10 small items, one BatchGetItem, whatever the number of
// sessions), and whether that number is approximate. It is exact (false)
// unless, as docs/identity.md details:
//   - a session expires in the current minute (count is then an upper bound
//     by the sessions counted in that minute);
//   - counters were written under a longer SESSION_TTL or
//     SESSION_MAX_LIFETIME than this instance's within that configuration's
//     lifetime (sessions beyond this configuration's horizon are left out);
//   - a counter write was lost (an outage), until its buckets have passed;
//   - a bucket is negative.
//
// Like validation it reads no user: an item whose session was ended by a
// version bump and missed by the cleanup is counted (see docs/identity.md).
func (m *Manager) Count(ctx context.Context) (int, bool, error) {
	now := m.clock.Now().UnixMilli()
	horizon := now + min(m.cfg.IdleTTL, m.cfg.MaxLifetime).Milliseconds() + ClockSkew.Milliseconds()
	mNow, hNow, dNow := levels[0].bucket(now), levels[1].bucket(now), levels[2].bucket(now)
	mMax, hMax, dMax := levels[0].bucket(horizon), levels[1].bucket(horizon), levels[2].bucket(horizon)
	keys := []map[string]types.AttributeValue{
		hashKey(countMetaKey), hashKey(levels[0].key(mNow)), hashKey(levels[1].key(hNow)),
	}
	for b := (dNow + 1) / levels[2].span; b <= dMax/levels[2].span; b++ {
		keys = append(keys, hashKey(levels[2].key(b*levels[2].span)))
	}
	items, err := store.BatchGet(ctx, m.db, store.Keys{m.table: keys})
	if err != nil {
		return 0, false, fmt.Errorf("count sessions: %w", err)
	}
	var total int64
	approximate := false
	// sum adds the buckets of one level in (from, to]; a bucket beyond to holds
	// sessions bucketed under a longer configuration.
	sum := func(l level, from, to int64) {
		for _, it := range items[m.table] {
			if !strings.HasPrefix(store.String(it["pk"]), countPrefix+l.tag+"#") {
				continue
			}
			for name, v := range it {
				digits, ok := strings.CutPrefix(name, l.tag)
				b, err := strconv.ParseInt(digits, 10, 64)
				if !ok || err != nil || b <= from {
					continue
				}
				n := store.Int(v)
				if b > to {
					approximate = approximate || n > 0
					continue
				}
				total += n
				approximate = approximate || n < 0
			}
		}
	}
	// The current minute's sessions are counted (an upper bound) unless now is
	// the minute's end, when they have all expired.
	if now%levels[0].unit != 0 {
		minute := items.Find(m.table, hashKey(levels[0].key(mNow)))
		if n := store.Int(minute[levels[0].attr(mNow)]); n != 0 {
			total += n
			approximate = true
		}
	}
	sum(levels[0], mNow, mMax)
	sum(levels[1], hNow, hMax)
	sum(levels[2], dNow, dMax)
	meta := items.Find(m.table, hashKey(countMetaKey))
	if store.Int(meta[attrSkewUntil]) > now {
		approximate = true
	}
	for name, v := range meta {
		if c, ok := parseConfigAttr(name); ok && (c.IdleTTL > m.cfg.IdleTTL || c.MaxLifetime > m.cfg.MaxLifetime) &&
			store.Int(v)+ConfigRefresh.Milliseconds()+min(c.IdleTTL, c.MaxLifetime).Milliseconds()+ClockSkew.Milliseconds() > now {
			approximate = true
		}
	}
	return int(max(total, 0)), approximate || total < 0, nil
}

// parseConfigAttr reads a configuration from its meta attribute name.
func parseConfigAttr(name string) (Config, bool) {
	rest, ok := strings.CutPrefix(name, configAttrPrefix)
	if !ok {
		return Config{}, false
	}
	idle, lifetime, ok := strings.Cut(rest, "_")
	i, err1 := strconv.ParseInt(idle, 10, 64)
	l, err2 := strconv.ParseInt(lifetime, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Config{}, false
	}
	return Config{IdleTTL: time.Duration(i) * time.Second, MaxLifetime: time.Duration(l) * time.Second}, true
}

// countedIs is the condition that an item's countedExpiry is still the one
// read (absent when 0), so one writer owns each change of a session's count.
func countedIs(e int64) expression.ConditionBuilder {
	if e == 0 {
		return expression.AttributeNotExists(expression.Name(attrCounted))
	}
	return expression.Name(attrCounted).Equal(expression.Value(e))
}

// parallel runs calls with at most limit in flight and returns the first error.
func parallel(ctx context.Context, limit int, calls []func(context.Context) error) error {
	if len(calls) == 1 {
		return calls[0](ctx)
	}
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, c := range calls {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := c(ctx); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}
