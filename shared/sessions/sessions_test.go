package sessions

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// newManager builds a Manager from a function's configuration, as platform does.
func newManager(db API, cfg config.Config, clk clock.Clock, logger *slog.Logger) *Manager {
	return New(db, Tables{Sessions: cfg.Tables.Sessions, Users: cfg.Tables.Users},
		Config{IdleTTL: cfg.SessionTTL, MaxLifetime: cfg.SessionMaxLifetime, TouchInterval: cfg.SessionTouchInterval}, nil, clk, logger)
}

type fixture struct {
	env   *dynamotest.Env
	clock *clock.Fake
	mgr   *Manager
	users *users.Store
}

func newFixture(t *testing.T, overrides map[string]string) *fixture {
	t.Helper()
	env := dynamotest.New(t, "session", overrides)
	fake := clock.NewFake(epoch)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{env: env, clock: fake, mgr: newManager(env.Client, env.Config, fake, logger), users: users.New(env.Client, env.Tables.Users, fake, logger)}
	f.mgr.UseCursorKeys(keyring.New(env.Client, env.Tables.Users, fake, nil))
	if err := f.users.Roles().Seed(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) user(t *testing.T, name, role string) *users.User {
	t.Helper()
	u, err := f.users.Create(context.Background(), users.Actor{Username: "test"}, users.NewUser{Username: name, Password: "password-123", Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) item(t *testing.T, hash string) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.env.Client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(f.env.Tables.Sessions), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: hash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

// TestTouchCannotResurrect: the idle refresh of a session deleted, revoked
// or expired after it was read writes nothing.
func TestTouchCannotResurrect(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200"})
	ctx := context.Background()
	u := f.user(t, "toucher", users.RoleStaffTester)

	tok, s, err := f.mgr.Create(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.mgr.Logout(ctx, tok); !ok || err != nil {
		t.Fatalf("logout: %v %v", ok, err)
	}
	f.clock.Advance(2 * time.Minute)
	f.mgr.touch(ctx, s, f.clock.Now().UnixMilli())
	if f.item(t, s.Hash) != nil {
		t.Fatal("touch recreated a deleted session")
	}

	_, s2, _ := f.mgr.Create(ctx, u)
	f.clock.Advance(61 * time.Minute) // idle-expired
	before := f.item(t, s2.Hash)
	f.mgr.touch(ctx, s2, f.clock.Now().UnixMilli())
	if after := f.item(t, s2.Hash); after["lastActivity"].(*types.AttributeValueMemberN).Value != before["lastActivity"].(*types.AttributeValueMemberN).Value {
		t.Fatal("touch revived an idle-expired session")
	}

	_, s3, _ := f.mgr.Create(ctx, u)
	stale := *s3
	stale.SessionVersion-- // the user's version moved on: a revoked session
	f.clock.Advance(2 * time.Minute)
	f.mgr.touch(ctx, &stale, f.clock.Now().UnixMilli())
	if f.item(t, s3.Hash)["lastActivity"].(*types.AttributeValueMemberN).Value != "4102448580000" {
		t.Fatalf("touch with a stale version wrote: %v", f.item(t, s3.Hash)["lastActivity"])
	}
}

func TestIdleNeverPassesAbsolute(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "5400", "SESSION_TOUCH_INTERVAL": "0"})
	ctx := context.Background()
	u := f.user(t, "bounded", users.RoleStaffTester)
	tok, _, _ := f.mgr.Create(ctx, u)
	f.clock.Advance(50 * time.Minute)
	s, _, err := f.mgr.Validate(ctx, tok)
	if err != nil || s == nil {
		t.Fatalf("validate: %v", err)
	}
	if s.IdleExpiresAt != epoch.Add(90*time.Minute).UnixMilli() || s.TTL != epoch.Add(90*time.Minute).Unix() {
		t.Fatalf("idle expiry %d / ttl %d ran past the absolute expiry", s.IdleExpiresAt, s.TTL)
	}
}

// TestLoweredConfigApplies: sessions created under a longer SESSION_TTL
// follow a shorter one configured later.
func TestLoweredConfigApplies(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "86400"})
	ctx := context.Background()
	u := f.user(t, "lowered", users.RoleStaffTester)
	tok, _, _ := f.mgr.Create(ctx, u)
	cfg := f.env.Config
	cfg.SessionTTL = time.Hour
	m2 := newManager(f.env.Client, cfg, f.clock, nil)
	f.clock.Advance(61 * time.Minute)
	if s, _, _ := m2.Validate(ctx, tok); s != nil {
		t.Fatal("a lowered SESSION_TTL did not apply to an existing session")
	}
	if s, _, _ := f.mgr.Validate(ctx, tok); s == nil {
		t.Fatal("under the old configuration the session is still live")
	}
}

func TestCountFindDeleteAll(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600"})
	ctx := context.Background()
	a := f.user(t, "user_a", users.RoleStaffTester)
	b := f.user(t, "user_b", users.RoleStaffTester)
	var aHashes []string
	for i := 0; i < 3; i++ {
		_, s, err := f.mgr.Create(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		aHashes = append(aHashes, s.Hash)
	}
	_, sb, _ := f.mgr.Create(ctx, b)
	if n, approx, err := f.mgr.Count(ctx); n != 4 || approx || err != nil {
		t.Fatalf("count = %d %v %v", n, approx, err)
	}
	// Find by handle: through the owner's index, or by scan for staff.
	if h, owner, _ := f.mgr.Find(ctx, sb.Handle, a.ID); h != "" || owner != "" {
		t.Fatal("found b's session among a's")
	}
	if h, owner, _ := f.mgr.Find(ctx, sb.Handle, ""); h != sb.Hash || owner != b.ID {
		t.Fatalf("scan find = %q %q", h, owner)
	}
	if h, _, _ := f.mgr.Find(ctx, HandleOf(aHashes[1]), a.ID); h != aHashes[1] {
		t.Fatal("owner find failed")
	}
	// Revoke checks the owner.
	if ok, _ := f.mgr.Revoke(ctx, sb.Hash, a.ID); ok || f.item(t, sb.Hash) == nil {
		t.Fatal("revoked another user's session")
	}
	// Listing pages through the index.
	page, err := f.mgr.ListUser(ctx, a.ID, 2, "")
	if err != nil || len(page.Sessions) != 2 || page.Cursor == "" {
		t.Fatalf("page 1: %d %q %v", len(page.Sessions), page.Cursor, err)
	}
	page2, err := f.mgr.ListUser(ctx, a.ID, 2, page.Cursor)
	if err != nil || len(page2.Sessions) != 1 {
		t.Fatalf("page 2: %d %v", len(page2.Sessions), err)
	}
	if _, err := f.mgr.ListUser(ctx, b.ID, 2, page.Cursor); err != ErrBadCursor {
		t.Fatalf("a's cursor on b's listing: %v", err)
	}
	all, err := f.mgr.ListAll(ctx, 100, "")
	if err != nil || len(all.Sessions) != 4 {
		t.Fatalf("all: %d %v", len(all.Sessions), err)
	}
	// Expired sessions leave the count while their items remain.
	f.clock.Advance(61 * time.Minute)
	if n, _, _ := f.mgr.Count(ctx); n != 0 {
		t.Fatalf("count after expiry = %d", n)
	}
	if f.item(t, sb.Hash) == nil {
		t.Fatal("item vanished")
	}
	n, err := f.mgr.DeleteAll(ctx, a.ID)
	if err != nil || n != 3 {
		t.Fatalf("delete all = %d %v", n, err)
	}
	for _, h := range aHashes {
		if f.item(t, h) != nil {
			t.Fatal("session item left after DeleteAll")
		}
	}
	if f.item(t, sb.Hash) == nil {
		t.Fatal("DeleteAll removed another user's session")
	}
}

// TestTouchOncePerInterval: two instances validating the same session in
// the same interval write the idle refresh once.
func TestTouchOncePerInterval(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TOUCH_INTERVAL": "60"})
	ctx := context.Background()
	u := f.user(t, "twice", users.RoleStaffTester)
	tok, _, _ := f.mgr.Create(ctx, u)
	other := newManager(f.env.Client, f.env.Config, f.clock, nil)
	f.clock.Advance(61 * time.Second)
	// Both read the same lastActivity; only the first write applies.
	s1, _, _ := f.mgr.Validate(ctx, tok)
	f.clock.Advance(time.Second)
	stale := *s1
	stale.LastActivity = epoch.UnixMilli() // what the other instance read before the first touch
	other.touch(ctx, &stale, f.clock.Now().UnixMilli())
	got := f.item(t, s1.Hash)["lastActivity"].(*types.AttributeValueMemberN).Value
	if want := "4102444861000"; got != want {
		t.Fatalf("lastActivity = %s, want the first touch's %s", got, want)
	}
}

// TestRevokeEndedSession: revoking a session that has already ended, while
// its item still exists, reports false like an unknown session (and deletes
// the item); only a valid session reports true.
func TestRevokeEndedSession(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "3600", "SESSION_MAX_LIFETIME": "7200"})
	ctx := context.Background()
	actor := users.Actor{Username: "test"}
	tests := []struct {
		name  string
		end   func(t *testing.T, u *users.User, tok string) // ends (or not) the session
		ended bool
	}{
		{"live", func(*testing.T, *users.User, string) {}, true},
		{"idle expired", func(t *testing.T, _ *users.User, _ string) { f.clock.Advance(time.Hour) }, false},
		{"absolute expired", func(t *testing.T, _ *users.User, tok string) {
			for i := 0; i < 3; i++ { // touched every 30 min: never idle
				f.clock.Advance(30 * time.Minute)
				if s, _, _ := f.mgr.Validate(ctx, tok); s == nil {
					t.Fatal("rejected before its absolute expiry")
				}
			}
			f.clock.Advance(30 * time.Minute) // exactly 2 h after login
		}, false},
		{"ended by a version bump", func(t *testing.T, u *users.User, _ string) {
			if _, err := f.users.EndSessions(ctx, actor, u.ID); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"user deactivated", func(t *testing.T, u *users.User, _ string) {
			if _, err := f.users.Deactivate(ctx, actor, u.ID); err != nil {
				t.Fatal(err)
			}
		}, false},
	}
	for i, tc := range tests {
		for _, via := range []string{"Revoke", "Logout"} {
			t.Run(tc.name+"/"+via, func(t *testing.T) {
				u := f.user(t, fmt.Sprintf("revoke_%d_%s", i, via), users.RoleStaffTester)
				tok, s, err := f.mgr.Create(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				tc.end(t, u, tok)
				if f.item(t, s.Hash) == nil {
					t.Fatal("item gone: the test would not prove the check")
				}
				var ok bool
				if via == "Revoke" {
					ok, err = f.mgr.Revoke(ctx, s.Hash, u.ID)
				} else {
					ok, err = f.mgr.Logout(ctx, tok)
				}
				if err != nil || ok != tc.ended {
					t.Fatalf("%s = %v, %v; want %v", via, ok, err, tc.ended)
				}
				if f.item(t, s.Hash) != nil {
					t.Fatal("the item was not deleted")
				}
			})
		}
	}
}

// TestCountAppliesConfig: the count follows the expiry rule of validation,
// including a SESSION_TTL or SESSION_MAX_LIFETIME lowered after login.
func TestCountAppliesConfig(t *testing.T) {
	f := newFixture(t, nil) // 24 h idle, 7 d absolute
	ctx := context.Background()
	u := f.user(t, "counted", users.RoleStaffTester)
	tok, _, _ := f.mgr.Create(ctx, u)
	f.clock.Advance(90 * time.Minute)
	// Under a lowered configuration the counters, kept under the longer one,
	// cannot be exact in general: the count is approximate (here exact).
	for _, tc := range []struct {
		name        string
		idle, total time.Duration
		want        int
		approximate bool
	}{
		{"lowered idle", time.Hour, 7 * 24 * time.Hour, 0, true},
		{"lowered lifetime", 24 * time.Hour, time.Hour, 0, true},
		{"as created", 24 * time.Hour, 7 * 24 * time.Hour, 1, false}, // last: its validation touches the session
	} {
		cfg := f.env.Config
		cfg.SessionTTL, cfg.SessionMaxLifetime = tc.idle, tc.total
		m := newManager(f.env.Client, cfg, f.clock, nil)
		n, approximate, err := m.Count(ctx)
		if s, _, _ := m.Validate(ctx, tok); err != nil || n != tc.want || approximate != tc.approximate || (s != nil) != (tc.want == 1) {
			t.Errorf("%s: count %d approximate %v (err %v), valid %v; want %d approximate %v", tc.name, n, approximate, err, s != nil, tc.want, tc.approximate)
		}
	}
}
