package ratelimit

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzClientIP: any peer and X-Forwarded-For give a key without a panic; an
// untrusted peer's key never depends on the header; storage keys stay fixed
// ASCII.
func FuzzClientIP(f *testing.F) {
	for _, s := range [][2]string{
		{"203.0.113.7", ""}, {"10.0.0.1", "1.1.1.1, 2.2.2.2"}, {"10.0.0.1", "[::1]:80, garbage"},
		{"2001:db8::1", "10.0.0.1"}, {"", ""}, {"fe80::1%eth0", ","}, {"::ffff:10.0.0.1", "::ffff:1.2.3.4"},
		{"10.0.0.1", strings.Repeat("10.0.0.2,", 100)}, {"\xff", "\x00"},
	} {
		f.Add(s[0], s[1])
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	f.Fuzz(func(t *testing.T, peer, xff string) {
		got := ClientIP(peer, xff, trusted)
		if a, err := netip.ParseAddr(strings.TrimSpace(peer)); err == nil && !isTrusted(a.WithZone("").Unmap(), trusted) {
			if alone := ClientIP(peer, "", trusted); got != alone {
				t.Fatalf("untrusted peer %q: key %q depends on X-Forwarded-For %q (alone %q)", peer, got, xff, alone)
			}
		}
		k := StorageKey(PolicyAPI, "ip:"+got, testSecret)
		if len(k) != 68 || !utf8.ValidString(k) {
			t.Fatalf("storage key %q", k)
		}
	})
}
