package metrics

import (
	"math/rand/v2"
	"testing"
)

func TestPackMinutesRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		fill func(*[60]MinuteSums)
		max  int // bytes the packed form may take
	}{
		{"empty hour", func(*[60]MinuteSums) {}, 1},
		{"last minute only", func(m *[60]MinuteSums) { m[59] = MinuteSums{Requests: 1, DurationMs: 3} }, 1 + 60*4},
		{"dense, thousands a minute", func(m *[60]MinuteSums) {
			for i := range m {
				r := 4000 + rnd.Int64N(2000)
				m[i] = MinuteSums{Requests: r, Errors5xx: rnd.Int64N(100), Throttled: rnd.Int64N(200), DurationMs: r * (50 + rnd.Int64N(100))}
			}
		}, 1 + 60*9},
		{"huge values", func(m *[60]MinuteSums) {
			for i := range m {
				m[i] = MinuteSums{Requests: 1 << 40, Errors5xx: 1 << 40, Throttled: 1 << 40, DurationMs: 1 << 61}
			}
		}, 1 + 60*4*10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var in [60]MinuteSums
			tc.fill(&in)
			b := packMinutes(&in)
			if len(b) > tc.max {
				t.Errorf("packed %d bytes, want at most %d", len(b), tc.max)
			}
			out, err := unpackMinutes(b)
			if err != nil || out != in {
				t.Fatalf("round trip: %v\n got %v\nwant %v", err, out, in)
			}
		})
	}
	// A negative count (never written by the recorder) packs as zero instead of a huge number.
	neg := [60]MinuteSums{{Requests: -5}}
	if out, err := unpackMinutes(packMinutes(&neg)); err != nil || out[0].Requests != 0 {
		t.Errorf("negative count: %v %v", out[0], err)
	}
}

func TestUnpackMinutesRejectsMalformed(t *testing.T) {
	var full [60]MinuteSums
	for i := range full {
		full[i].Requests = 1
	}
	tooLong := append(packMinutes(&full), 1, 1, 1, 1) // a 61st minute
	for name, b := range map[string][]byte{
		"empty":            nil,
		"wrong version":    {2},
		"truncated minute": {packVersion, 1, 2, 3},
		"truncated varint": {packVersion, 0x80},
		"61 minutes":       tooLong,
	} {
		if _, err := unpackMinutes(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzUnpackMinutes: any bytes decode or fail, never panic, and what decodes
// packs back to a form that decodes the same.
func FuzzUnpackMinutes(f *testing.F) {
	var m [60]MinuteSums
	m[3] = MinuteSums{Requests: 300, Errors5xx: 2, Throttled: 1, DurationMs: 12345}
	f.Add(packMinutes(&m))
	f.Add([]byte{packVersion})
	f.Add([]byte{packVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := unpackMinutes(b)
		if err != nil {
			return
		}
		again, err := unpackMinutes(packMinutes(&out))
		if err != nil || again != out {
			t.Fatalf("re-pack differs: %v", err)
		}
	})
}
