package openapitest

import (
	"slices"
	"testing"
)

func TestOperationsAndWithoutSuccess(t *testing.T) {
	v := load(t)
	ops := v.Operations()
	if !slices.Equal(ops, slices.Sorted(slices.Values(routes))) {
		t.Errorf("Operations() = %v, want the routes of API.md %v", ops, routes)
	}
	before := v.Counts()
	if err := v.Check(req("GET", "/api/traffic-manager?status=true", nil, ""), answer(t, 200, trafficStatus())); err != nil {
		t.Fatal(err)
	}
	if err := v.Check(req("GET", "/api/sessions/count", bearer(), ""), api(t, 401, stdError("UNAUTHORIZED", "Authentication required"))); err != nil {
		t.Fatal(err)
	}
	got := v.Counts().Since(before)
	if got.Responses != 2 || got.Requests != 1 || got.Answers["GET /api/traffic-manager 200"] != 1 || got.Answers["GET /api/sessions/count 401"] != 1 || len(got.Answers) != 2 {
		t.Errorf("Since = %+v", got)
	}
	missing := v.WithoutSuccess(got)
	if len(missing) != len(ops)-1 || slices.Contains(missing, "GET /api/traffic-manager") || !slices.Contains(missing, "GET /api/sessions/count") {
		t.Errorf("WithoutSuccess = %v: want every operation but GET /api/traffic-manager (a 401 is no success)", missing)
	}
}
