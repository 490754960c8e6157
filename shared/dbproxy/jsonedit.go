package dbproxy

import (
	"bytes"
	"encoding/json"
	"errors"
)

// member is one top-level member of a JSON object, as byte offsets into the body.
type member struct {
	key        string
	start      int // where removing the member starts: after '{' or the previous value, so a leading comma is included
	valueStart int
	valueEnd   int
}

var errNotObject = errors.New("not a JSON object")

// members lists the top-level members of a JSON object without re-encoding
// anything, so edits can splice bytes and leave the rest of the body exactly
// as DynamoDB wrote it. open is the offset just after '{'.
func members(body []byte) (ms []member, open int, err error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, 0, errNotObject
	}
	open = int(dec.InputOffset())
	prev := open
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, 0, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, 0, err
		}
		end := int(dec.InputOffset())
		ms = append(ms, member{key: key, start: prev, valueStart: end - len(raw), valueEnd: end})
		prev = end
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, 0, err
	}
	for _, c := range body[dec.InputOffset():] {
		if !isSpace(c) {
			return nil, 0, errNotObject // something after the object
		}
	}
	return ms, open, nil
}

// removeMember returns body without the top-level member key and that
// member's value; ok is false (and body is returned as is) when there is no
// such member or body is not a JSON object.
func removeMember(body []byte, key string) (out []byte, value json.RawMessage, ok bool) {
	ms, _, err := members(body)
	if err != nil {
		return body, nil, false
	}
	for i, m := range ms {
		if m.key != key {
			continue
		}
		end := m.valueEnd
		if i == 0 {
			// The first member has no leading comma: take the following one instead.
			j := end
			for j < len(body) && isSpace(body[j]) {
				j++
			}
			if j < len(body) && body[j] == ',' {
				end = j + 1
			}
		}
		out = make([]byte, 0, len(body)-(end-m.start))
		out = append(out, body[:m.start]...)
		out = append(out, body[end:]...)
		return out, json.RawMessage(body[m.valueStart:m.valueEnd]), true
	}
	return body, nil, false
}

// memberValue returns the raw value of the top-level member key, if any.
func memberValue(body []byte, key string) (json.RawMessage, bool) {
	ms, _, err := members(body)
	if err != nil {
		return nil, false
	}
	for _, m := range ms {
		if m.key == key {
			return json.RawMessage(body[m.valueStart:m.valueEnd]), true
		}
	}
	return nil, false
}

// setMember returns body with the top-level member key set to value (a JSON
// text): its value replaced when present, else the member added first.
func setMember(body []byte, key string, value []byte) ([]byte, error) {
	ms, open, err := members(body)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.key == key {
			out := make([]byte, 0, len(body)+len(value))
			out = append(out, body[:m.valueStart]...)
			out = append(out, value...)
			return append(out, body[m.valueEnd:]...), nil
		}
	}
	k, _ := json.Marshal(key)
	out := make([]byte, 0, len(body)+len(k)+len(value)+2)
	out = append(out, body[:open]...)
	out = append(out, k...)
	out = append(out, ':')
	out = append(out, value...)
	if len(ms) > 0 {
		out = append(out, ',')
	}
	return append(out, body[open:]...), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
