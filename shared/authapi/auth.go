package authapi

import (
	"context"
	"net/http"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/ratelimit"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
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

// login checks the lockout (before any hash), verifies the password against
// the stored hash or a dummy, counts failures, and starts a session.
func (s *service) login(ctx context.Context, r *httpapi.Request, req AuthRequest) (*httpapi.Response, error) {
	client := ratelimit.ClientIP(r.SourceIP, r.Header("x-forwarded-for"), s.d.Config.TrustedProxies)
	key := lockout.NewKey(req.Username, client)
	st, extra, err := s.guard.Check(ctx, key, lockout.Extra{Table: s.users.Table(), Key: users.Key(req.Username)})
	if err != nil {
		return nil, err
	}
	if st.Locked {
		r.Logger.WarnContext(ctx, "login refused: locked out", "security", true, "reason", st.Reason, "counter", key.Pair[:16])
		return nil, httpapi.TooManyRequests(CodeTooManyAttempts, "Too many failed login attempts, please try again later", st.RetryAfter).
			WithExtra("retryAfter", httpapi.CeilSeconds(st.RetryAfter))
	}
	u, err := users.DecodeUser(extra[0])
	if err != nil {
		return nil, err
	}
	if !s.checkPassword(ctx, r, u, req.Password) {
		if err := s.guard.RecordFailure(ctx, key, st); err != nil {
			return nil, err
		}
		s.d.Events.CountEvent(ctx, EventFailedLogin)
		r.Logger.WarnContext(ctx, "login failed", "security", true, "counter", key.Pair[:16], "failures", st.Failures()+1)
		return nil, httpapi.Unauthorized(CodeInvalidCredentials, "Invalid username or password")
	}
	if passwords.NeedsRehash(u.PasswordHash, s.users.PasswordParams()) {
		if err := s.users.Rehash(ctx, u, req.Password); err != nil {
			r.Logger.WarnContext(ctx, "password rehash failed", "user", u.ID, "err", err)
		}
	}
	if err := s.guard.RecordSuccess(ctx, key, st); err != nil {
		return nil, err
	}
	token, sess, err := s.sessions.Create(ctx, u)
	if err != nil {
		return nil, err
	}
	r.Logger.InfoContext(ctx, "login", "audit", true, "event", "session.created", "actor", u.ID, "target", u.ID, "handle", sess.Handle)
	body, err := s.sessionBody(ctx, r.RequestID, token, u.Username, u.Name, u.Role, sess, false)
	if err != nil {
		return nil, err
	}
	return &httpapi.Response{
		Status:  http.StatusOK,
		Body:    body,
		Cookies: []string{SessionCookie(token, int64(s.sessions.Config().MaxLifetime.Seconds()))},
	}, nil
}

// checkPassword verifies against the user's hash, or a dummy of the same
// cost when there is no such user, so both failures take comparable time.
// An inactive user fails after the same work.
func (s *service) checkPassword(ctx context.Context, r *httpapi.Request, u *users.User, password string) bool {
	phc := s.dummy
	if u != nil {
		phc = u.PasswordHash
	}
	ok, err := passwords.Verify(password, phc)
	if err != nil {
		if u != nil {
			r.Logger.ErrorContext(ctx, "stored password hash is malformed", "user", u.ID)
		}
		_, _ = passwords.Verify(password, s.dummy)
		return false
	}
	return ok && u != nil && u.Active
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
func (s *service) principal(ctx context.Context, r *httpapi.Request, tok string) (*httpapi.Principal, error) {
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
		res.Cookies = []string{ClearCookie()}
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
	sess, _ := r.Principal.Session.(*sessions.Session)
	return sess
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
	sess, _ := p.Session.(*sessions.Session)
	if sess == nil {
		return nil, httpapi.Unauthorized(CodeInvalidSession, "Invalid or expired session")
	}
	id := tok
	if src == httpapi.TokenCookie {
		id = p.Handle
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
