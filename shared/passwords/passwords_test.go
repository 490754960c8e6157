package passwords

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

var phcPattern = regexp.MustCompile(`^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$`)

// weak is a deliberately cheap parameter set for the rehash tests.
var weak = Params{Memory: 8 * 1024, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	h, err := Hash("correct horse battery", Default)
	if err != nil {
		t.Fatal(err)
	}
	if !phcPattern.MatchString(h) {
		t.Fatalf("not a PHC string: %q", h)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("unexpected parameters in %q", h)
	}
	tests := []struct {
		name     string
		password string
		want     bool
	}{
		{"right", "correct horse battery", true},
		{"wrong", "correct horse batterY", false},
		{"empty", "", false},
		{"prefix", "correct horse", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := Verify(tc.password, h)
			if err != nil || ok != tc.want {
				t.Fatalf("Verify = %v, %v; want %v", ok, err, tc.want)
			}
		})
	}
	h2, err := Hash("correct horse battery", Default)
	if err != nil {
		t.Fatal(err)
	}
	if h2 == h {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestNeedsRehash(t *testing.T) {
	weakHash, err := Hash("password-one", weak)
	if err != nil {
		t.Fatal(err)
	}
	strong, err := Hash("password-one", Default)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		phc  string
		want bool
	}{
		{"weaker memory and time", weakHash, true},
		{"equal", strong, false},
		{"malformed", "$2a$10$abcdefghijk", true},
		{"empty", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsRehash(tc.phc, Default); got != tc.want {
				t.Fatalf("NeedsRehash = %v, want %v", got, tc.want)
			}
		})
	}
	// A stronger configured set makes today's default hash weak.
	stronger := Default
	stronger.Time = 3
	if !NeedsRehash(strong, stronger) {
		t.Fatal("t=2 hash should need a rehash under t=3")
	}
	// The weak hash still verifies: rehash happens after a successful login.
	if ok, err := Verify("password-one", weakHash); !ok || err != nil {
		t.Fatalf("weak hash no longer verifies: %v %v", ok, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Hash("password-two", weak)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	tests := map[string]string{
		"bcrypt":        "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":       strings.Replace(good, "argon2id", "argon2i", 1),
		"version":       strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":   "$argon2id$v=19$m=4294967295,t=2,p=1$" + parts[4] + "$" + parts[5],
		"huge time":     "$argon2id$v=19$m=8192,t=100000,p=1$" + parts[4] + "$" + parts[5],
		"zero threads":  "$argon2id$v=19$m=8192,t=1,p=0$" + parts[4] + "$" + parts[5],
		"many threads":  "$argon2id$v=19$m=8192,t=1,p=300$" + parts[4] + "$" + parts[5],
		"unknown param": "$argon2id$v=19$m=8192,t=1,x=1$" + parts[4] + "$" + parts[5],
		"bad salt":      "$argon2id$v=19$m=8192,t=1,p=1$!!!$" + parts[5],
		"short key":     "$argon2id$v=19$m=8192,t=1,p=1$" + parts[4] + "$AAAA",
		"missing part":  "$argon2id$v=19$m=8192,t=1,p=1$" + parts[4],
		"empty":         "",
	}
	for name, phc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(phc); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%q) err = %v, want ErrMalformed", phc, err)
			}
			if ok, err := Verify("password-two", phc); ok || err == nil {
				t.Fatalf("Verify accepted a malformed hash: %v %v", ok, err)
			}
		})
	}
}

func TestDummyNeverMatches(t *testing.T) {
	d := Dummy(Default)
	if !phcPattern.MatchString(d) {
		t.Fatalf("dummy is not a PHC string: %q", d)
	}
	if NeedsRehash(d, Default) {
		t.Fatal("dummy must use the configured parameters so it costs the same")
	}
	for _, pw := range []string{"", "password", "correct horse battery"} {
		if ok, err := Verify(pw, d); ok || err != nil {
			t.Fatalf("dummy matched %q: %v %v", pw, ok, err)
		}
	}
}

func TestHashRejectsBadParams(t *testing.T) {
	for _, p := range []Params{
		{Memory: 1, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 8192, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 8192, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
	} {
		if _, err := Hash("x", p); err == nil {
			t.Fatalf("Hash accepted %+v", p)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, phc string) {
		d, err := Decode(phc)
		if err != nil {
			return
		}
		// Anything accepted must be within bounds, so Verify stays affordable.
		if d.Params.Memory > maxMemory || d.Params.Time > maxTime || d.Params.Threads < 1 {
			t.Fatalf("accepted out-of-bounds params %+v", d.Params)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Hash("benchmark-password", Default); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h, err := Hash("benchmark-password", Default)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := Verify("benchmark-password", h); !ok {
			b.Fatal("no match")
		}
	}
}
