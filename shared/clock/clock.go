// Package clock holds the time and randomness sources that decide behaviour
// (expiry, rate limits, shedding), so tests can control them instead of racing
// the wall clock.
package clock

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// System is the real wall clock.
type System struct{}

// Now returns the current time.
func (System) Now() time.Time { return time.Now() }

// Fake is a manually driven clock for tests; safe for concurrent use.
type Fake struct {
	mu  sync.Mutex
	now time.Time
}

// NewFake returns a Fake clock set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Advance moves the fake time forward by d.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

// Set moves the fake time to t.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	f.now = t
	f.mu.Unlock()
}

// Random yields uniform numbers in [0, 1).
type Random interface {
	Float64() float64
}

// CryptoRandom draws from crypto/rand, so shedding cannot be predicted or gamed.
type CryptoRandom struct{}

// Float64 returns a uniform number in [0, 1) with 53 random bits.
func (CryptoRandom) Float64() float64 {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms (it panics itself since Go 1.24).
		panic(err)
	}
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

// Sequence replays fixed values in order, cycling; for tests.
type Sequence struct {
	mu     sync.Mutex
	Values []float64
	i      int
}

// Float64 returns the next value of the sequence.
func (s *Sequence) Float64() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.Values) == 0 {
		return 0
	}
	v := s.Values[s.i%len(s.Values)]
	s.i++
	return v
}
