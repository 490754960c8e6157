package keyring_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

func keyItems(t *testing.T, env *dynamotest.Env) int {
	t.Helper()
	out, err := env.Client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(env.Tables.Users), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, it := range out.Items {
		if it["pk"].(*types.AttributeValueMemberS).Value == keyring.ItemKey {
			n++
		}
	}
	return n
}

// TestConcurrentFirstUses (finding 6): instances that need the key at the
// same moment on a fresh table end with one key, the same for all.
func TestConcurrentFirstUses(t *testing.T) {
	env := dynamotest.New(t, "auth", nil)
	fake := clock.NewFake(apitest.Epoch)
	const instances = 8
	subkeys := make([][]byte, instances)
	errs := make([]error, instances)
	var wg sync.WaitGroup
	for i := range instances {
		k := keyring.New(env.NewClient(t), env.Tables.Users, fake, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			subkeys[i], errs[i] = k.Subkey(context.Background(), "test")
		}()
	}
	wg.Wait()
	for i := range instances {
		if errs[i] != nil {
			t.Fatalf("instance %d: %v", i, errs[i])
		}
		if !bytes.Equal(subkeys[i], subkeys[0]) {
			t.Fatalf("instance %d derived another key", i)
		}
	}
	if n := keyItems(t, env); n != 1 {
		t.Fatalf("%d key items, want 1", n)
	}
}

// TestSealTamperEvident: a sealed value opens as sealed; one bit changed
// anywhere, another purpose, or another deployment's key is ErrInvalid.
func TestSealTamperEvident(t *testing.T) {
	env := dynamotest.New(t, "auth", nil)
	fake := clock.NewFake(apitest.Epoch)
	ctx := context.Background()
	k := keyring.New(env.Client, env.Tables.Users, fake, nil)
	plain := []byte(`{"pk":"user#someone"}`)
	sealed, err := k.Seal(ctx, "cursor", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(sealed), []byte("someone")) {
		t.Fatal("the sealed value shows its plaintext")
	}
	if got, err := k.Open(ctx, "cursor", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open = %q %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(sealed)
	for i := range raw {
		for b := range 8 {
			edited := append([]byte(nil), raw...)
			edited[i] ^= 1 << b
			if _, err := k.Open(ctx, "cursor", base64.RawURLEncoding.EncodeToString(edited)); !errors.Is(err, keyring.ErrInvalid) {
				t.Fatalf("byte %d bit %d edited: %v", i, b, err)
			}
		}
	}
	if _, err := k.Open(ctx, "device-cookie", sealed); !errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("another purpose: %v", err)
	}
	other := dynamotest.New(t, "auth", nil)
	if _, err := keyring.New(other.Client, other.Tables.Users, fake, nil).Open(ctx, "cursor", sealed); !errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("another deployment: %v", err)
	}
	v, mac, err := k.Sign(ctx, "device-cookie", plain)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := k.Verify(ctx, "device-cookie", v, plain, mac); !ok || err != nil {
		t.Fatalf("verify = %v %v", ok, err)
	}
	if ok, _ := k.Verify(ctx, "device-cookie", v, append(plain, '!'), mac); ok {
		t.Fatal("a MAC verified other data")
	}
}

// TestRotation: after a rotation, values sealed or signed under the
// previous key are still accepted, the hashing subkey changes (counters
// start afresh), and after a second rotation the oldest key is refused. An
// instance holding the old key reads the new one when shown its version.
func TestRotation(t *testing.T) {
	env := dynamotest.New(t, "auth", nil)
	fake := clock.NewFake(apitest.Epoch)
	ctx := context.Background()
	warm := keyring.New(env.Client, env.Tables.Users, fake, nil)
	sub1, err := warm.Subkey(ctx, "ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	v1Sealed, _ := warm.Seal(ctx, "cursor", []byte("one"))
	v1, mac1, _ := warm.Sign(ctx, "device-cookie", []byte("one"))

	r, err := keyring.Rotate(ctx, env.Client, env.Tables.Users, fake, nil)
	if err != nil || r.Version != 2 || r.Previous != 1 {
		t.Fatalf("rotate = %+v %v", r, err)
	}
	fresh := keyring.New(env.Client, env.Tables.Users, fake, nil)
	if v, _ := fresh.Version(ctx); v != 2 {
		t.Fatalf("a new instance uses version %d", v)
	}
	if got, err := fresh.Open(ctx, "cursor", v1Sealed); err != nil || string(got) != "one" {
		t.Fatalf("previous key's cursor after one rotation: %q %v", got, err)
	}
	if ok, _ := fresh.Verify(ctx, "device-cookie", v1, []byte("one"), mac1); !ok {
		t.Fatal("previous key's MAC refused after one rotation")
	}
	if sub2, _ := fresh.Subkey(ctx, "ratelimit"); bytes.Equal(sub1, sub2) {
		t.Fatal("the hashing subkey did not change")
	}
	// The warm instance still uses version 1 until it re-reads, but a value
	// of version 2 makes it read at once.
	v2Sealed, _ := fresh.Seal(ctx, "cursor", []byte("two"))
	if got, err := warm.Open(ctx, "cursor", v2Sealed); err != nil || string(got) != "two" {
		t.Fatalf("warm instance shown the new version: %q %v", got, err)
	}
	if _, err := keyring.Rotate(ctx, env.Client, env.Tables.Users, fake, nil); err != nil {
		t.Fatal(err)
	}
	fake.Advance(keyring.RefreshAfter)
	if _, err := warm.Open(ctx, "cursor", v1Sealed); !errors.Is(err, keyring.ErrInvalid) {
		t.Fatalf("a key two rotations old: %v", err)
	}
	if got, err := warm.Open(ctx, "cursor", v2Sealed); err != nil || string(got) != "two" {
		t.Fatalf("the previous key after two rotations: %q %v", got, err)
	}
	if n := keyItems(t, env); n != 1 {
		t.Fatalf("%d key items", n)
	}
}

// TestOutage (finding 7): building a keyring makes no call; during an
// outage the first use fails with an unavailable error, and an instance
// that holds the key keeps using it when a re-read fails.
func TestOutage(t *testing.T) {
	env := dynamotest.New(t, "auth", nil)
	fake := clock.NewFake(apitest.Epoch)
	ctx := context.Background()
	calls := &store.CallCounter{}
	cfg := env.Config
	ac, err := store.LoadAWS(ctx, cfg.Region, apitest.ClosedURL(t))
	if err != nil {
		t.Fatal(err)
	}
	down := store.NewDynamoDB(ac, apitest.ClosedURL(t), 300*time.Millisecond, calls.Option(), func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	cold := keyring.New(down, env.Tables.Users, fake, nil)
	if calls.Total() != 0 {
		t.Fatal("New called the store")
	}
	if _, err := cold.Subkey(ctx, "x"); !store.IsUnavailable(err) {
		t.Fatalf("cold keyring during an outage: %v, want an unavailable error", err)
	}
	proxy, err := dbproxy.New(cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	flaky := store.NewDynamoDB(ac, proxy.URL(), 300*time.Millisecond, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 })
	warm := keyring.New(flaky, env.Tables.Users, fake, nil)
	before, err := warm.Subkey(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := proxy.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
		t.Fatal(err)
	}
	fake.Advance(keyring.RefreshAfter) // due for a re-read, which fails
	after, err := warm.Subkey(ctx, "x")
	if err != nil || !bytes.Equal(before, after) {
		t.Fatalf("a failed re-read: %v (key kept: %v)", err, bytes.Equal(before, after))
	}
}
