package lockout_test

import (
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/lockout"
)

// The lock curve alone, no DynamoDB: nothing below the threshold, 1 s at it,
// doubling per further failure, capped at 15 min however long the guessing
// goes on (the shift never overflows into a short or negative lock).
func TestLockFor(t *testing.T) {
	p := lockout.DefaultPolicy
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{4, 0},
		{5, time.Second},
		{6, 2 * time.Second},
		{10, 32 * time.Second},
		{14, 512 * time.Second},
		{15, 15 * time.Minute}, // 1024 s is over the cap
		{35, 15 * time.Minute},
		{36, 15 * time.Minute}, // shift past 30: the cap, not an overflow
		{1 << 20, 15 * time.Minute},
	}
	for _, tt := range tests {
		if got := p.LockFor(tt.failures); got != tt.want {
			t.Errorf("LockFor(%d) = %v, want %v", tt.failures, got, tt.want)
		}
	}
}

// A policy whose base lock is already over its cap locks for the cap.
func TestLockForBaseOverCap(t *testing.T) {
	p := lockout.Policy{Threshold: 1, BaseLock: time.Hour, MaxLock: time.Minute}
	for _, n := range []int{1, 2, 40} {
		if got := p.LockFor(n); got != time.Minute {
			t.Errorf("LockFor(%d) = %v, want the 1m cap", n, got)
		}
	}
}
