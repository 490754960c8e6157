package sessionapi_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/apitest"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessionapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// TestListCalls: GET /api/sessions reads, besides the session resolution
// (one BatchGetItem of the session and its user), one Query of the index
// for the caller's own sessions, which projects all a listing needs; for
// another user's, that Query and a GetItem of the user, issued together.
// No session item is read.
func TestListCalls(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	ctx := context.Background()
	admin := e.login(t, masterName, e.masterPassword)
	pw := apitest.RandomPassword(t)
	e.createUser(t, admin, "listed", pw, "staff_tester")
	e.login(t, "listed", pw)
	calls := &store.CallCounter{}
	deps, err := platform.New(ctx, e.env.Config, platform.WithClock(e.clock),
		platform.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), platform.WithMetricsOutput(io.Discard), platform.WithDynamoDBOptions(calls.Option()))
	if err != nil {
		t.Fatal(err)
	}
	app, err := sessionapi.New(ctx, deps)
	if err != nil {
		t.Fatal(err)
	}
	sessions, index, usersTable := e.env.Tables.Sessions, e.env.Tables.Sessions+"/index/"+"userId-index", e.env.Tables.Users
	resolve := map[store.Access]int{{Action: "dynamodb:BatchGetItem", Table: sessions}: 1, {Action: "dynamodb:BatchGetItem", Table: usersTable}: 1}
	for _, tc := range []struct {
		name  string
		query map[string]string
		want  map[store.Access]int
	}{
		{"own", nil, map[store.Access]int{{Action: "dynamodb:Query", Table: index}: 1}},
		{"another user's", map[string]string{"userId": "listed"}, map[store.Access]int{
			{Action: "dynamodb:Query", Table: index}: 1, {Action: "dynamodb:GetItem", Table: usersTable}: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := apitest.Request{Method: http.MethodGet, Path: "/api/sessions", Headers: apitest.Bearer(admin), Query: tc.query}
			apitest.Do(t, app.Handle, req.Event()) // warms the role cache
			calls.Reset()
			if res := apitest.Do(t, app.Handle, req.Event()); res.Status != 200 || len(sessionsOf(res)) == 0 {
				t.Fatalf("%d %s", res.Status, res.Raw)
			}
			got := map[store.Access]int{}
			for a, n := range calls.AccessSnapshot() {
				if a.Table == sessions || a.Table == index || a.Table == usersTable {
					got[a] = n
				}
			}
			want := maps.Clone(resolve)
			maps.Copy(want, tc.want)
			if !maps.Equal(got, want) {
				t.Fatalf("calls on the identity tables %v, want %v", got, want)
			}
		})
	}
}
