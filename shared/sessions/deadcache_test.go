package sessions

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// counted returns a new instance (its own client, empty caches) whose
// DynamoDB calls are counted.
func (f *fixture) counted(t *testing.T) (*Manager, *store.CallCounter) {
	t.Helper()
	calls := &store.CallCounter{}
	return newManager(f.env.NewClient(t, calls.Option()), f.env.Config, f.clock, nil), calls
}

// setUser writes fields of a user item directly, as an operator editing the
// table by hand would (no session-version bump).
func (f *fixture) setUser(t *testing.T, userID string, active bool) {
	t.Helper()
	_, err := f.env.Client.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(f.env.Tables.Users), Key: users.Key(userID),
		UpdateExpression:          aws.String("SET active = :a"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":a": &types.AttributeValueMemberBOOL{Value: active}},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNegativeCache: a token whose session is dead for good costs one
// BatchGetItem per instance, however often it is presented; a rejection
// that is not provably permanent, and a valid session, are never remembered.
func TestNegativeCache(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200"})
	ctx := context.Background()
	actor := users.Actor{Username: "test"}
	tests := []struct {
		name  string
		setup func(t *testing.T, u *users.User) string // returns the token, the clock already where it is checked
		valid bool                                     // the token is valid when checked (twice)
		reads int                                      // BatchGetItems for two validations
	}{
		{"valid session is never cached", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			return tok
		}, true, 2},
		{"never issued", func(t *testing.T, u *users.User) string {
			tok, _ := NewToken(u.ID)
			return tok
		}, false, 1},
		{"unknown user", func(t *testing.T, u *users.User) string {
			tok, _ := NewToken("nobody_" + u.ID)
			return tok
		}, false, 1},
		{"logged out", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			if ok, err := f.mgr.Logout(ctx, tok); !ok || err != nil {
				t.Fatalf("logout: %v %v", ok, err)
			}
			return tok
		}, false, 1},
		{"absolute expiry", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			f.clock.Advance(50 * time.Minute)
			f.mgr.Validate(ctx, tok) // touched: never idle
			f.clock.Advance(50 * time.Minute)
			f.mgr.Validate(ctx, tok)
			f.clock.Advance(20 * time.Minute) // exactly 2 h
			return tok
		}, false, 1},
		{"idle expiry past the clock skew", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			f.clock.Advance(time.Hour + ClockSkew)
			return tok
		}, false, 1},
		{"ended by a session-version bump", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			if _, err := f.users.EndSessions(ctx, actor, u.ID); err != nil {
				t.Fatal(err)
			}
			return tok
		}, false, 1},
		{"deactivated then reactivated", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			if _, err := f.users.Deactivate(ctx, actor, u.ID); err != nil {
				t.Fatal(err)
			}
			active := true
			if _, _, err := f.users.Update(ctx, actor, u.ID, users.Changes{Active: &active}); err != nil {
				t.Fatal(err)
			}
			return tok
		}, false, 1},
		// Not provably permanent: read again every time.
		{"idle expiry within the clock skew", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			f.clock.Advance(time.Hour)
			return tok
		}, false, 2},
		{"inactive by a hand edit, same version", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			f.setUser(t, u.ID, false)
			return tok
		}, false, 2},
		{"user item deleted by hand", func(t *testing.T, u *users.User) string {
			tok, _, _ := f.mgr.Create(ctx, u)
			if _, err := f.env.Client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(f.env.Tables.Users), Key: users.Key(u.ID)}); err != nil {
				t.Fatal(err)
			}
			return tok
		}, false, 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := f.user(t, fmt.Sprintf("neg_%02d", i), users.RoleStaffTester)
			tok := tc.setup(t, u)
			m, calls := f.counted(t)
			for n := 1; n <= 2; n++ {
				s, _, err := m.Validate(ctx, tok)
				if err != nil || (s != nil) != tc.valid {
					t.Fatalf("validation %d: session %v, err %v; want valid=%v", n, s != nil, err, tc.valid)
				}
			}
			if got := calls.Count("BatchGetItem"); got != tc.reads {
				t.Fatalf("two validations cost %d BatchGetItem, want %d", got, tc.reads)
			}
		})
	}
}

// TestNegativeCacheOnlyPermanent: the rejections left out of the cache are
// the ones that can turn valid again, which is why they are left out.
func TestNegativeCacheOnlyPermanent(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600"})
	ctx := context.Background()
	m, _ := f.counted(t)

	// An inactive flag set and cleared by hand, without a version bump.
	u := f.user(t, "hand_edit", users.RoleStaffTester)
	tok, _, _ := f.mgr.Create(ctx, u)
	f.setUser(t, u.ID, false)
	if s, _, _ := m.Validate(ctx, tok); s != nil {
		t.Fatal("inactive user's session accepted")
	}
	f.setUser(t, u.ID, true)
	if s, _, _ := m.Validate(ctx, tok); s == nil {
		t.Fatal("the session of a user re-activated by hand stayed rejected")
	}

	// An idle expiry decided only by this instance's lower SESSION_TTL: an
	// instance with the longer one still sees the session live and slides it.
	v := f.user(t, "lowered_ttl", users.RoleStaffTester)
	long := f.env.Config
	long.SessionTTL = 2 * time.Hour
	longer := newManager(f.env.Client, long, f.clock, nil)
	tok2, _, err := longer.Create(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour + 2*ClockSkew)
	if s, _, _ := m.Validate(ctx, tok2); s != nil {
		t.Fatal("idle-expired under this instance's SESSION_TTL, yet accepted")
	}
	if s, _, _ := longer.Validate(ctx, tok2); s == nil {
		t.Fatal("the longer-TTL instance rejected a live session")
	}
	if s, _, _ := m.Validate(ctx, tok2); s == nil {
		t.Fatal("a session slid by another instance stayed rejected here")
	}
}

// TestLoggedOutElsewhere: no instance caches a valid session, so a logout
// or a revocation on instance A is seen by instance B on its next request.
func TestLoggedOutElsewhere(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	u := f.user(t, "two_instances", users.RoleStaffTester)
	a, aCalls := f.counted(t)
	b, bCalls := f.counted(t)

	tok, _, _ := a.Create(ctx, u)
	for i := 0; i < 3; i++ {
		if s, _, err := b.Validate(ctx, tok); s == nil || err != nil {
			t.Fatalf("B validate %d: %v", i, err)
		}
	}
	if n := bCalls.Count("BatchGetItem"); n != 3 {
		t.Fatalf("B made %d reads for 3 validations of a valid session, want 3", n)
	}
	if ok, err := a.Logout(ctx, tok); !ok || err != nil {
		t.Fatalf("logout on A: %v %v", ok, err)
	}
	if s, _, _ := b.Validate(ctx, tok); s != nil {
		t.Fatal("B accepted a session logged out on A")
	}
	// A deleted the item, so it remembers the token without reading it.
	aCalls.Reset()
	if s, _, _ := a.Validate(ctx, tok); s != nil || aCalls.Total() != 0 {
		t.Fatalf("A after its own logout: session %v, %d calls", s != nil, aCalls.Total())
	}

	// The same for a version bump (PATCH, DELETE /api/sessions) on another instance.
	tok2, _, _ := a.Create(ctx, u)
	if s, _, _ := b.Validate(ctx, tok2); s == nil {
		t.Fatal("B rejected a fresh session")
	}
	if _, err := f.users.EndSessions(ctx, users.Actor{Username: "test"}, u.ID); err != nil {
		t.Fatal(err)
	}
	if s, _, _ := b.Validate(ctx, tok2); s != nil {
		t.Fatal("B accepted a session ended by a version bump")
	}
}

// flakyDB fails BatchGetItem while down is set, as an unreachable store would.
type flakyDB struct {
	*dynamodb.Client
	down atomic.Bool
}

func (d *flakyDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	if d.down.Load() {
		return nil, errors.New("store unreachable")
	}
	return d.Client.BatchGetItem(ctx, in, opts...)
}

// TestNegativeCacheNotOnError: a store error is an error, never a dead token.
func TestNegativeCacheNotOnError(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	calls := &store.CallCounter{}
	db := &flakyDB{Client: f.env.NewClient(t, calls.Option())}
	m := newManager(db, f.env.Config, f.clock, nil)
	tok, _ := NewToken("someone")
	db.down.Store(true)
	if _, _, err := m.Validate(ctx, tok); err == nil {
		t.Fatal("a store error was not reported")
	}
	if m.dead.len() != 0 {
		t.Fatal("a store error was cached")
	}
	db.down.Store(false)
	for i := 0; i < 2; i++ {
		if s, _, err := m.Validate(ctx, tok); s != nil || err != nil {
			t.Fatalf("validate %d: %v %v", i, s != nil, err)
		}
	}
	if n := calls.Count("BatchGetItem"); n != 1 {
		t.Fatalf("after the store came back: %d reads, want 1 (then cached)", n)
	}
}

// TestNegativeCacheBound: the cache holds at most its size, evicting the
// oldest entries, and an entry is trusted for DeadCacheTTL at most. An
// evicted or aged-out dead token is read again and still rejected: the cache
// only ever saves reads, never decides to admit.
func TestNegativeCacheBound(t *testing.T) {
	t.Run("set", func(t *testing.T) {
		d := newDeadSet(DeadCacheSize, DeadCacheTTL)
		key := func(i int) tokenKey { return sha256.Sum256(fmt.Appendf(nil, "token-%d", i)) }
		const extra = 500
		for i := 0; i < DeadCacheSize+extra; i++ {
			d.add(key(i), 1000)
		}
		if d.len() != DeadCacheSize || len(d.ring) != DeadCacheSize {
			t.Fatalf("holds %d entries (ring %d), bound %d", d.len(), len(d.ring), DeadCacheSize)
		}
		for _, tc := range []struct {
			i    int
			want bool
		}{{0, false}, {extra - 1, false}, {extra, true}, {DeadCacheSize + extra - 1, true}} {
			if got := d.has(key(tc.i), 1000); got != tc.want {
				t.Errorf("entry %d held = %v, want %v", tc.i, got, tc.want)
			}
		}
		d.add(key(extra), 2000) // a refresh does not grow it
		if d.len() != DeadCacheSize {
			t.Fatalf("a refresh grew the set to %d", d.len())
		}
		last := key(DeadCacheSize + extra - 1)
		ttl := DeadCacheTTL.Milliseconds()
		if !d.has(last, 1000+ttl-1) || d.has(last, 1000+ttl) || d.has(last, 999) {
			t.Fatal("an entry is trusted outside [added, added+DeadCacheTTL)")
		}
	})
	t.Run("manager", func(t *testing.T) {
		f := newFixture(t, nil)
		ctx := context.Background()
		m, calls := f.counted(t)
		m.dead = newDeadSet(3, DeadCacheTTL)
		var toks []string
		for i := 0; i < 4; i++ {
			tok, _ := NewToken(fmt.Sprintf("ghost_%d", i))
			toks = append(toks, tok)
			m.Validate(ctx, tok)
		}
		if m.dead.len() != 3 {
			t.Fatalf("cache holds %d, bound 3", m.dead.len())
		}
		calls.Reset()
		for _, tok := range toks[1:] {
			m.Validate(ctx, tok)
		}
		if calls.Total() != 0 {
			t.Fatalf("the 3 newest dead tokens cost %d calls", calls.Total())
		}
		if s, _, _ := m.Validate(ctx, toks[0]); s != nil || calls.Count("BatchGetItem") != 1 {
			t.Fatal("the evicted token was not read again and rejected")
		}
		f.clock.Advance(DeadCacheTTL)
		calls.Reset()
		if s, _, _ := m.Validate(ctx, toks[3]); s != nil || calls.Count("BatchGetItem") != 1 {
			t.Fatal("an aged-out entry was not read again and rejected")
		}
	})
}

// TestEndedItemLeavesCount: a session ended by a version bump whose item
// survived (the cleanup missed it) is counted until its token is presented,
// which marks the item expired.
func TestEndedItemLeavesCount(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	u := f.user(t, "bumped", users.RoleStaffTester)
	tok, s, _ := f.mgr.Create(ctx, u)
	f.mgr.Create(ctx, u)
	if _, err := f.users.EndSessions(ctx, users.Actor{Username: "test"}, u.ID); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := f.mgr.Count(ctx); n != 2 {
		t.Fatalf("count before the token is presented = %d, want the 2 surviving items", n)
	}
	if sess, _, _ := f.mgr.Validate(ctx, tok); sess != nil {
		t.Fatal("ended session accepted")
	}
	if n, _, _ := f.mgr.Count(ctx); n != 1 {
		t.Fatalf("count after = %d, want 1", n)
	}
	if f.item(t, s.Hash)["idleExpiresAt"].(*types.AttributeValueMemberN).Value != fmt.Sprint(epoch.UnixMilli()) {
		t.Fatal("the ended item was not marked expired")
	}
}
