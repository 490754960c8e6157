package authapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/identity"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
)

// post serves POST /api/auth {action, username, password, sessionId}.
func (s *service) post(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	req, herr := ParseAuthRequest(r.Body)
	if herr != nil {
		return nil, herr
	}
	switch req.Action {
	case ActionLogin:
		return s.login(ctx, r, req)
	case ActionLogout:
		return s.logout(ctx, r, req)
	default:
		return s.validate(ctx, r, req.SessionID, true)
	}
}

// prefetchLogin prepares a well-formed login's attempt (lockout counters and
// the user, one read) alongside the limiter, once the bootstrap is done (the
// master user may not exist before). Anything else is left to the handler.
func (s *service) prefetchLogin(ctx context.Context, r *httpapi.Request) any {
	if !s.boot.isReady() {
		return nil
	}
	req, herr := ParseAuthRequest(r.Body)
	if herr != nil || req.Action != ActionLogin {
		return nil
	}
	a, err := s.identity.Prepare(ctx, req.Username, identity.Client{IP: r.ClientIP, Device: r.Cookies[DeviceCookie]})
	if err != nil {
		return nil // the handler reads again and answers the error
	}
	return a
}

// login runs the identity service's login and maps its outcome; it sets
// the session cookie and a new device cookie.
func (s *service) login(ctx context.Context, r *httpapi.Request, req AuthRequest) (*httpapi.Response, error) {
	if err := s.boot.ready(ctx); err != nil {
		return nil, err
	}
	client := identity.Client{IP: r.ClientIP, Device: r.Cookies[DeviceCookie]}
	attempt, _ := httpapi.Prefetched[*identity.Attempt](r)
	if !attempt.For(req.Username, client) {
		var err error
		if attempt, err = s.identity.Prepare(ctx, req.Username, client); err != nil {
			return nil, credentialsError(err)
		}
	}
	in, err := s.identity.Finish(ctx, attempt, req.Password)
	if err != nil {
		return nil, credentialsError(err)
	}
	u := in.User
	body, err := s.sessionBody(ctx, r.RequestID, in.Token, u.Username, u.Name, u.Role, in.Session, false)
	if err != nil {
		return nil, err
	}
	return &httpapi.Response{
		Status:  http.StatusOK,
		Body:    body,
		Cookies: []string{httpapi.SessionCookieFor(in.Token, s.sessions.Config().MaxLifetime), deviceCookieFor(in.Device)},
	}, nil
}

// credentialsError maps a refused credential check (a login, or the
// current password of one's own password change).
func credentialsError(err error) error {
	var locked *identity.LockedError
	switch {
	case errors.As(err, &locked):
		return httpapi.TooManyRequests(CodeTooManyAttempts, "Too many failed login attempts, please try again later", locked.RetryAfter).
			WithExtra("retryAfter", httpapi.CeilSeconds(locked.RetryAfter))
	case errors.Is(err, identity.ErrInvalidCredentials):
		return httpapi.Unauthorized(CodeInvalidCredentials, "Invalid username or password")
	}
	return err
}

// token returns the session token by the contract's precedence: the body's
// sessionId, then the bearer header, cookie or (GET only) query that
// httpapi already read.
func token(r *httpapi.Request, bodyToken string) (string, httpapi.TokenSource) {
	if bodyToken != "" {
		return bodyToken, httpapi.TokenBody
	}
	return r.Token, r.TokenSource
}

// principal resolves tok once: httpapi already resolved the header, cookie
// or query token.
func (s *service) principal(ctx context.Context, r *httpapi.Request, tok string) (*sessions.Principal, error) {
	if tok == r.Token && r.TokenSource != httpapi.TokenNone {
		return r.Principal, nil
	}
	return s.sessions.Resolve(ctx, tok)
}

// logout ends the session with one conditional delete (plus a read of the
// user when the session was not resolved in this request). A session that
// had already ended (expired, or ended by a session-version bump) answers
// SESSION_NOT_FOUND like an unknown one; its item is deleted all the same.
func (s *service) logout(ctx context.Context, r *httpapi.Request, req AuthRequest) (*httpapi.Response, error) {
	tok, _ := token(r, req.SessionID)
	if tok == "" {
		return nil, httpapi.Validation("Session ID is required")
	}
	var ended bool
	var err error
	if sess := resolvedSession(r, tok); sess != nil {
		ended, err = s.sessions.RevokeValidated(ctx, sess)
	} else {
		ended, err = s.sessions.Logout(ctx, tok)
	}
	if err != nil {
		return nil, err
	}
	res := &httpapi.Response{Status: http.StatusOK}
	// Clear the cookie unless it holds another session than the one ended.
	if c := r.Cookies[httpapi.SessionCookie]; c == "" || c == tok {
		res.Cookies = []string{httpapi.ClearSessionCookie}
	}
	if !ended {
		res.Body = map[string]any{"success": false, "message": "Session not found", "code": CodeSessionNotFound}
		return res, nil
	}
	r.Logger.InfoContext(ctx, "logout", "audit", true, "event", "session.ended", "handle", sessions.HandleOf(sessions.HashToken(tok)))
	res.Body = map[string]any{"success": true, "message": "Logged out successfully", "code": CodeSuccess}
	return res, nil
}

// resolvedSession returns the session of tok when the middleware validated
// it in this request; nil otherwise.
func resolvedSession(r *httpapi.Request, tok string) *sessions.Session {
	if r.Principal == nil || tok != r.Token || r.TokenSource == httpapi.TokenNone {
		return nil
	}
	return r.Principal.Session
}

// validate answers as login plus session.lastActivity. session.id is the
// token when the caller presented it (body, header or query); when only the
// HttpOnly cookie carried it, it is the public handle, so page scripts
// cannot read the token back.
func (s *service) validate(ctx context.Context, r *httpapi.Request, bodyToken string, post bool) (*httpapi.Response, error) {
	tok, src := token(r, bodyToken)
	if tok == "" {
		if post {
			return nil, httpapi.Validation("Session ID is required")
		}
		return nil, httpapi.Unauthorized(CodeInvalidSession, "Session token is required")
	}
	p, err := s.principal(ctx, r, tok)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, httpapi.Unauthorized(CodeInvalidSession, "Invalid or expired session")
	}
	if err := s.boot.ready(ctx); err != nil { // the body shows the role
		return nil, err
	}
	sess := p.Session
	id := tok
	if src == httpapi.TokenCookie {
		id = sess.Handle
	}
	body, err := s.sessionBody(ctx, r.RequestID, id, p.Username, p.Name, p.Role, sess, true)
	if err != nil {
		return nil, err
	}
	res := &httpapi.Response{Status: http.StatusOK, Body: body}
	if src == httpapi.TokenQuery {
		res.Headers = map[string]string{"Deprecation": "true"}
	}
	return res, nil
}

// getValidate serves GET /api/auth (token from header, cookie or ?sessionId=).
func (s *service) getValidate(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	return s.validate(ctx, r, "", false)
}
