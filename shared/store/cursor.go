package store

import (
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// MaxCursorLen bounds a cursor a client may send back.
const MaxCursorLen = 1024

// Cursors turns a page's LastEvaluatedKey into the opaque cursor of every
// paginated route, and back. A key holds string attributes only (every table
// here keys on strings).
type Cursors struct{}

// Encode renders key as a cursor; "" for the end (no key).
func (Cursors) Encode(key map[string]types.AttributeValue) string {
	if len(key) == 0 {
		return ""
	}
	m := make(map[string]string, len(key))
	for k, v := range key {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			m[k] = s.Value
		}
	}
	b, _ := json.Marshal(m)
	return base64.RawURLEncoding.EncodeToString(b)
}

// KeyField is one attribute a cursor must carry and how to check its value.
type KeyField struct {
	Name  string
	Valid func(string) bool // nil: any non-empty value
}

// Decode parses a cursor into the ExclusiveStartKey it stands for, which
// must have exactly the given fields, each valid; "" is the first page (nil).
func (Cursors) Decode(cursor string, fields ...KeyField) (map[string]types.AttributeValue, error) {
	if cursor == "" {
		return nil, nil
	}
	if len(cursor) > MaxCursorLen {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, ErrBadCursor
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
