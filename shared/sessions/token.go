package sessions

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Token layout: "session_<digits>_<alnum>", the original's format, so old
// client-side checks pass. The digits encode the user id (two digits per
// character), which lets validation read the session and its user in one
// BatchGetItem; the alnum part is 44 base62 characters from crypto/rand
// (about 262 bits), the secret. Only the SHA-256 of the whole token is
// stored, so the user-id digits cannot be swapped without missing the item.
const (
	tokenPrefix   = "session_"
	secretLen     = 44
	base62        = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	minTokenLen   = 10
	maxTokenLen   = 200
	userAlphabet  = "0123456789abcdefghijklmnopqrstuvwxyz_"
	handleHexSize = 16
)

// NewToken returns a fresh token for the user id (a lower-case username).
func NewToken(userID string) (string, error) {
	if len(userID) < 3 || len(userID) > 50 {
		return "", fmt.Errorf("user id of %d characters cannot be put in a token", len(userID))
	}
	for i := 0; i < len(userID); i++ {
		if strings.IndexByte(userAlphabet, userID[i]) < 0 {
			return "", fmt.Errorf("user id has a character outside [a-z0-9_]")
		}
	}
	var b strings.Builder
	b.Grow(len(tokenPrefix) + 2*len(userID) + 1 + secretLen)
	b.WriteString(tokenPrefix)
	for i := 0; i < len(userID); i++ {
		n := strings.IndexByte(userAlphabet, userID[i])
		b.WriteByte(byte('0' + n/10))
		b.WriteByte(byte('0' + n%10))
	}
	b.WriteByte('_')
	b.WriteString(randomBase62(secretLen))
	return b.String(), nil
}

// randomBase62 draws n uniform base62 characters by rejection sampling
// (bytes >= 248 are discarded so each character is unbiased).
func randomBase62(n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(err) // crypto/rand does not fail on supported platforms
		}
		for _, c := range buf {
			if c < 248 && len(out) < n {
				out = append(out, base62[c%62])
			}
		}
	}
	return string(out)
}

// WellFormed reports whether s matches the contract's token format:
// 10 to 200 characters of ^session_[0-9]+_[a-zA-Z0-9]+$.
func WellFormed(s string) bool {
	if len(s) < minTokenLen || len(s) > maxTokenLen || !strings.HasPrefix(s, tokenPrefix) {
		return false
	}
	digits, secret, ok := strings.Cut(s[len(tokenPrefix):], "_")
	if !ok || digits == "" || secret == "" {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// ParseToken returns the user id a token of this service carries; false for
// anything else (a well-formed token of the original, say), which then needs
// no store lookup to be rejected.
func ParseToken(s string) (string, bool) {
	if !WellFormed(s) {
		return "", false
	}
	digits, secret, _ := strings.Cut(s[len(tokenPrefix):], "_")
	if len(secret) != secretLen || len(digits)%2 != 0 || len(digits) < 6 || len(digits) > 100 {
		return "", false
	}
	id := make([]byte, len(digits)/2)
	for i := range id {
		n := int(digits[2*i]-'0')*10 + int(digits[2*i+1]-'0')
		if n >= len(userAlphabet) {
			return "", false
		}
		id[i] = userAlphabet[n]
	}
	return string(id), true
}

// HashToken is the stored key of a token: hex SHA-256.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// HandleOf is the public handle of a session, derived from its stored hash
// (never from the token) by a second hash, so a handle reveals nothing of
// the key.
func HandleOf(hash string) string {
	sum := sha256.Sum256([]byte("zenith-session-handle:" + hash))
	return hex.EncodeToString(sum[:handleHexSize/2])
}

// ValidHandle reports whether s has a handle's shape.
func ValidHandle(s string) bool {
	if len(s) != handleHexSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
