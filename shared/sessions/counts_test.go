package sessions

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// scanSessions returns every session item of the fixture's table.
func (f *fixture) scanSessions(t *testing.T) []*Session {
	t.Helper()
	p := dynamodb.NewScanPaginator(f.env.Client, &dynamodb.ScanInput{TableName: aws.String(f.env.Tables.Sessions), ConsistentRead: aws.Bool(true)})
	var out []*Session
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		list, err := decodeSessions(page.Items)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, list...)
	}
	return out
}

// checkCount compares m.Count with what the session items say: the items
// counted (countedExpiry whose minute has not passed) and whether one of
// them expires in the current, partly passed minute (approximate). Under an
// unchanged configuration every counted item's countedExpiry is its
// effective expiry, and with no partial minute the count is the number of
// live items.
func (f *fixture) checkCount(t *testing.T, m *Manager, step string) {
	t.Helper()
	now := f.clock.Now().UnixMilli()
	want, partial, live := 0, false, 0
	for _, s := range f.scanSessions(t) {
		if s.Live(now, m.cfg) {
			live++
			if s.CountedExpiry != s.EffectiveExpiry(m.cfg) {
				t.Fatalf("%s: live session %s counted at %d, its expiry is %d", step, s.Handle, s.CountedExpiry, s.EffectiveExpiry(m.cfg))
			}
		}
		if s.CountedExpiry == 0 {
			continue
		}
		b := levels[0].bucket(s.CountedExpiry)
		if (b+1)*levels[0].unit > now {
			want++
			partial = partial || (now%levels[0].unit != 0 && b == levels[0].bucket(now))
		}
	}
	n, approximate, err := m.Count(context.Background())
	if err != nil {
		t.Fatalf("%s: count: %v", step, err)
	}
	if n != want || approximate != partial {
		t.Fatalf("%s: count %d approximate %v, want %d approximate %v (%d live)", step, n, approximate, want, partial, live)
	}
	if !partial && n != live {
		t.Fatalf("%s: exact count %d, but %d live sessions", step, n, live)
	}
}

// TestCountFollowsEveryChange drives logins, validations (touches and the
// expiry of ended items), logouts, revocations, session-version bumps with
// and without the cleanup, and clock moves across minute, hour and day
// boundaries on three instances, and checks the count against the items
// after every step.
func TestCountFollowsEveryChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  map[string]string
	}{
		{"hour sessions", map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200", "SESSION_TOUCH_INTERVAL": "60"}},
		{"multi-day sessions", map[string]string{"SESSION_TTL": "259200", "SESSION_MAX_LIFETIME": "864000", "SESSION_TOUCH_INTERVAL": "60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			ctx := context.Background()
			actor := users.Actor{Username: "test"}
			instances := []*Manager{f.mgr, newManager(f.env.NewClient(t), f.env.Config, f.clock, nil), newManager(f.env.NewClient(t), f.env.Config, f.clock, nil)}
			var people []*users.User
			for i := 0; i < 3; i++ {
				people = append(people, f.user(t, fmt.Sprintf("walker_%d", i), users.RoleStaffTester))
			}
			type held struct {
				tok  string
				user *users.User
				hash string
			}
			var tokens []held
			rng := rand.New(rand.NewPCG(9, 9))
			advances := []time.Duration{time.Second, 59 * time.Second, 61 * time.Second, 17 * time.Minute, 2 * time.Hour, 23 * time.Hour, 24*time.Hour + 3*time.Minute}
			for step := 0; step < 160; step++ {
				m := instances[rng.IntN(len(instances))]
				var op string
				switch r := rng.IntN(20); {
				case r < 5 || len(tokens) == 0:
					op = "login"
					u := people[rng.IntN(len(people))]
					tok, s, err := m.Create(ctx, u)
					if err != nil {
						t.Fatal(err)
					}
					tokens = append(tokens, held{tok, u, s.Hash})
				case r < 10:
					op = "validate"
					m.Validate(ctx, tokens[rng.IntN(len(tokens))].tok)
				case r < 11:
					op = "logout"
					m.Logout(ctx, tokens[rng.IntN(len(tokens))].tok)
				case r < 12:
					op = "revoke validated"
					if s, _, _ := m.Validate(ctx, tokens[rng.IntN(len(tokens))].tok); s != nil {
						m.RevokeValidated(ctx, s)
					}
				case r < 13:
					op = "revoke"
					h := tokens[rng.IntN(len(tokens))]
					m.Revoke(ctx, h.hash, h.user.ID)
				case r < 14:
					op = "end all"
					u := people[rng.IntN(len(people))]
					if _, err := f.users.EndSessions(ctx, actor, u.ID); err != nil {
						t.Fatal(err)
					}
					if _, err := m.DeleteAll(ctx, u.ID); err != nil {
						t.Fatal(err)
					}
				case r < 15:
					op = "bump without cleanup"
					if _, err := f.users.EndSessions(ctx, actor, people[rng.IntN(len(people))].ID); err != nil {
						t.Fatal(err)
					}
				default:
					d := advances[rng.IntN(len(advances))]
					op = "advance " + d.String()
					f.clock.Advance(d)
				}
				f.checkCount(t, instances[rng.IntN(len(instances))], fmt.Sprintf("step %d (%s)", step, op))
			}
		})
	}
}

// TestCountUnderRaces: the interleavings in which a write meets a session
// changed since it was read leave the count exact: the write's condition
// fails and its counter deltas are taken back.
func TestCountUnderRaces(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200", "SESSION_TOUCH_INTERVAL": "60"})
	ctx := context.Background()
	other := newManager(f.env.NewClient(t), f.env.Config, f.clock, nil)
	racers := 0
	racer := func() *users.User { // a user per case: one case bumps its user's version
		racers++
		return f.user(t, fmt.Sprintf("racer_%d", racers), users.RoleStaffTester)
	}
	read := func(tok string) *Session {
		t.Helper()
		s, _, err := f.mgr.Validate(ctx, tok)
		if err != nil || s == nil {
			t.Fatalf("validate: %v", err)
		}
		c := *s
		return &c
	}

	t.Run("two instances touch the same session", func(t *testing.T) {
		tok, _, _ := f.mgr.Create(ctx, racer())
		stale := read(tok)
		f.clock.Advance(61 * time.Second)
		if s, _, _ := other.Validate(ctx, tok); s == nil { // touches first
			t.Fatal("rejected")
		}
		f.clock.Advance(time.Second)
		f.mgr.touch(ctx, stale, f.clock.Now().UnixMilli()) // read before that touch
		f.checkCount(t, f.mgr, "after the stale touch")
	})
	t.Run("a touch after a logout", func(t *testing.T) {
		tok, _, _ := f.mgr.Create(ctx, racer())
		stale := read(tok)
		if ok, _ := other.Logout(ctx, tok); !ok {
			t.Fatal("logout")
		}
		f.clock.Advance(61 * time.Second)
		f.mgr.touch(ctx, stale, f.clock.Now().UnixMilli())
		if f.item(t, stale.Hash) != nil {
			t.Fatal("the touch recreated the item")
		}
		f.checkCount(t, f.mgr, "after the touch of a deleted session")
	})
	t.Run("a touch after the ended item was expired", func(t *testing.T) {
		u := racer()
		tok, _, _ := f.mgr.Create(ctx, u)
		stale := read(tok) // valid when read
		if _, err := f.users.EndSessions(ctx, users.Actor{Username: "test"}, u.ID); err != nil {
			t.Fatal(err)
		}
		if s, _, _ := other.Validate(ctx, tok); s != nil { // ended: expires the item
			t.Fatal("ended session accepted")
		}
		f.checkCount(t, f.mgr, "after the ended item was expired")
		f.clock.Advance(61 * time.Second)
		f.mgr.touch(ctx, stale, f.clock.Now().UnixMilli())
		f.checkCount(t, f.mgr, "after the stale touch")
	})
	t.Run("a logout of the caller's session touched elsewhere since", func(t *testing.T) {
		tok, _, _ := f.mgr.Create(ctx, racer())
		stale := read(tok)
		f.clock.Advance(61 * time.Second)
		if s, _, _ := other.Validate(ctx, tok); s == nil { // moves the count
			t.Fatal("rejected")
		}
		if ok, err := f.mgr.RevokeValidated(ctx, stale); err != nil || !ok { // guesses the old bucket
			t.Fatalf("revoke: %v %v", ok, err)
		}
		f.checkCount(t, f.mgr, "after the revoke")
	})
	t.Run("end all with index entries that changed or went", func(t *testing.T) {
		u2 := racer()
		var toks []string
		for i := 0; i < 4; i++ {
			tok, _, _ := f.mgr.Create(ctx, u2)
			toks = append(toks, tok)
		}
		entries, err := f.mgr.entriesOf(ctx, u2.ID)
		if err != nil || len(entries) != 4 {
			t.Fatalf("entries: %d %v", len(entries), err)
		}
		// After the index was read: one session touched, one logged out.
		f.clock.Advance(61 * time.Second)
		if s, _, _ := other.Validate(ctx, toks[0]); s == nil {
			t.Fatal("rejected")
		}
		if ok, _ := other.Logout(ctx, toks[1]); !ok {
			t.Fatal("logout")
		}
		deleted, alone, err := f.mgr.deleteEntries(ctx, u2.ID, entries)
		if err != nil || len(deleted) != 2 || alone != 1 {
			t.Fatalf("deleted %d in the transaction and %d alone (%v), want 2 and 1", len(deleted), alone, err)
		}
		now := f.clock.Now().UnixMilli()
		w := newCountWrites(now)
		for _, s := range deleted {
			w.add(s.CountedExpiry, -1)
		}
		if _, err := f.mgr.applyCounts(ctx, w); err != nil {
			t.Fatal(err)
		}
		for _, tok := range toks {
			if f.item(t, HashToken(tok)) != nil {
				t.Fatal("an item survived")
			}
		}
		f.checkCount(t, f.mgr, "after end all")
	})
}

// hookDB is the real client with hooks before some calls (fault injection
// and observation).
type hookDB struct {
	*dynamodb.Client
	mu       sync.Mutex
	update   func(*dynamodb.UpdateItemInput) error
	batchGet func(*dynamodb.BatchGetItemInput)
}

func (h *hookDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	h.mu.Lock()
	hook := h.update
	h.mu.Unlock()
	if hook != nil {
		if err := hook(in); err != nil {
			return nil, err
		}
	}
	return h.Client.UpdateItem(ctx, in, opts...)
}

func (h *hookDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	if h.batchGet != nil {
		h.batchGet(in)
	}
	return h.Client.BatchGetItem(ctx, in, opts...)
}

func (h *hookDB) setUpdate(hook func(*dynamodb.UpdateItemInput) error) {
	h.mu.Lock()
	h.update = hook
	h.mu.Unlock()
}

func pkOf(key map[string]types.AttributeValue) string { return store.String(key["pk"]) }

// TestLostCounterWriteIsApproximate: a counter write that fails leaves the
// login working and the count marked approximate until the buckets it
// would have changed have passed, after which it is exact again.
func TestLostCounterWriteIsApproximate(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200"})
	ctx := context.Background()
	u := f.user(t, "lossy", users.RoleStaffTester)
	db := &hookDB{Client: f.env.NewClient(t)}
	m := newManager(db, f.env.Config, f.clock, nil)
	if _, _, err := m.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	db.setUpdate(func(in *dynamodb.UpdateItemInput) error {
		if k := pkOf(in.Key); strings.HasPrefix(k, countPrefix) && k != countMetaKey {
			return errors.New("store unreachable")
		}
		return nil
	})
	tok, _, err := m.Create(ctx, u)
	if err != nil || tok == "" {
		t.Fatalf("a lost counter write failed the login: %v", err)
	}
	db.setUpdate(nil)
	if n, approximate, err := m.Count(ctx); err != nil || n != 1 || !approximate {
		t.Fatalf("count %d approximate %v (%v), want 1 (the lost one missing) and approximate", n, approximate, err)
	}
	f.clock.Advance(30 * time.Minute)
	if n, approximate, _ := m.Count(ctx); n != 1 || !approximate {
		t.Fatalf("before the lost bucket passed: count %d approximate %v", n, approximate)
	}
	f.clock.Advance(time.Hour) // both sessions expired, the lost bucket passed
	if n, approximate, _ := m.Count(ctx); n != 0 || approximate {
		t.Fatalf("after: count %d approximate %v, want 0 exact", n, approximate)
	}

	// A session write that fails takes its counter deltas back.
	db.setUpdate(func(in *dynamodb.UpdateItemInput) error {
		if validHash(pkOf(in.Key)) {
			return &types.ConditionalCheckFailedException{Message: aws.String("injected")}
		}
		return nil
	})
	tok, _, _ = m.Create(ctx, u)
	f.clock.Advance(2 * time.Minute)
	if s, _, _ := m.Validate(ctx, tok); s == nil { // its touch fails on the condition
		t.Fatal("rejected")
	}
	db.setUpdate(nil)
	f.checkCount(t, m, "after a failed touch")
}

// TestCountReadIsBounded: one BatchGetItem of at most 10 small items, for
// the default configuration and for the longest SESSION_TTL allowed.
func TestCountReadIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       map[string]string
		wantItems int
	}{
		{"default", nil, 4},
		{"one hour", map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "3600"}, 4},
		{"365 days", map[string]string{"SESSION_TTL": "31536000", "SESSION_MAX_LIFETIME": "31536000"}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.cfg)
			var reads, keys int
			db := &hookDB{Client: f.env.NewClient(t), batchGet: func(in *dynamodb.BatchGetItemInput) {
				reads++
				for _, ka := range in.RequestItems {
					keys += len(ka.Keys)
				}
			}}
			m := newManager(db, f.env.Config, f.clock, nil)
			for _, d := range []time.Duration{0, 23*time.Hour + 59*time.Minute + 30*time.Second, 40 * 24 * time.Hour} {
				f.clock.Advance(d)
				reads, keys = 0, 0
				if _, _, err := m.Count(context.Background()); err != nil {
					t.Fatal(err)
				}
				if reads != 1 || keys > tc.wantItems || keys > 10 {
					t.Fatalf("at +%v: %d reads of %d items, want 1 of at most %d", d, reads, keys, tc.wantItems)
				}
			}
		})
	}
}

// TestCountAfterConfigChange: counters written under a longer configuration
// make the count approximate while such sessions may still be counted; a
// longer configuration than the sessions' is exact.
func TestCountAfterConfigChange(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "7200", "SESSION_MAX_LIFETIME": "14400"})
	ctx := context.Background()
	u := f.user(t, "configured", users.RoleStaffTester)
	f.clock.Advance(time.Hour) // off the day boundary, where only whole days are clipped
	if _, _, err := f.mgr.Create(ctx, u); err != nil {
		t.Fatal(err)
	}
	with := func(idle, lifetime time.Duration) *Manager {
		cfg := f.env.Config
		cfg.SessionTTL, cfg.SessionMaxLifetime = idle, lifetime
		return newManager(f.env.Client, cfg, f.clock, nil)
	}
	if n, approximate, _ := with(4*time.Hour, 8*time.Hour).Count(ctx); n != 1 || approximate {
		t.Fatalf("raised: %d %v, want 1 exact", n, approximate)
	}
	// Clipped at the hour for hours of the current day: a session counted at
	// +2 h is beyond the hour in which a 30-minute horizon ends.
	lowered := with(30*time.Minute, 14400*time.Second)
	if n, approximate, _ := lowered.Count(ctx); n != 0 || !approximate {
		t.Fatalf("lowered: %d %v, want 0 (beyond its horizon) and approximate", n, approximate)
	}
	f.clock.Advance(2*time.Hour + ConfigRefresh + ClockSkew + time.Second) // the longer configuration's sessions are all gone
	if n, approximate, _ := lowered.Count(ctx); n != 0 || approximate {
		t.Fatalf("lowered, later: %d %v, want 0 exact", n, approximate)
	}
}

// TestUncountedSessionIsAdopted: a session item without countedExpiry (one
// written before the counters existed) is counted from its next touch.
func TestUncountedSessionIsAdopted(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TOUCH_INTERVAL": "60"})
	ctx := context.Background()
	u := f.user(t, "legacy", users.RoleStaffTester)
	tok, s, _ := f.mgr.Create(ctx, u)
	legacy := *s
	legacy.CountedExpiry = 0
	item, err := attributevalue.MarshalMap(&legacy)
	if err != nil {
		t.Fatal(err)
	}
	// Replace the item and take it off the counters, as if written before them.
	if _, err := f.env.Client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(f.env.Tables.Sessions), Item: item}); err != nil {
		t.Fatal(err)
	}
	w := newCountWrites(f.clock.Now().UnixMilli())
	w.add(s.CountedExpiry, -1)
	if _, err := f.mgr.applyCounts(ctx, w); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := f.mgr.Count(ctx); n != 0 {
		t.Fatalf("count %d before the touch", n)
	}
	f.clock.Advance(61 * time.Second)
	if s, _, _ := f.mgr.Validate(ctx, tok); s == nil {
		t.Fatal("rejected")
	}
	f.checkCount(t, f.mgr, "after the adopting touch")
	if n, _, _ := f.mgr.Count(ctx); n != 1 {
		t.Fatalf("count %d after the touch, want 1", n)
	}
}

// TestListAllSkipsCounterItems: the scan behind ?all=true meets the counter
// items; they are never listed and a cursor stopping on one is accepted.
func TestListAllSkipsCounterItems(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	u := f.user(t, "scanned", users.RoleStaffTester)
	for i := 0; i < 3; i++ {
		if _, _, err := f.mgr.Create(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		page, err := f.mgr.ListAll(ctx, 1, cursor)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		for _, s := range page.Sessions {
			if !validHash(s.Hash) || seen[s.Hash] {
				t.Fatalf("listed %q", s.Hash)
			}
			seen[s.Hash] = true
		}
		pages++
		if cursor = page.Cursor; cursor == "" {
			break
		}
	}
	if len(seen) != 3 || pages < 4 {
		t.Fatalf("%d sessions in %d pages, want 3 among the counter items", len(seen), pages)
	}
}

// TestIndexProjectsWhatTheCodeReads: template.yaml's userId-index projects
// exactly IndexAttributes, which the listings and the end of all sessions
// read from it without reading the items.
func TestIndexProjectsWhatTheCodeReads(t *testing.T) {
	tmpl, err := samtemplate.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tmpl.Tables {
		if tb.LogicalID != "SessionsTable" {
			continue
		}
		for _, g := range tb.GlobalSecondaryIndexes {
			if g.IndexName == UserIndex {
				if g.Projection.ProjectionType != "INCLUDE" || !slices.Equal(g.Projection.NonKeyAttributes, IndexAttributes) {
					t.Fatalf("%s projects %s %v, want INCLUDE %v", UserIndex, g.Projection.ProjectionType, g.Projection.NonKeyAttributes, IndexAttributes)
				}
				return
			}
		}
	}
	t.Fatalf("no %s on SessionsTable in template.yaml", UserIndex)
}
