package store

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// ErrInvalidSeal is what a Sealer's Open returns for a value it did not seal.
var ErrInvalidSeal = errors.New("invalid sealed value")

// ErrNoCursorKey is returned by Cursors without a Sealer.
var ErrNoCursorKey = errors.New("cursors: no sealing key")

// MaxCursorLen bounds a cursor a client may send back.
const MaxCursorLen = 1024

// cursorPurpose separates cursors from the keyring's other sealed values.
const cursorPurpose = "cursor"

// Sealer encrypts and authenticates short values with the deployment's key
// (keyring.Keyring): Open refuses anything Seal did not make for purpose
// with an error wrapping ErrInvalidSeal.
type Sealer interface {
	Seal(ctx context.Context, purpose string, plaintext []byte) (string, error)
	Open(ctx context.Context, purpose, sealed string) ([]byte, error)
}

// Cursors turns a page's LastEvaluatedKey into the opaque cursor of every
// paginated route, and back. A cursor is the key sealed with authenticated
// encryption, so it shows no table key (a session's token hash, a username)
// and any edit of it, or a cursor of another deployment, is refused. A key
// holds string attributes only (every table here keys on strings).
type Cursors struct {
	Sealer Sealer
}

// Encode renders key as a cursor; "" for the end (no key).
func (c Cursors) Encode(ctx context.Context, key map[string]types.AttributeValue) (string, error) {
	if len(key) == 0 {
		return "", nil
	}
	if c.Sealer == nil {
		return "", ErrNoCursorKey
	}
	m := make(map[string]string, len(key))
	for k, v := range key {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			m[k] = s.Value
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	return c.Sealer.Seal(ctx, cursorPurpose, b)
}

// KeyField is one attribute a cursor must carry and how to check its value.
type KeyField struct {
	Name  string
	Valid func(string) bool // nil: any non-empty value
}

// Decode opens a cursor into the ExclusiveStartKey it stands for, which
// must have exactly the given fields, each valid; "" is the first page (nil).
// A cursor that was not sealed here is ErrBadCursor; a failure to read the
// key (the store unreachable) is returned as it is.
func (c Cursors) Decode(ctx context.Context, cursor string, fields ...KeyField) (map[string]types.AttributeValue, error) {
	if cursor == "" {
		return nil, nil
	}
	if len(cursor) > MaxCursorLen {
		return nil, ErrBadCursor
	}
	if c.Sealer == nil {
		return nil, ErrNoCursorKey
	}
	b, err := c.Sealer.Open(ctx, cursorPurpose, cursor)
	if err != nil {
		if errors.Is(err, ErrInvalidSeal) {
			return nil, ErrBadCursor
		}
		return nil, err
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != len(fields) {
		return nil, ErrBadCursor
	}
	key := make(map[string]types.AttributeValue, len(fields))
	for _, f := range fields {
		v := m[f.Name]
		if v == "" || (f.Valid != nil && !f.Valid(v)) {
			return nil, ErrBadCursor
		}
		key[f.Name] = &types.AttributeValueMemberS{Value: v}
	}
	return key, nil
}
