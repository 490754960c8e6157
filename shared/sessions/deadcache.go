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

// deadSet is a FIFO-bounded set with a per-entry age limit. The ring holds
// each key of the map exactly once, in insertion order, so evicting the
// oldest is O(1) and memory stays under size entries (about 100 B each).
type deadSet struct {
	mu    sync.Mutex
	size  int
	ttl   int64 // ms
	added map[tokenKey]int64
	ring  []tokenKey
	next  int // the oldest slot once the ring is full
}

func newDeadSet(size int, ttl time.Duration) *deadSet {
	size = max(size, 1)
	return &deadSet{size: size, ttl: ttl.Milliseconds(), added: make(map[tokenKey]int64)}
}

// has reports whether k was added less than ttl before now (epoch ms). An
// entry from the future (a clock set back) does not count.
func (d *deadSet) has(k tokenKey, now int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.added[k]
	return ok && now >= at && now-at < d.ttl
}

// add remembers k as dead from now (epoch ms).
func (d *deadSet) add(k tokenKey, now int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.added[k]; ok {
		d.added[k] = now // refreshed in place; it keeps its ring slot
		return
	}
	if len(d.ring) < d.size {
		d.ring = append(d.ring, k)
	} else {
		delete(d.added, d.ring[d.next])
		d.ring[d.next] = k
		d.next = (d.next + 1) % d.size
	}
	d.added[k] = now
}

// len returns the number of entries held (expired ones included until evicted).
func (d *deadSet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.added)
}
