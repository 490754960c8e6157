package sessions

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"
)

// The negative cache: a bounded, per-instance set of token hashes whose
// session is dead for good. Validation consults it before the BatchGetItem,
// so a well-formed but dead token (forged, logged out, expired, ended by a
// session-version bump) costs one read per instance and entry, not one per
// request. It only ever rejects: a valid session is never remembered, so a
// logout or a revocation elsewhere is seen on the very next request.
const (
	// DeadCacheSize bounds the entries; past it the oldest is evicted.
	DeadCacheSize = 10000
	// KnownCacheSize bounds the positive cache of validated tokens' user ids
	// (about 130 B an entry); past it the oldest is evicted.
	KnownCacheSize = 10000
	// DeadCacheTTL is how long an entry is trusted. A dead session cannot come
	// back, so this only bounds staleness should that rule ever be broken by
	// hand (an item edited in the table).
	DeadCacheTTL = 5 * time.Minute
	// ClockSkew is the clock difference between instances allowed for: an
	// idle expiry is remembered only once it passed this long ago, when no
	// other instance can still see the session live and slide it.
	ClockSkew = 5 * time.Second
)

// tokenKey is the cache key of a token: its raw SHA-256.
type tokenKey = [sha256.Size]byte

// keyOfHash turns a stored hash (hex SHA-256) back into a cache key.
func keyOfHash(hash string) (tokenKey, bool) {
	var k tokenKey
	if len(hash) != 2*len(k) {
		return k, false
	}
	if _, err := hex.Decode(k[:], []byte(hash)); err != nil {
		return k, false
	}
	return k, true
}

// tokenCache is a FIFO-bounded map from token keys to values with a
// per-entry age limit (0: none). The ring holds each key of the map once, in
// insertion order, and each entry remembers its slot, so evicting the oldest
// is O(1), a removed key's stale slot never evicts a newer entry, and memory
// stays under size entries.
type tokenCache[V any] struct {
	mu      sync.Mutex
	size    int
	ttl     int64 // ms; 0 = entries never age out
	entries map[tokenKey]cacheEntry[V]
	ring    []tokenKey
	next    int // the oldest slot once the ring is full
}

type cacheEntry[V any] struct {
	v    V
	at   int64 // epoch ms when put
	slot int
}

// deadSet is the negative cache: token keys whose session is dead for good.
type deadSet = tokenCache[struct{}]

func newDeadSet(size int, ttl time.Duration) *deadSet { return newTokenCache[struct{}](size, ttl) }

func newTokenCache[V any](size int, ttl time.Duration) *tokenCache[V] {
	size = max(size, 1)
	return &tokenCache[V]{size: size, ttl: ttl.Milliseconds(), entries: make(map[tokenKey]cacheEntry[V])}
}

// get returns k's value if it was put less than ttl before now (epoch ms).
// An entry from the future (a clock set back) does not count.
func (c *tokenCache[V]) get(k tokenKey, now int64) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok || now < e.at || (c.ttl > 0 && now-e.at >= c.ttl) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put sets k to v from now (epoch ms); a key already held keeps its slot.
func (c *tokenCache[V]) put(k tokenKey, v V, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[k]; ok {
		c.entries[k] = cacheEntry[V]{v: v, at: now, slot: e.slot}
		return
	}
	slot := len(c.ring)
	if slot < c.size {
		c.ring = append(c.ring, k)
	} else {
		slot = c.next
		if old := c.ring[slot]; c.entries[old].slot == slot {
			delete(c.entries, old)
		}
		c.ring[slot] = k
		c.next = (c.next + 1) % c.size
	}
	c.entries[k] = cacheEntry[V]{v: v, at: now, slot: slot}
}

// remove forgets k (its ring slot is reused in turn).
func (c *tokenCache[V]) remove(k tokenKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

// has reports whether k is held and young enough (the negative cache's question).
func (c *tokenCache[V]) has(k tokenKey, now int64) bool {
	_, ok := c.get(k, now)
	return ok
}

// add holds k from now with the zero value (the negative cache's insert).
func (c *tokenCache[V]) add(k tokenKey, now int64) {
	var zero V
	c.put(k, zero, now)
}

// len returns the number of entries held (aged-out ones included until evicted).
func (c *tokenCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
