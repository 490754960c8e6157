package httpapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
)

type innerBody struct {
	Level int `json:"level"`
}

type nestedBody struct {
	Name   *string         `json:"name"`
	Inner  *innerBody      `json:"inner"`
	List   []innerBody     `json:"list"`
	Raw    json.RawMessage `json:"raw"`
	Tagged string          `json:"tagged,omitempty"`
	Plain  int
	Hidden int `json:"-"`
}

// TestDecodeJSONStrict (finding 4): names match exactly (case-sensitive),
// nested objects included, and a duplicate key anywhere is refused; the
// contract's other codes and messages are unchanged.
func TestDecodeJSONStrict(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		code    string // "" when accepted
		details []string
	}{
		{"exact names", `{"name":"a","inner":{"level":1},"list":[{"level":2}],"raw":{"any":[1,{"x":2}]},"tagged":"t","Plain":3}`, "", nil},
		{"top-level name in other case", `{"Name":"a"}`, "VALIDATION_ERROR", []string{`unknown field "Name"`}},
		{"top-level name in upper case", `{"NAME":"a"}`, "VALIDATION_ERROR", []string{`unknown field "NAME"`}},
		{"untagged field in other case", `{"plain":3}`, "VALIDATION_ERROR", []string{`unknown field "plain"`}},
		{"ignored field", `{"Hidden":3}`, "VALIDATION_ERROR", []string{`unknown field "Hidden"`}},
		{"nested name in other case", `{"inner":{"Level":1}}`, "VALIDATION_ERROR", []string{`unknown field "inner.Level"`}},
		{"nested in a list", `{"list":[{"level":1},{"LEVEL":2}]}`, "VALIDATION_ERROR", []string{`unknown field "list.LEVEL"`}},
		{"unknown field", `{"name":"a","evil":1}`, "VALIDATION_ERROR", []string{`unknown field "evil"`}},
		{"duplicate key", `{"name":"a","name":"b"}`, "VALIDATION_ERROR", []string{`duplicate field "name"`}},
		{"duplicate by escape", `{"name":"a","n\u0061me":"b"}`, "VALIDATION_ERROR", []string{`duplicate field "name"`}},
		{"duplicate nested", `{"inner":{"level":1,"level":2}}`, "VALIDATION_ERROR", []string{`duplicate field "inner.level"`}},
		{"duplicate inside a raw value", `{"raw":{"a":1,"a":2}}`, "VALIDATION_ERROR", []string{`duplicate field "raw.a"`}},
		{"duplicate deep in a raw list", `{"raw":[{"b":[{"c":1,"c":1}]}]}`, "VALIDATION_ERROR", []string{`duplicate field "raw.b.c"`}},
		{"same key in sibling objects", `{"list":[{"level":1},{"level":2}]}`, "", nil},
		{"wrong type", `{"name":1}`, "VALIDATION_ERROR", []string{"name must be of type string"}},
		{"wrong nested type", `{"inner":{"level":"x"}}`, "VALIDATION_ERROR", []string{"inner.level must be of type integer"}},
		{"empty", ` `, "EMPTY_BODY", nil},
		{"not json", `{"name":`, "JSON_PARSE_ERROR", nil},
		{"two values", `{} {}`, "JSON_PARSE_ERROR", nil},
		{"not an object", `["name"]`, "INVALID_BODY_TYPE", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dst nestedBody
			err := httpapi.DecodeJSON([]byte(tc.body), &dst)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 || e.Code != tc.code {
				t.Fatalf("got %v, want 400 %s", err, tc.code)
			}
			if tc.details != nil && !reflect.DeepEqual(e.Details, tc.details) {
				t.Fatalf("details %q, want %q", e.Details, tc.details)
			}
		})
	}
}

// FuzzDecodeJSON: the strict decoder never panics, answers only the
// contract's 400 codes, and never accepts a body that encoding/json would
// read differently (a key that is not an exact field name, or repeated).
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a"}`, `{"NAME":"a"}`, `{"inner":{"level":1,"level":2}}`, `{"raw":[{"a":1}]}`, `{"list":[{"level":1}]}`, `[]`, ``, `{"name":"\u0061"}`} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{"EMPTY_BODY": true, "JSON_PARSE_ERROR": true, "INVALID_BODY_TYPE": true, "VALIDATION_ERROR": true}
	f.Fuzz(func(t *testing.T, body []byte) {
		var dst nestedBody
		err := httpapi.DecodeJSON(body, &dst)
		if err != nil {
			var e *httpapi.Error
			if !errors.As(err, &e) || e.Status != 400 || !codes[e.Code] {
				t.Fatalf("answered %v", err)
			}
			return
		}
		// Accepted: every key was exact and unique, so a generic decode of the
		// top level holds only known names, each once.
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			t.Fatalf("accepted a body encoding/json refuses: %v", err)
		}
		for k := range top {
			switch k {
			case "name", "inner", "list", "raw", "tagged", "Plain":
			default:
				t.Fatalf("accepted unknown key %q", k)
			}
		}
	})
}
