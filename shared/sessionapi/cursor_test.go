package sessionapi_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// TestSessionCursorsOpaque (finding 6): a session-list cursor shows no
// sessions-table key (the token's SHA-256) and any one-bit edit of it is
// refused with 400, for the caller's own listing and for all=true.
func TestSessionCursorsOpaque(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	var toks []string
	for i := 0; i < 3; i++ {
		toks = append(toks, e.login(t, masterName, e.masterPassword))
	}
	for name, q := range map[string]map[string]string{"own": {"limit": "1"}, "all": {"limit": "1", "all": "true"}} {
		t.Run(name, func(t *testing.T) {
			list := func(cursor string) apitest.Response {
				query := map[string]string{}
				for k, v := range q {
					query[k] = v
				}
				if cursor != "" {
					query["cursor"] = cursor
				}
				return e.do(t, apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(toks[0]), Query: query})
			}
			first := list("")
			cursor := first.Str("cursor")
			if first.Status != 200 || cursor == "" {
				t.Fatalf("first page: %d %s", first.Status, first.Raw)
			}
			raw, err := base64.RawURLEncoding.DecodeString(cursor)
			if err != nil {
				t.Fatalf("cursor is not base64url: %v", err)
			}
			for _, tok := range toks {
				if strings.Contains(string(raw), sessions.HashToken(tok)) || strings.Contains(cursor, sessions.HashToken(tok)) {
					t.Errorf("cursor carries a session's table key: %q", raw)
				}
			}
			if res := list(cursor); res.Status != 200 {
				t.Fatalf("the cursor as issued: %d %s", res.Status, res.Raw)
			}
			accepted := 0
			for i := range raw {
				for b := 0; b < 8; b++ {
					edited := append([]byte(nil), raw...)
					edited[i] ^= 1 << b
					if res := list(base64.RawURLEncoding.EncodeToString(edited)); res.Status != 400 || res.Str("code") != "VALIDATION_ERROR" {
						accepted++
					}
				}
			}
			if accepted > 0 {
				t.Errorf("%d of %d one-bit edits of the cursor were not refused", accepted, 8*len(raw))
			}
		})
	}
}
