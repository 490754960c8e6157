// Package passwords hashes and verifies staff passwords with argon2id, stored
// in the PHC string format ($argon2id$v=19$m=…,t=…,p=…$salt$hash), so the
// parameters travel with each hash and can be raised later (NeedsRehash).
package passwords

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // iterations
	Threads uint8  // lanes
	SaltLen uint32 // bytes
	KeyLen  uint32 // bytes
}

// Default is the OWASP minimum for argon2id (m=19 MiB, t=2, p=1) with a
// 16-byte salt and a 32-byte key; DESIGN.md asks for at least this.
var Default = Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Upper bounds on parameters read back from a stored hash, so a corrupt or
// hostile item cannot make one login allocate gigabytes or spin for minutes.
const (
	maxMemory  = 1 << 20 // 1 GiB in KiB
	maxTime    = 64
	maxThreads = 64
	maxSaltLen = 64
	maxKeyLen  = 128
)

// ErrMalformed is returned for a stored hash that is not an argon2id PHC string.
var ErrMalformed = errors.New("malformed argon2id hash")

var b64 = base64.RawStdEncoding

// Hash returns the PHC string of password under p with a fresh random salt.
func Hash(password string, p Params) (string, error) {
	if err := p.validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return encode(p, salt, key), nil
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func (p Params) validate() error {
	switch {
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("argon2id memory %d KiB out of range", p.Memory)
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("argon2id time %d out of range", p.Time)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("argon2id threads %d out of range", p.Threads)
	case p.SaltLen < 8 || p.SaltLen > maxSaltLen:
		return fmt.Errorf("argon2id salt length %d out of range", p.SaltLen)
	case p.KeyLen < 16 || p.KeyLen > maxKeyLen:
		return fmt.Errorf("argon2id key length %d out of range", p.KeyLen)
	}
	return nil
}

// Decoded is a parsed PHC string.
type Decoded struct {
	Params Params
	Salt   []byte
	Key    []byte
}

// Decode parses an argon2id PHC string, rejecting anything else and any
// parameter outside sane bounds.
func Decode(phc string) (Decoded, error) {
	parts := strings.Split(phc, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return Decoded{}, ErrMalformed
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return Decoded{}, fmt.Errorf("%w: unsupported version", ErrMalformed)
	}
	var p Params
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return Decoded{}, ErrMalformed
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return Decoded{}, ErrMalformed
		}
		switch k {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > maxThreads {
				return Decoded{}, ErrMalformed
			}
			p.Threads = uint8(n)
		default:
			return Decoded{}, ErrMalformed
		}
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return Decoded{}, ErrMalformed
	}
	key, err := b64.DecodeString(parts[5])
	if err != nil {
		return Decoded{}, ErrMalformed
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	if err := p.validate(); err != nil {
		return Decoded{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return Decoded{Params: p, Salt: salt, Key: key}, nil
}

// Verify reports whether password matches the PHC string, comparing in
// constant time. A malformed hash is an error, never a match.
func Verify(password, phc string) (bool, error) {
	d, err := Decode(phc)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), d.Salt, d.Params.Time, d.Params.Memory, d.Params.Threads, d.Params.KeyLen)
	return subtle.ConstantTimeCompare(key, d.Key) == 1, nil
}

// NeedsRehash reports whether the stored hash is weaker than p (or not a
// valid argon2id hash at all), so a successful login should store a new one.
func NeedsRehash(phc string, p Params) bool {
	d, err := Decode(phc)
	if err != nil {
		return true
	}
	q := d.Params
	return q.Memory < p.Memory || q.Time < p.Time || q.Threads < p.Threads || q.KeyLen < p.KeyLen || q.SaltLen < p.SaltLen
}

// Dummy returns a well-formed hash under p that no password matches (its key
// is random), for verifying against when the user does not exist, so an
// unknown user costs the same time as a wrong password.
func Dummy(p Params) string {
	salt := make([]byte, p.SaltLen)
	key := make([]byte, p.KeyLen)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(key)
	return encode(p, salt, key)
}
