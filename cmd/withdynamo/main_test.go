package main

import "testing"

// With DYNAMODB_ENDPOINT already set nothing is started: the command runs with
// that endpoint and its exit status comes back.
func TestRunPassesEndpointAndExitStatus(t *testing.T) {
	t.Setenv("DYNAMODB_ENDPOINT", "http://127.0.0.1:1")
	cases := []struct {
		name string
		args []string
		want int
	}{
		{"sees the endpoint", []string{"--", "sh", "-c", `test "$DYNAMODB_ENDPOINT" = http://127.0.0.1:1`}, 0},
		{"exit status", []string{"--", "sh", "-c", "exit 3"}, 3},
		{"without --", []string{"true"}, 0},
		{"no command", []string{"--"}, 2},
		{"command not found", []string{"--", "/nonexistent/zenith-cmd"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := run(tc.args); got != tc.want {
				t.Errorf("run(%q) = %d, want %d", tc.args, got, tc.want)
			}
		})
	}
}
