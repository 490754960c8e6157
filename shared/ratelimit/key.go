package ratelimit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"strings"
)

// ClientKey is the limiter's client identity (API.md): "u:<user id>" when the
// request carries a valid session (userID set), else "ip:<client IP>" where
// clientIP is ClientIP's normalised address.
func ClientKey(userID, clientIP string) string {
	if userID != "" {
		return "u:" + userID
	}
	return "ip:" + clientIP
}

// ClientIP returns the normalised client address: IPv4 as dotted quad, IPv6
// as its /64 prefix. The source IP is API Gateway's sourceIp; X-Forwarded-For
// is read only when that direct peer is a trusted proxy, taking the right-most
// entry that is not itself trusted (the left part of the header is whatever
// the client wrote). A peer that is not an IP address at all is kept verbatim
// (it is hashed before it is stored, so any bytes are safe).
func ClientIP(sourceIP, xff string, trusted []netip.Prefix) string {
	peer, ok := parseAddr(sourceIP)
	if !ok {
		return strings.TrimSpace(sourceIP)
	}
	client := peer
	if xff != "" && isTrusted(peer, trusted) {
		client = fromForwarded(xff, peer, trusted)
	}
	return normalise(client)
}

// fromForwarded walks X-Forwarded-For from the right: entries appended by our
// trusted proxies are skipped; the first untrusted one is the client. An entry
// that does not parse stops the walk at the last good hop, so garbage cannot
// mint a new identity.
func fromForwarded(xff string, peer netip.Addr, trusted []netip.Prefix) netip.Addr {
	parts := strings.Split(xff, ",")
	client := peer
	for i := len(parts) - 1; i >= 0; i-- {
		a, ok := parseAddr(parts[i])
		if !ok {
			return client
		}
		client = a
		if !isTrusted(a, trusted) {
			return a
		}
	}
	return client // every hop trusted: the left-most one
}

func parseAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	// "1.2.3.4:5678" or "[2001:db8::1]:443", as some proxies write them.
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	return netip.Addr{}, false
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func normalise(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// StorageKey is the item key of a (policy, client key) bucket: the policy
// name and the hex HMAC-SHA256 of the client key under secret (the
// deployment key's subkey for the limiter), so no raw IP or user id is
// stored, the whole IPv4 space hashed without the key finds none of them,
// and any key (long, odd bytes, unicode) becomes a fixed 64-character ASCII
// string.
func StorageKey(policy, clientKey string, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(clientKey))
	return policy + "#" + hex.EncodeToString(m.Sum(nil))
}

// logKey is a short, non-reversible tag of a storage key for logs.
func logKey(storageKey string) string {
	if i := strings.IndexByte(storageKey, '#'); i >= 0 && len(storageKey) >= i+13 {
		return storageKey[:i+13]
	}
	return storageKey
}
