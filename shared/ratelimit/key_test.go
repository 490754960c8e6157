package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
)

func TestClientKey(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name     string
		sourceIP string
		xff      string
		userID   string
		want     string
	}{
		{"ipv4", "203.0.113.7", "", "", "ip:203.0.113.7"},
		{"ipv6 by /64", "2001:db8:1:2:aaaa:bbbb:cccc:dddd", "", "", "ip:2001:db8:1:2::/64"},
		{"ipv6 same /64", "2001:db8:1:2::1", "", "", "ip:2001:db8:1:2::/64"},
		{"ipv6 zone dropped", "fe80::1%eth0", "", "", "ip:fe80::/64"},
		{"ipv4-mapped ipv6 is ipv4", "::ffff:198.51.100.4", "", "", "ip:198.51.100.4"},
		{"user beats ip", "203.0.113.7", "", "user#alice", "u:user#alice"},
		{"forged xff from untrusted peer ignored", "203.0.113.7", "1.1.1.1", "", "ip:203.0.113.7"},
		{"trusted peer: right-most untrusted", "10.0.0.5", "6.6.6.6, 198.51.100.9, 10.1.1.1", "", "ip:198.51.100.9"},
		{"trusted peer: forged left entries ignored", "10.0.0.5", "1.1.1.1, 2.2.2.2, 198.51.100.9", "", "ip:198.51.100.9"},
		{"trusted peer: all hops trusted → left-most", "10.0.0.5", "10.9.9.9, 10.1.1.1", "", "ip:10.9.9.9"},
		{"trusted peer: garbage stops at last good hop", "10.0.0.5", "1.1.1.1, not-an-ip", "", "ip:10.0.0.5"},
		{"trusted peer: port and brackets", "10.0.0.5", "[2001:db8:9:9::1]:443", "", "ip:2001:db8:9:9::/64"},
		{"trusted peer: ipv4 with port", "10.0.0.5", "198.51.100.9:5678", "", "ip:198.51.100.9"},
		{"trusted peer: empty xff", "10.0.0.5", " ", "", "ip:10.0.0.5"},
		{"trusted v6 peer", "fd00::2", "203.0.113.8", "", "ip:203.0.113.8"},
		{"unparsable peer kept verbatim", "not an ip", "1.1.1.1", "", "ip:not an ip"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientKey(tc.userID, ClientIP(tc.sourceIP, tc.xff, trusted)); got != tc.want {
				t.Errorf("ClientKey = %q, want %q", got, tc.want)
			}
		})
	}
}

var testSecret = []byte("key-test-subkey-0123456789abcdef")

func TestStorageKeyOddClientIDs(t *testing.T) {
	ids := []string{
		"u:" + strings.Repeat("a", 250),
		"u:" + strings.Repeat("a", 251),
		"u:\x00\xff\xfe", "u:\x00\xff", "u:",
		"u:café",       // NFC
		"u:cafe\u0301", // NFD: looks the same, is a different id
		"u:日本語🙂", "u:../../etc", "u:#api#", "ip:1.2.3.4", "u:ip:1.2.3.4",
	}
	seen := map[string]string{}
	for _, id := range ids {
		k := StorageKey(PolicyAPI, id, testSecret)
		if len(k) != len("api#")+64 || !strings.HasPrefix(k, "api#") {
			t.Errorf("key of %q = %q, want api# + 64 hex", id, k)
		}
		for _, c := range k {
			if c > 0x7e || c < 0x20 {
				t.Errorf("key of %q has byte %q", id, c)
			}
		}
		if prev, dup := seen[k]; dup {
			t.Errorf("%q and %q collide", prev, id)
		}
		seen[k] = id
	}
	if StorageKey(PolicyAPI, "ip:1.2.3.4", testSecret) == StorageKey(PolicyFrontdoor, "ip:1.2.3.4", testSecret) {
		t.Error("policies share a bucket")
	}
	if got := logKey(StorageKey(PolicyAPI, "ip:1.2.3.4", testSecret)); len(got) != len("api#")+12 {
		t.Errorf("logKey = %q", got)
	}
}

// TestStorageKeyIsKeyed: the bucket key is an HMAC under the deployment's
// subkey, not a plain hash: another key gives another bucket key, and the
// plain SHA-256 of the client key appears nowhere in it.
func TestStorageKeyIsKeyed(t *testing.T) {
	k := StorageKey(PolicyAPI, "ip:198.51.100.7", testSecret)
	if k == StorageKey(PolicyAPI, "ip:198.51.100.7", []byte("another-deployment-subkey-012345")) {
		t.Fatal("the key does not depend on the secret")
	}
	sum := sha256.Sum256([]byte("ip:198.51.100.7"))
	if strings.Contains(k, hex.EncodeToString(sum[:])) {
		t.Fatalf("%s is the plain SHA-256 of the client key", k)
	}
}
