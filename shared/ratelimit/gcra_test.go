package ratelimit

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestNewPolicy(t *testing.T) {
	tests := []struct {
		name       string
		rpm, burst int
		window     time.Duration
		wantT      int64
		wantC      int
	}{
		{"defaults frontdoor", 100, 10, time.Minute, 600_000, 110},
		{"defaults api", 600, 60, time.Minute, 100_000, 660},
		{"no burst", 1, 0, time.Second, 1_000_000, 1},
		// 60 s / 7 is not a whole number of µs: T rounds up, so the limiter is stricter, never looser.
		{"rounded up", 7, 0, time.Minute, 8_571_429, 7},
		{"largest", 1, 1_000_000, 86400 * time.Second, 86_400_000_000, 1_000_001},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPolicy("x", tc.rpm, tc.burst, tc.window)
			if err != nil {
				t.Fatal(err)
			}
			if p.T != tc.wantT || p.Capacity() != tc.wantC || p.Tau != int64(tc.wantC-1)*tc.wantT {
				t.Errorf("policy = %+v, want T %d, C %d", p, tc.wantT, tc.wantC)
			}
			if p.Tau < 0 {
				t.Errorf("tau overflowed: %d", p.Tau)
			}
		})
	}
	for _, bad := range [][2]int{{0, 0}, {-1, 5}, {5, -1}} {
		if _, err := NewPolicy("x", bad[0], bad[1], time.Minute); err == nil {
			t.Errorf("NewPolicy(%v) accepted", bad)
		}
	}
}

// An idle client may send C at once, then one every T.
func TestStepBurstThenOneEveryT(t *testing.T) {
	p, _ := NewPolicy("x", 5, 2, time.Minute) // T = 12 s, C = 7
	now := int64(1_000_000_000_000)
	var tat int64
	for i := 0; i < 7; i++ {
		d := p.Step(tat, now)
		if !d.Allowed {
			t.Fatalf("request %d of the burst denied", i+1)
		}
		if got, want := p.Remaining(d), 7-i-1; got != want {
			t.Errorf("remaining after %d = %d, want %d", i+1, got, want)
		}
		tat = d.TAT
	}
	d := p.Step(tat, now)
	if d.Allowed {
		t.Fatal("request C+1 admitted")
	}
	if next := p.NextAdmission(d); next != now+p.T {
		t.Errorf("next admission = %d, want now+T = %d", next, now+p.T)
	}
	if p.Step(tat, now+p.T-1).Allowed {
		t.Error("admitted 1 µs before T")
	}
	d = p.Step(tat, now+p.T)
	if !d.Allowed || p.Remaining(d) != 0 {
		t.Errorf("at T: %+v remaining %d, want one admitted and 0 left", d, p.Remaining(d))
	}
	if p.Reset(d) != d.TAT {
		t.Errorf("reset on allow = %d, want the TAT (bucket full) %d", p.Reset(d), d.TAT)
	}
}

// Over any interval of length d at most C + ⌊d/T⌋ requests are admitted,
// whatever the arrival pattern (checked on random patterns, every window).
func TestStepNeverExceedsBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for run := 0; run < 200; run++ {
		p, _ := NewPolicy("x", 1+rng.IntN(20), rng.IntN(5), time.Duration(1+rng.IntN(60))*time.Second)
		now := int64(1_700_000_000_000_000)
		var tat int64
		var admitted []int64
		for i := 0; i < 300; i++ {
			now += rng.Int64N(2 * p.T / int64(1+rng.IntN(8)))
			if d := p.Step(tat, now); d.Allowed {
				tat = d.TAT
				admitted = append(admitted, now)
			}
		}
		for i := range admitted {
			for j := i; j < len(admitted); j++ {
				d := admitted[j] - admitted[i]
				if n := j - i + 1; int64(n) > int64(p.Capacity())+d/p.T {
					t.Fatalf("run %d: %d admitted in %d µs, bound %d", run, n, d, int64(p.Capacity())+d/p.T)
				}
			}
		}
	}
}
