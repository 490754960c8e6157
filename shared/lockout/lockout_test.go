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
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

func newGuard(t *testing.T, policy lockout.Policy) (*lockout.Guard, *clock.Fake, *dynamotest.Env, *store.CallCounter) {
	t.Helper()
	calls := &store.CallCounter{}
	env := dynamotest.New(t, "auth", nil, calls.Option())
	fake := clock.NewFake(epoch)
	return lockout.New(env.Client, env.Tables.LoginAttempts, fake, policy, keyring.New(env.NewClient(t), env.Tables.Users, fake, nil)), fake, env, calls
}

// secret stands for the deployment key's subkey in the tests of the counters.
var secret = []byte("lockout-test-subkey-0123456789ab")

func newKey(username, ip string) lockout.Key { return lockout.NewKey(secret, username, ip, "") }

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
	a, b := newKey("Alice", "2001:db8::1"), newKey("alice", "2001:db8::2")
	if a != b {
		t.Fatal("same user (any case) in the same /64 must share counters")
	}
	if c := newKey("alice", "198.51.100.1"); c.Pair == a.Pair || c.User != a.User {
		t.Fatal("another address must have its own pair counter but the same username counter")
	}
}

func TestPairLock(t *testing.T) {
	g, fake, _, _ := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := newKey("bob", "198.51.100.1")
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
	key := newKey("carol", "198.51.100.2")
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
	home := newKey("dave", "198.51.100.50")
	st, _ := g.Check(ctx, home)
	if err := g.RecordSuccess(ctx, home, st); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		k := newKey("dave", fmt.Sprintf("203.0.113.%d", i))
		st, _ := g.Check(ctx, k)
		if st.Locked {
			t.Fatalf("address %d locked early", i)
		}
		if err := g.RecordFailure(ctx, k, st); err != nil {
			t.Fatal(err)
		}
	}
	st, _ = g.Check(ctx, newKey("dave", "203.0.113.200"))
	if !st.Locked || st.Reason != "username" || st.RetryAfter != 15*time.Minute {
		t.Fatalf("new address after the soft limit: %+v", st)
	}
	if st, _ := g.Check(ctx, home); st.Locked {
		t.Fatal("the soft limit locked out the user's trusted address")
	}
	if st, _ := g.Check(ctx, newKey("erin", "203.0.113.200")); st.Locked {
		t.Fatal("another username was limited")
	}
	fake.Advance(15 * time.Minute)
	if st, _ := g.Check(ctx, newKey("dave", "203.0.113.200")); st.Locked {
		t.Fatal("the username window did not end")
	}
}

func TestSuccessWritesOnlyWhenNeeded(t *testing.T) {
	g, fake, _, calls := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := newKey("frank", "198.51.100.9")
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
	key := newKey("gina", "198.51.100.3")
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

// TestCurveStaysAtCap (finding 2): a pair that keeps failing, waiting out
// each lock exactly, gets one attempt per 15 min lock once at the cap: the
// counter outlives the lock instead of expiring with it.
func TestCurveStaysAtCap(t *testing.T) {
	g, fake, _, _ := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	key := newKey("henry", "198.51.100.60")
	start := fake.Now()
	perHour := map[int]int{}
	for fake.Now().Sub(start) < 6*time.Hour {
		st, err := g.Check(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if st.Locked {
			fake.Advance(st.RetryAfter)
			continue
		}
		perHour[int(fake.Now().Sub(start)/time.Hour)]++
		if err := g.RecordFailure(ctx, key, st); err != nil {
			t.Fatal(err)
		}
		fake.Advance(time.Second)
	}
	t.Logf("attempts per hour: %v", perHour)
	for h := 1; h < 6; h++ {
		if n := perHour[h]; n < 3 || n > 5 {
			t.Errorf("hour %d: %d attempts, want about 4 (one per 15 min lock)", h+1, n)
		}
	}
	// Once the guessing stops, the counter expires a window after the last lock.
	st, _ := g.Check(ctx, key)
	fake.Advance(st.RetryAfter + lockout.DefaultPolicy.Window)
	if st, _ := g.Check(ctx, key); st.Locked || st.Failures() != 0 {
		t.Fatalf("a window after the last lock: %+v", st)
	}
}

// TestDeviceCounter (finding 1): a valid device cookie lifts the username's
// soft limit, and the device has its own lock on the pair's curve, whatever
// the addresses the failures come from.
func TestDeviceCounter(t *testing.T) {
	policy := lockout.DefaultPolicy
	policy.UserLimit = 6
	g, _, _, _ := newGuard(t, policy)
	ctx := context.Background()
	for i := 0; i < 6; i++ {
		k := newKey("ivy", fmt.Sprintf("203.0.113.%d", i))
		st, _ := g.Check(ctx, k)
		if err := g.RecordFailure(ctx, k, st); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := g.Check(ctx, newKey("ivy", "192.0.2.1")); !st.Locked || st.Reason != "username" {
		t.Fatalf("no device cookie after the soft limit: %+v", st)
	}
	device := func(ip string) lockout.Key { return lockout.NewKey(secret, "ivy", ip, "device-1") }
	if st, _ := g.Check(ctx, device("192.0.2.1")); st.Locked {
		t.Fatalf("valid device cookie after the soft limit: %+v", st)
	}
	for i := 0; i < 5; i++ {
		k := device(fmt.Sprintf("192.0.2.%d", 10+i))
		st, _ := g.Check(ctx, k)
		if st.Locked {
			t.Fatalf("device failure %d refused early: %+v", i+1, st)
		}
		if err := g.RecordFailure(ctx, k, st); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := g.Check(ctx, device("192.0.2.99"))
	if !st.Locked || st.Reason != "device" || st.RetryAfter != time.Second {
		t.Fatalf("device after 5 failures: %+v", st)
	}
	if st, _ := g.Check(ctx, lockout.NewKey(secret, "ivy", "192.0.2.99", "device-2")); st.Locked {
		t.Fatalf("another device was locked: %+v", st)
	}
}

// TestKeysUseTheDeploymentKey (finding 6): the guard's keys are HMACs under
// the keyring's subkey; another deployment's key gives other counters.
func TestKeysUseTheDeploymentKey(t *testing.T) {
	g, fake, env, _ := newGuard(t, lockout.DefaultPolicy)
	ctx := context.Background()
	k, err := g.Key(ctx, "Jack", "198.51.100.70", "")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := keyring.New(env.Client, env.Tables.Users, fake, nil).Subkey(ctx, "lockout")
	if err != nil {
		t.Fatal(err)
	}
	if k != lockout.NewKey(sub, "jack", "198.51.100.70", "") {
		t.Fatalf("guard key %+v is not the keyring's", k)
	}
	if k == newKey("jack", "198.51.100.70") {
		t.Fatal("the key does not depend on the deployment key")
	}
}
