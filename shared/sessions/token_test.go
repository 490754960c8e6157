package sessions

import (
	"regexp"
	"strings"
	"testing"
)

var contractPattern = regexp.MustCompile(`^session_[0-9]+_[a-zA-Z0-9]+$`)

func TestTokenFormat(t *testing.T) {
	for _, id := range []string{"abc", "admin_01", strings.Repeat("z", 50), "___", "a_9"} {
		tok, err := NewToken(id)
		if err != nil {
			t.Fatal(err)
		}
		if !contractPattern.MatchString(tok) || len(tok) < 10 || len(tok) > 200 || !WellFormed(tok) {
			t.Fatalf("token %q breaks the contract's format", tok)
		}
		got, ok := ParseToken(tok)
		if !ok || got != id {
			t.Fatalf("ParseToken(%q) = %q, %v; want %q", tok, got, ok, id)
		}
	}
	for _, bad := range []string{"", "ab", "ABC", "a-b", strings.Repeat("a", 51), "ü12"} {
		if _, err := NewToken(bad); err == nil {
			t.Fatalf("NewToken(%q) accepted", bad)
		}
	}
}

func TestTokenSecretIsRandom(t *testing.T) {
	seen := map[string]bool{}
	counts := map[byte]int{}
	for i := 0; i < 500; i++ {
		tok, _ := NewToken("abc")
		secret := tok[strings.LastIndexByte(tok, '_')+1:]
		if len(secret) != secretLen || secretLen*595 < 256*100 { // log2(62) ≈ 5.95 bits per character
			t.Fatalf("secret of %d characters", len(secret))
		}
		if seen[secret] {
			t.Fatal("repeated secret")
		}
		seen[secret] = true
		for j := 0; j < len(secret); j++ {
			counts[secret[j]]++
		}
	}
	// 22,000 characters over 62 symbols: each near 355; a broken sampler
	// (say, one that never draws some letters) fails this.
	if len(counts) != 62 {
		t.Fatalf("only %d of 62 symbols drawn", len(counts))
	}
	for c, n := range counts {
		if n < 200 || n > 520 {
			t.Fatalf("symbol %q drawn %d times", c, n)
		}
	}
}

func TestParseTokenRejects(t *testing.T) {
	good, _ := NewToken("alice")
	secret := good[strings.LastIndexByte(good, '_')+1:]
	for name, tok := range map[string]string{
		"original format": "session_1700000000000_k3j4h5g6",
		"odd digits":      "session_101_" + secret,
		"pair over 36":    "session_102937_" + secret,
		"short id":        "session_1011_" + secret,
		"short secret":    "session_101112_abc",
		"long secret":     good + "a",
		"no prefix":       strings.TrimPrefix(good, "session_"),
		"symbol":          good[:len(good)-1] + "-",
		"empty":           "",
		"too long":        "session_" + strings.Repeat("10", 100) + "_" + secret,
	} {
		if id, ok := ParseToken(tok); ok {
			t.Errorf("%s: ParseToken(%q) = %q", name, tok, id)
		}
	}
}

func TestHandles(t *testing.T) {
	h := HashToken("session_101112_x")
	if len(h) != 64 || HashToken("session_101112_x") != h {
		t.Fatal("hash is not a stable hex SHA-256")
	}
	handle := HandleOf(h)
	if !ValidHandle(handle) || strings.Contains(h, handle) {
		t.Fatalf("handle %q (of %s) must be 16 hex characters not taken from the key", handle, h)
	}
	for _, bad := range []string{"", "0123456789abcdeF", "0123456789abcde", "0123456789abcdefg", "zzzzzzzzzzzzzzzz"} {
		if ValidHandle(bad) {
			t.Errorf("ValidHandle(%q)", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	good, _ := NewToken("alice_1")
	for _, s := range []string{good, "session_1_a", "session__", "session_00_x", "", "session_" + strings.Repeat("9", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ParseToken(s)
		if !ok {
			return
		}
		if !WellFormed(s) || !contractPattern.MatchString(s) {
			t.Fatalf("accepted a malformed token %q", s)
		}
		if len(id) < 3 || len(id) > 50 || strings.ToLower(id) != id {
			t.Fatalf("bad user id %q from %q", id, s)
		}
		if WellFormed(s) != (contractPattern.MatchString(s) && len(s) >= 10 && len(s) <= 200) {
			t.Fatalf("WellFormed disagrees with the contract on %q", s)
		}
	})
}

func FuzzWellFormed(f *testing.F) {
	f.Add("session_123_abc")
	f.Add("session_123_ab c")
	f.Add("session_x_abc")
	f.Fuzz(func(t *testing.T, s string) {
		want := contractPattern.MatchString(s) && len(s) >= 10 && len(s) <= 200
		if got := WellFormed(s); got != want {
			t.Fatalf("WellFormed(%q) = %v, want %v", s, got, want)
		}
	})
}
