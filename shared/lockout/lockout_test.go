package lockout_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

func newGuard(t *testing.T, policy lockout.Policy) (*lockout.Guard, *clock.Fake, *dynamotest.Env, *store.CallCounter) {
	t.Helper()
	calls := &store.CallCounter{}
	env := dynamotest.New(t, "auth", nil, calls.Option())
	fake := clock.NewFake(epoch)
	return lockout.New(env.Client, env.Tables.LoginAttempts, fake, policy), fake, env, calls
}

func TestClientPrefix(t *testing.T) {
	tests := map[string]string{
		"198.51.100.7":             "198.51.100.7",
		" 198.51.100.7 ":           "198.51.100.7",
		"::ffff:198.51.100.7":      "198.51.100.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:db8:1:2::9":          "2001:db8:1:2::/64",
		"fe80::1%eth0":             "fe80::/64",
		"2001:db8:1:2::/64":        "2001:db8:1:2::/64",
		"":                         "unknown",
		"not-an-ip":                "not-an-ip",
		"2001:db8:1:2:ffff::1/128": "2001:db8:1:2:ffff::1/128",
	}
	for in, want := range tests {
		if got := lockout.ClientPrefix(in); got != want {
			t.Errorf("ClientPrefix(%q) = %q, want %q", in, got, want)
		}
	}
	a, b := lockout.NewKey("Alice", "2001:db8::1"), lockout.NewKey("alice", "2001:db8::2")
	if a != b {
		t.Fatal("same user (any case) in the same /64 must share counters")
	}
	if c := lockout.NewKey("alice", "198.51.100.1"); c.Pair == a.Pair || c.User != a.User {
		t.Fatal("another address must have its own pair counter but the same username counter")
	}
}

func TestPairLock(t *testing.T) {
	g, fake, _, _ := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := lockout.NewKey("bob", "198.51.100.1")
	for i := 1; i <= 5; i++ {
		st, err := g.Check(ctx, key)
		if err != nil || st.Locked {
			t.Fatalf("attempt %d: locked=%v err=%v", i, st.Locked, err)
		}
		if err := g.RecordFailure(ctx, key, st); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := g.Check(ctx, key)
	if !st.Locked || st.Reason != "pair" || st.RetryAfter != time.Second {
		t.Fatalf("after 5 failures: %+v", st)
	}
	fake.Advance(time.Second)
	st, _ = g.Check(ctx, key)
	if st.Locked || st.Failures() != 5 {
		t.Fatalf("after the lock: %+v", st)
	}
	if err := g.RecordSuccess(ctx, key, st); err != nil {
		t.Fatal(err)
	}
	st, _ = g.Check(ctx, key)
	if st.Locked || st.Failures() != 0 {
		t.Fatalf("after a success: %+v", st)
	}
}

// TestConcurrentFailures: failures arriving at once are all counted.
func TestConcurrentFailures(t *testing.T) {
	g, _, _, _ := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := lockout.NewKey("carol", "198.51.100.2")
	st, err := g.Check(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.RecordFailure(ctx, key, st); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, _ = g.Check(ctx, key)
	if st.Failures() != 12 || !st.Locked {
		t.Fatalf("after 12 concurrent failures: failures=%d locked=%v", st.Failures(), st.Locked)
	}
	if st.RetryAfter <= 0 || st.RetryAfter > 128*time.Second {
		t.Fatalf("lock of %v", st.RetryAfter)
	}
}

// TestUsernameSoftLimit: failures spread over many addresses hit the
// per-username limit, which refuses new addresses but not one that logged
// in successfully before.
func TestUsernameSoftLimit(t *testing.T) {
	policy := lockout.DefaultPolicy
	policy.UserLimit = 6 // DefaultPolicy's 50 works the same; fewer attempts keep the test fast
	g, fake, _, _ := newGuard(t, policy)
	ctx := context.Background()
	home := lockout.NewKey("dave", "198.51.100.50")
	st, _ := g.Check(ctx, home)
	if err := g.RecordSuccess(ctx, home, st); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		k := lockout.NewKey("dave", fmt.Sprintf("203.0.113.%d", i))
		st, _ := g.Check(ctx, k)
		if st.Locked {
			t.Fatalf("address %d locked early", i)
		}
		if err := g.RecordFailure(ctx, k, st); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = g.Check(ctx, lockout.NewKey("dave", "203.0.113.200"))
	if !st.Locked || st.Reason != "username" || st.RetryAfter != 15*time.Minute {
		t.Fatalf("new address after the soft limit: %+v", st)
	}
	if st, _ := g.Check(ctx, home); st.Locked {
		t.Fatal("the soft limit locked out the user's trusted address")
	}
	if st, _ := g.Check(ctx, lockout.NewKey("erin", "203.0.113.200")); st.Locked {
		t.Fatal("another username was limited")
	}
	fake.Advance(15 * time.Minute)
	if st, _ := g.Check(ctx, lockout.NewKey("dave", "203.0.113.200")); st.Locked {
		t.Fatal("the username window did not end")
	}
}

func TestSuccessWritesOnlyWhenNeeded(t *testing.T) {
	g, fake, _, calls := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := lockout.NewKey("frank", "198.51.100.9")
	st, _ := g.Check(ctx, key)
	calls.Reset()
	if err := g.RecordSuccess(ctx, key, st); err != nil {
		t.Fatal(err)
	}
	if calls.Count("UpdateItem") != 1 {
		t.Fatalf("first success from an address: %v", calls.Snapshot())
	}
	st, _ = g.Check(ctx, key)
	calls.Reset()
	if err := g.RecordSuccess(ctx, key, st); err != nil {
		t.Fatal(err)
	}
	if calls.Total() != 0 {
		t.Fatalf("a repeat success wrote: %v", calls.Snapshot())
	}
	fake.Advance(16 * 24 * time.Hour) // past half the trust: refreshed once
	st, _ = g.Check(ctx, key)
	calls.Reset()
	_ = g.RecordSuccess(ctx, key, st)
	if calls.Count("UpdateItem") != 1 {
		t.Fatalf("trust refresh: %v", calls.Snapshot())
	}
}

func TestCheckReadsExtraInOneCall(t *testing.T) {
	g, _, env, calls := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	_, err := env.Client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(env.Tables.Users),
		Item:      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "user#gina"}, "name": &types.AttributeValueMemberS{Value: "Gina"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	key := lockout.NewKey("gina", "198.51.100.3")
	calls.Reset()
	keys := g.Keys(key)
	gina := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "user#gina"}}
	nobody := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "user#nobody"}}
	keys[env.Tables.Users] = append(keys[env.Tables.Users], gina, nobody)
	items, err := store.BatchGet(ctx, env.Client, keys)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Evaluate(key, items); err != nil {
		t.Fatal(err)
	}
	extra := []map[string]types.AttributeValue{items.Find(env.Tables.Users, gina), items.Find(env.Tables.Users, nobody)}
	if calls.Total() != 1 || calls.Count("BatchGetItem") != 1 {
		t.Fatalf("calls: %v", calls.Snapshot())
	}
	if extra[0] == nil || extra[0]["name"].(*types.AttributeValueMemberS).Value != "Gina" || extra[1] != nil {
		t.Fatalf("extra = %v", extra)
	}
}
