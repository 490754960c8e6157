// Package keyring holds the deployment's secret key: 32 random bytes made at
// first use (crypto/rand) into one item of the users table, "meta#keys", with
// a version so it can be rotated (the current and the previous key are kept).
// Every use takes its own subkey, derived with HMAC-SHA256 from the key and a
// purpose name, for
//   - keyed hashes of client identities (rate-limit and lockout counter keys):
//     Subkey, under the current key only, so a rotation starts new counters;
//   - sealed cursors (AES-256-GCM): Seal and Open, which accept the current
//     and the previous key;
//   - MACs (HMAC-SHA256) of device cookies: Sign and Verify, likewise.
//
// The key is read lazily, on the first use, and cached per instance (re-read
// every RefreshAfter to see a rotation), so a function starts without the
// store. Concurrent first uses agree on one key: the item is created with a
// conditional put, and a loser reads the winner's key (strongly consistent).
// SECURITY.md says where the key lives and how to rotate it.
package keyring

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// ItemKey is the partition key of the key item in the users table; the
// template scopes the other functions' access to it with dynamodb:LeadingKeys.
const ItemKey = "meta#keys"

const (
	// SecretBytes is the size of a key.
	SecretBytes = 32
	// RefreshAfter is how long an instance uses the key it read before
	// reading it again, so a rotation reaches every instance within it.
	RefreshAfter = 10 * time.Minute
	// RetryAfter spaces the re-reads of an instance whose last read failed
	// (it keeps the key it had) or that was shown an unknown, newer version.
	RetryAfter = 10 * time.Second
)

// ErrInvalid is a sealed value or MAC this deployment did not make: edited,
// truncated, made for another purpose, under another deployment's key, or
// under a key older than the previous one.
var ErrInvalid = store.ErrInvalidSeal

// API is the part of the DynamoDB client the keyring uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
}

// key is one version of the deployment key.
type key struct {
	version uint32
	secret  []byte
}

// item is the stored form of the key item.
type item struct {
	Version         uint32 `dynamodbav:"version"`
	Secret          []byte `dynamodbav:"secret"`
	PreviousVersion uint32 `dynamodbav:"previousVersion,omitempty"`
	Previous        []byte `dynamodbav:"previous,omitempty"`
	CreatedAt       int64  `dynamodbav:"createdAt"`           // epoch ms
	RotatedAt       int64  `dynamodbav:"rotatedAt,omitempty"` // epoch ms
}

func (it *item) keys() (key, *key, error) {
	if it.Version == 0 || len(it.Secret) != SecretBytes {
		return key{}, nil, errors.New("keyring: the key item is malformed")
	}
	cur := key{version: it.Version, secret: it.Secret}
	if it.PreviousVersion == 0 || len(it.Previous) != SecretBytes || it.PreviousVersion == it.Version {
		return cur, nil, nil
	}
	return cur, &key{version: it.PreviousVersion, secret: it.Previous}, nil
}

// Keyring reads (creating at first use) and caches the deployment key; safe
// for concurrent use, one per instance.
type Keyring struct {
	db     API
	table  string
	clock  clock.Clock
	random io.Reader

	fetch sync.Mutex // one read of the item at a time

	mu        sync.Mutex
	current   *key
	previous  *key
	nextFetch time.Time // when the cached keys are read again
	missAfter time.Time // earliest re-read for an unknown version
}

// New returns the keyring of the users table. random makes new keys and
// nonces (crypto/rand when nil).
func New(db API, usersTable string, clk clock.Clock, random io.Reader) *Keyring {
	if clk == nil {
		clk = clock.System{}
	}
	if random == nil {
		random = rand.Reader
	}
	return &Keyring{db: db, table: usersTable, clock: clk, random: random}
}

// Version returns the version of the key in force (reading it if needed).
func (k *Keyring) Version(ctx context.Context) (uint32, error) {
	cur, _, err := k.keys(ctx)
	return cur.version, err
}

// keys returns the current and previous key, from the cache while it is
// fresh. When a re-read fails the cached keys stay in use.
func (k *Keyring) keys(ctx context.Context) (key, *key, error) {
	if cur, prev, ok := k.cached(false); ok {
		return cur, prev, nil
	}
	k.fetch.Lock()
	defer k.fetch.Unlock()
	if cur, prev, ok := k.cached(false); ok { // another caller read it meanwhile
		return cur, prev, nil
	}
	if err := k.load(ctx); err != nil {
		if cur, prev, ok := k.cached(true); ok {
			k.mu.Lock()
			k.nextFetch = k.clock.Now().Add(RetryAfter)
			k.mu.Unlock()
			return cur, prev, nil
		}
		return key{}, nil, err
	}
	cur, prev, _ := k.cached(true)
	return cur, prev, nil
}

func (k *Keyring) cached(stale bool) (key, *key, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.current == nil || (!stale && !k.clock.Now().Before(k.nextFetch)) {
		return key{}, nil, false
	}
	return *k.current, k.previous, true
}

// load reads the key item (strongly consistent), creating it when absent.
func (k *Keyring) load(ctx context.Context) error {
	it, err := read(ctx, k.db, k.table)
	if err != nil {
		return err
	}
	if it == nil {
		if it, err = k.create(ctx); err != nil {
			return err
		}
	}
	cur, prev, err := it.keys()
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.current, k.previous = &cur, prev
	k.nextFetch = k.clock.Now().Add(RefreshAfter)
	k.mu.Unlock()
	return nil
}

// read returns the stored key item (strongly consistent), nil when absent.
func read(ctx context.Context, db API, table string) (*item, error) {
	out, err := db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(table), Key: itemKey(), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("read the deployment key: %w", err)
	}
	if out.Item == nil {
		return nil, nil
	}
	var it item
	if err := attributevalue.UnmarshalMap(out.Item, &it); err != nil {
		return nil, fmt.Errorf("decode the deployment key: %w", err)
	}
	return &it, nil
}

// create writes version 1 with a conditional put; when another instance won
// the race, its key is read and used.
func (k *Keyring) create(ctx context.Context) (*item, error) {
	secret, err := newSecret(k.random)
	if err != nil {
		return nil, err
	}
	it := &item{Version: 1, Secret: secret, CreatedAt: k.clock.Now().UnixMilli()}
	av, err := attributevalue.MarshalMap(it)
	if err != nil {
		return nil, fmt.Errorf("encode the deployment key: %w", err)
	}
	av["pk"] = &types.AttributeValueMemberS{Value: ItemKey}
	cond, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return nil, fmt.Errorf("build the deployment key put: %w", err)
	}
	_, err = k.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(k.table), Item: av,
		ConditionExpression: cond.Condition(), ExpressionAttributeNames: cond.Names(),
	})
	if store.IsConditionFailed(err) {
		won, err := read(ctx, k.db, k.table)
		if err != nil {
			return nil, err
		}
		if won == nil {
			return nil, errors.New("keyring: the key item vanished after a lost race")
		}
		return won, nil
	}
	if err != nil {
		return nil, fmt.Errorf("create the deployment key: %w", err)
	}
	return it, nil
}

func newSecret(random io.Reader) ([]byte, error) {
	b := make([]byte, SecretBytes)
	if _, err := io.ReadFull(random, b); err != nil {
		return nil, fmt.Errorf("keyring: random: %w", err)
	}
	return b, nil
}

func itemKey() map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: ItemKey}}
}

// lookup returns the key of version v: current or previous; a version newer
// than the current one makes the keyring re-read the item (at most once per
// RetryAfter), since another instance may have seen a rotation first.
func (k *Keyring) lookup(ctx context.Context, v uint32) (key, bool, error) {
	cur, prev, err := k.keys(ctx)
	if err != nil {
		return key{}, false, err
	}
	switch {
	case v == cur.version:
		return cur, true, nil
	case prev != nil && v == prev.version:
		return *prev, true, nil
	case v < cur.version:
		return key{}, false, nil
	}
	now := k.clock.Now()
	k.mu.Lock()
	due := !now.Before(k.missAfter)
	if due {
		k.missAfter = now.Add(RetryAfter)
		k.nextFetch = now // the next keys() reads again
	}
	k.mu.Unlock()
	if !due {
		return key{}, false, nil
	}
	if cur, _, err = k.keys(ctx); err != nil {
		return key{}, false, err
	}
	if v == cur.version {
		return cur, true, nil
	}
	return key{}, false, nil
}

// derive is the subkey of secret for one use and purpose.
func derive(secret []byte, use, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("zenith-keyring/" + use + "/" + purpose))
	return m.Sum(nil)
}

// Subkey returns the current key's subkey for purpose, for keyed hashes
// (HMAC-SHA256) of counter keys. A rotation changes it.
func (k *Keyring) Subkey(ctx context.Context, purpose string) ([]byte, error) {
	cur, _, err := k.keys(ctx)
	if err != nil {
		return nil, err
	}
	return derive(cur.secret, "hash", purpose), nil
}

const (
	versionLen = 4
	nonceLen   = 12
)

// Seal encrypts and authenticates plaintext under the current key's subkey
// for purpose (AES-256-GCM with a random nonce) and returns it as unpadded
// base64url: version (4 bytes), nonce, ciphertext and tag.
func (k *Keyring) Seal(ctx context.Context, purpose string, plaintext []byte) (string, error) {
	cur, _, err := k.keys(ctx)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(cur, purpose)
	if err != nil {
		return "", err
	}
	out := make([]byte, versionLen+nonceLen, versionLen+nonceLen+len(plaintext)+aead.Overhead())
	binary.BigEndian.PutUint32(out, cur.version)
	if _, err := io.ReadFull(k.random, out[versionLen:]); err != nil {
		return "", fmt.Errorf("keyring: random: %w", err)
	}
	out = aead.Seal(out, out[versionLen:], plaintext, additional(purpose, cur.version))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open returns the plaintext of a value Seal made for purpose under the
// current or the previous key; ErrInvalid for anything else.
func (k *Keyring) Open(ctx context.Context, purpose, sealed string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < versionLen+nonceLen+16 {
		return nil, ErrInvalid
	}
	v := binary.BigEndian.Uint32(raw)
	kv, ok, err := k.lookup(ctx, v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrInvalid
	}
	aead, err := newAEAD(kv, purpose)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, raw[versionLen:versionLen+nonceLen], raw[versionLen+nonceLen:], additional(purpose, v))
	if err != nil {
		return nil, ErrInvalid
	}
	return plain, nil
}

func newAEAD(kv key, purpose string) (cipher.AEAD, error) {
	block, err := aes.NewCipher(derive(kv.secret, "seal", purpose))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	return cipher.NewGCM(block)
}

func additional(purpose string, v uint32) []byte {
	return []byte("zenith-seal|" + purpose + "|" + strconv.FormatUint(uint64(v), 10))
}

// Sign returns the HMAC-SHA256 of data under the current key's subkey for
// purpose, and that key's version.
func (k *Keyring) Sign(ctx context.Context, purpose string, data []byte) (uint32, []byte, error) {
	cur, _, err := k.keys(ctx)
	if err != nil {
		return 0, nil, err
	}
	return cur.version, mac(cur, purpose, data), nil
}

// Verify reports whether sum is Sign's MAC of data under key version v (the
// current or the previous key), compared in constant time.
func (k *Keyring) Verify(ctx context.Context, purpose string, v uint32, data, sum []byte) (bool, error) {
	kv, ok, err := k.lookup(ctx, v)
	if err != nil || !ok {
		return false, err
	}
	return hmac.Equal(mac(kv, purpose, data), sum), nil
}

func mac(kv key, purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, derive(kv.secret, "mac", purpose))
	m.Write(data)
	return m.Sum(nil)
}
