package authapi

import (
	"errors"
	"strconv"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Actions of POST /api/auth.
const (
	ActionLogin    = "login"
	ActionLogout   = "logout"
	ActionValidate = "validate"
)

// authBody is POST /api/auth's body; pointers tell absent from empty.
type authBody struct {
	Action    *string `json:"action"`
	Username  *string `json:"username"`
	Password  *string `json:"password"`
	SessionID *string `json:"sessionId"`
}

// AuthRequest is a validated POST /api/auth request.
type AuthRequest struct {
	Action    string
	Username  string
	Password  string
	SessionID string // "" when absent
}

// ParseAuthRequest decodes and validates a POST /api/auth body with the
// contract's codes: EMPTY_BODY, JSON_PARSE_ERROR, INVALID_BODY_TYPE,
// MISSING_ACTION, INVALID_ACTION and VALIDATION_ERROR (unknown field, wrong
// type, or the field rules, all listed in details).
func ParseAuthRequest(body []byte) (AuthRequest, *httpapi.Error) {
	var b authBody
	if err := httpapi.DecodeJSON(body, &b); err != nil {
		return AuthRequest{}, asError(err)
	}
	var req AuthRequest
	if b.Action == nil || *b.Action == "" {
		return req, httpapi.BadRequest(CodeMissingAction, "Action is required")
	}
	req.Action = *b.Action
	switch req.Action {
	case ActionLogin, ActionLogout, ActionValidate:
	default:
		return req, httpapi.BadRequest(CodeInvalidAction, "Invalid action. Must be one of: login, logout, validate")
	}
	req.Username, req.Password, req.SessionID = deref(b.Username), deref(b.Password), deref(b.SessionID)
	var details []string
	if req.Action == ActionLogin {
		details = append(details, users.ValidateUsername(req.Username)...)
		details = append(details, users.ValidatePassword(req.Password)...)
	}
	// An empty sessionId counts as absent: the header or cookie token may stand in.
	if req.SessionID != "" {
		details = append(details, ValidateSessionID(req.SessionID)...)
	}
	if len(details) > 0 {
		return req, httpapi.Validation(details...)
	}
	return req, nil
}

// ValidateSessionID returns the contract's messages for a bad sessionId.
func ValidateSessionID(s string) []string {
	if s == "" {
		return []string{"Session ID is required"}
	}
	if len(s) < 10 || len(s) > 200 {
		return []string{"Session ID must be between 10 and 200 characters"}
	}
	if !sessions.WellFormed(s) {
		return []string{"Session ID format is invalid"}
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func asError(err error) *httpapi.Error {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e
	}
	return httpapi.BadRequest(httpapi.CodeJSONParse, "Invalid JSON in request body")
}

// limitParam parses a page size: a plain integer from 1 to max, def when absent.
func limitParam(r *httpapi.Request, def, max int) (int, *httpapi.Error) {
	v, ok := r.Query["limit"]
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max || len(v) > 4 || v[0] == '+' || v[0] == '-' {
		return 0, httpapi.Validation("limit must be an integer from 1 to " + strconv.Itoa(max))
	}
	return n, nil
}

func userNotFound() *httpapi.Error { return httpapi.NotFound("User not found") }
