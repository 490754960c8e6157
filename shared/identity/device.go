package identity

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Device cookies (OWASP "Slow down online guessing attacks with device
// cookies"): a successful login hands the client a cookie that binds the
// user id, a random device id (nonce) and the issue time with an HMAC under
// the deployment key. A login presenting a valid one for its username is
// exempt from the username-wide soft limit and has a lock of its own
// instead; the value never names its user (the MAC covers the user id, the
// login supplies it).
//
// Form: <key version>.<device id, 16 random bytes, base64url>.<issued, epoch ms>.<HMAC-SHA256, base64url>

// Signer makes and checks MACs with the deployment key (keyring.Keyring);
// Verify accepts the current and the previous key.
type Signer interface {
	Sign(ctx context.Context, purpose string, data []byte) (version uint32, mac []byte, err error)
	Verify(ctx context.Context, purpose string, version uint32, data, mac []byte) (bool, error)
}

const (
	devicePurpose = "device-cookie"
	maxDeviceLen  = 160
	deviceIDBytes = 16
)

// DeviceCookie is the device cookie a successful login sets.
type DeviceCookie struct {
	Value  string
	MaxAge time.Duration // how long it exempts the client (lockout.Policy.TrustTTL)
}

func deviceData(userID, id string, issued int64) []byte {
	return []byte("zenith-device|" + userID + "|" + id + "|" + strconv.FormatInt(issued, 10))
}

// newDevice issues a device cookie for userID.
func (s *Service) newDevice(ctx context.Context, userID string) (*DeviceCookie, error) {
	raw := make([]byte, deviceIDBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	id := base64.RawURLEncoding.EncodeToString(raw)
	issued := s.clock.Now().UnixMilli()
	v, mac, err := s.keys.Sign(ctx, devicePurpose, deviceData(userID, id, issued))
	if err != nil {
		return nil, err
	}
	value := strconv.FormatUint(uint64(v), 10) + "." + id + "." + strconv.FormatInt(issued, 10) + "." + base64.RawURLEncoding.EncodeToString(mac)
	return &DeviceCookie{Value: value, MaxAge: s.guard.Policy().TrustTTL}, nil
}

// device returns the device id of a cookie valid for userID: well formed,
// MAC right under the current or previous key, issued within the trust
// period (and not in the future). "" for anything else; an error only when
// the key cannot be read.
func (s *Service) device(ctx context.Context, userID, cookie string) (string, error) {
	if cookie == "" || len(cookie) > maxDeviceLen {
		return "", nil
	}
	parts := strings.Split(cookie, ".")
	if len(parts) != 4 {
		return "", nil
	}
	v, err1 := strconv.ParseUint(parts[0], 10, 32)
	id := parts[1]
	issued, err2 := strconv.ParseInt(parts[2], 10, 64)
	// Strict: a cookie whose unused trailing bits differ decodes to no MAC
	// at all, so no two spellings of one cookie are accepted.
	mac, err3 := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	rawID, err4 := base64.RawURLEncoding.Strict().DecodeString(id)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(rawID) != deviceIDBytes {
		return "", nil
	}
	now := s.clock.Now()
	ttl := s.guard.Policy().TrustTTL
	if issued > now.Add(time.Minute).UnixMilli() || issued+ttl.Milliseconds() <= now.UnixMilli() {
		return "", nil
	}
	ok, err := s.keys.Verify(ctx, devicePurpose, uint32(v), deviceData(userID, id, issued), mac)
	if err != nil || !ok {
		return "", err
	}
	return id, nil
}
