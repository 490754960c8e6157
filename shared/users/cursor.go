package users

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = errors.New("invalid cursor")

// EncodeCursor renders a LastEvaluatedKey of string attributes as an opaque
// URL-safe cursor; "" for the end.
func EncodeCursor(key map[string]types.AttributeValue) string {
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

// DecodeCursorFields parses a cursor into its string fields, which must be
// exactly the given names. "" decodes to nil (the first page).
func DecodeCursorFields(cursor string, names ...string) (map[string]string, error) {
	if cursor == "" {
		return nil, nil
	}
	if len(cursor) > 1024 {
		return nil, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, ErrBadCursor
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil || len(m) != len(names) {
		return nil, ErrBadCursor
	}
	for _, n := range names {
		if m[n] == "" {
			return nil, ErrBadCursor
		}
	}
	return m, nil
}

// usersKeyPattern matches every key shape of the users table (a scan page
// may end on a role or meta item as well as on a user).
var usersKeyPattern = regexp.MustCompile(`^(user|role|meta)#[a-zA-Z0-9_]{1,64}$`)

// DecodeCursor parses a users-table cursor.
func DecodeCursor(cursor string) (map[string]types.AttributeValue, error) {
	m, err := DecodeCursorFields(cursor, "pk")
	if err != nil || m == nil {
		return nil, err
	}
	if !usersKeyPattern.MatchString(m["pk"]) {
		return nil, ErrBadCursor
	}
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: m["pk"]}}, nil
}
