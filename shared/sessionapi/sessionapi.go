// Package sessionapi holds the routes of the session function (API.md
// "/api/sessions"): list the caller's sessions (or, with userManagement,
// another user's or everyone's), count all live sessions, end one by its
// public handle, end all. Another user's handle answers 404, never 403, so
// handles cannot be probed.
package sessionapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/identity"
	"github.com/zenithfresh/zenith-serverless/shared/platform"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Path is the function's base path.
const Path = "/api/sessions"

// CodeConflict answers an end-all that lost a race with another change of the user.
const CodeConflict = "CONFLICT"

// Page sizes of the listings.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

type service struct {
	sessions *sessions.Manager
	identity *identity.Service
}

// New builds the session function's app on the shared dependencies.
func New(ctx context.Context, d *platform.Deps) (*httpapi.App, error) {
	s := &service{sessions: d.Sessions, identity: d.Identity}
	app := &httpapi.App{
		Routes: []httpapi.Route{
			{Method: http.MethodGet, Path: Path, Permission: httpapi.Authenticated, Handler: s.list},
			{Method: http.MethodDelete, Path: Path, Permission: httpapi.Authenticated, Handler: s.endAll},
			{Method: http.MethodGet, Path: Path + "/count", Permission: users.PermSystemMonitoring, Handler: s.count},
			{Method: http.MethodDelete, Path: Path + "/{id}", Permission: httpapi.Authenticated, Handler: s.endOne},
		},
	}
	return d.Install(app), nil
}

// ListQuery is a validated GET /api/sessions query.
type ListQuery struct {
	UserID string // "" for the caller
	All    bool
	Limit  int
	Cursor string
}

// ParseListQuery validates the listing's query parameters; unknown ones are ignored.
func ParseListQuery(q map[string]string) (ListQuery, *httpapi.Error) {
	out := ListQuery{Limit: DefaultLimit, Cursor: q["cursor"]}
	var details []string
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit || len(v) > 4 || v[0] == '+' || v[0] == '-' {
			details = append(details, "limit must be an integer from 1 to "+strconv.Itoa(MaxLimit))
		} else {
			out.Limit = n
		}
	}
	if v, ok := q["all"]; ok {
		switch strings.ToLower(v) {
		case "true":
			out.All = true
		case "false":
		default:
			details = append(details, "all must be true or false")
		}
	}
	if v, ok := q["userId"]; ok {
		if users.ValidateUsername(v) != nil {
			details = append(details, "userId is invalid")
		} else {
			out.UserID = users.ID(v)
		}
	}
	if out.All && out.UserID != "" {
		details = append(details, "userId and all cannot be combined")
	}
	if len(out.Cursor) > 1024 {
		details = append(details, "cursor is invalid")
	}
	if len(details) > 0 {
		return out, httpapi.Validation(details...)
	}
	return out, nil
}

type sessionView struct {
	ID           string `json:"id"`
	UserID       string `json:"userId,omitempty"` // only in listings of other users
	CreatedAt    string `json:"createdAt"`
	LastActivity string `json:"lastActivity"`
	ExpiresAt    string `json:"expiresAt"`
	Current      bool   `json:"current"`
}

type listResponse struct {
	Sessions  []sessionView `json:"sessions"`
	Cursor    string        `json:"cursor,omitempty"`
	RequestID string        `json:"requestId"`
}

// list serves GET /api/sessions.
func (s *service) list(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	q, herr := ParseListQuery(r.Query)
	if herr != nil {
		return nil, herr
	}
	p := r.Principal
	other := q.All || (q.UserID != "" && q.UserID != p.UserID)
	if other && !p.Can(users.PermUserManagement) {
		return nil, httpapi.Forbidden()
	}
	var page sessions.Page
	var err error
	switch {
	case q.All:
		page, err = s.sessions.ListAll(ctx, q.Limit, q.Cursor)
	case other:
		page, err = s.sessions.ListUser(ctx, q.UserID, q.Limit, q.Cursor)
	default: // the caller's own: one Query, the version from the validated principal
		page, err = s.sessions.ListOwn(ctx, p, q.Limit, q.Cursor)
	}
	if errors.Is(err, store.ErrBadCursor) {
		return nil, httpapi.Validation("cursor is invalid")
	}
	if err != nil {
		return nil, err
	}
	cfg := s.sessions.Config()
	out := listResponse{Sessions: make([]sessionView, 0, len(page.Sessions)), Cursor: page.Cursor, RequestID: r.RequestID}
	for _, sess := range page.Sessions {
		v := sessionView{
			ID:           sess.Handle,
			CreatedAt:    users.ISO(sess.CreatedAt),
			LastActivity: users.ISO(sess.LastActivity),
			ExpiresAt:    users.ISO(sess.EffectiveExpiry(cfg)),
			Current:      sess.Hash == p.Session.Hash,
		}
		if other {
			v.UserID = sess.UserID
		}
		out.Sessions = append(out.Sessions, v)
	}
	return httpapi.JSON(http.StatusOK, out), nil
}

// count serves GET /api/sessions/count (systemMonitoring).
func (s *service) count(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	n, approximate, err := s.sessions.Count(ctx)
	if err != nil {
		return nil, err
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"count": n, "approximate": approximate}), nil
}

func sessionNotFound() *httpapi.Error { return httpapi.NotFound("Session not found") }

// endOne serves DELETE /api/sessions/{id}: the caller's own session, or with
// userManagement anyone's; otherwise 404, also for another user's handle.
func (s *service) endOne(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	p := r.Principal
	handle := r.Params["id"]
	if !sessions.ValidHandle(handle) {
		return nil, sessionNotFound()
	}
	current := p.Session
	hash, owner := "", ""
	if handle == current.Handle {
		hash, owner = current.Hash, p.UserID
	} else {
		var err error
		hash, owner, err = s.sessions.Find(ctx, handle, p.UserID)
		if err != nil {
			return nil, err
		}
		if hash == "" && p.Can(users.PermUserManagement) {
			hash, owner, err = s.sessions.Find(ctx, handle, "")
			if err != nil {
				return nil, err
			}
		}
	}
	if hash == "" {
		return nil, sessionNotFound()
	}
	// A session that had already ended (expired, or ended by a session-version
	// bump) is a 404 like an unknown one; Revoke deletes its item all the same.
	var ended bool
	var err error
	if hash == current.Hash {
		ended, err = s.sessions.RevokeValidated(ctx, current) // resolved in this request
	} else {
		ended, err = s.sessions.Revoke(ctx, hash, owner)
	}
	if err != nil {
		return nil, err
	}
	if !ended {
		return nil, sessionNotFound()
	}
	r.Logger.InfoContext(ctx, "session ended", "audit", true, "event", "session.revoked", "actor", p.UserID, "target", owner, "handle", handle)
	res := httpapi.JSON(http.StatusOK, map[string]any{"success": true, "message": "Session ended", "code": "SUCCESS"})
	if hash == current.Hash && r.TokenSource == httpapi.TokenCookie {
		res.Cookies = []string{httpapi.ClearSessionCookie}
	}
	return res, nil
}

// endAll serves DELETE /api/sessions[?userId=]: the identity service ends
// every session of the user at once.
func (s *service) endAll(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	p := r.Principal
	target := p.UserID
	if v, ok := r.Query["userId"]; ok {
		if users.ValidateUsername(v) != nil {
			return nil, httpapi.Validation("userId is invalid")
		}
		target = users.ID(v)
	}
	if target != p.UserID && !p.Can(users.PermUserManagement) {
		return nil, httpapi.Forbidden()
	}
	n, err := s.identity.EndAllSessions(ctx, users.Actor{Username: p.UserID, RequestID: r.RequestID}, target)
	switch {
	case errors.Is(err, users.ErrNotFound):
		return nil, httpapi.NotFound("User not found")
	case errors.Is(err, users.ErrConflict):
		return nil, httpapi.Conflict(CodeConflict, "The user was changed concurrently, please retry")
	case err != nil:
		return nil, err
	}
	res := httpapi.JSON(http.StatusOK, map[string]any{"success": true, "message": "All sessions ended", "code": "SUCCESS", "ended": n})
	if target == p.UserID && r.TokenSource == httpapi.TokenCookie {
		res.Cookies = []string{httpapi.ClearSessionCookie}
	}
	return res, nil
}
