// Package identity holds the use cases of staff identity that span several
// stores: a login (lockout, password check, rehash, session), ending all of a
// user's sessions, and the staff user changes that end sessions. Handlers
// parse, call one method here and map the result; the stores stay simple.
package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/lockout"
	"github.com/zenithfresh/zenith-serverless/shared/metrics"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// ErrInvalidCredentials is a failed login: unknown user, wrong password or
// inactive user alike.
var ErrInvalidCredentials = errors.New("invalid username or password")

// LockedError refuses a login attempt made during a lockout.
type LockedError struct {
	RetryAfter time.Duration
	Reason     string // "pair" or "username"
}

func (e *LockedError) Error() string { return "login locked out (" + e.Reason + ")" }

// EventCounter counts security events (failed logins) for the alert rules.
type EventCounter interface {
	CountEvent(ctx context.Context, name string)
}

// Service runs the identity use cases.
type Service struct {
	db       store.BatchGetAPI
	users    *users.Store
	sessions *sessions.Manager
	guard    *lockout.Guard
	events   EventCounter
	clock    clock.Clock
	logger   *slog.Logger
	dummy    string // a hash no password matches, for unknown users
}

// Parts are what a Service is built from.
type Parts struct {
	DB       store.BatchGetAPI // reads the lockout counters and the user in one call
	Users    *users.Store
	Sessions *sessions.Manager
	Guard    *lockout.Guard
	Events   EventCounter // nil: not counted
	Clock    clock.Clock
	Logger   *slog.Logger
}

// New returns the identity service.
func New(p Parts) *Service {
	if p.Logger == nil {
		p.Logger = slog.Default()
	}
	if p.Clock == nil {
		p.Clock = clock.System{}
	}
	return &Service{
		db: p.DB, users: p.Users, sessions: p.Sessions, guard: p.Guard, events: p.Events,
		clock: p.Clock, logger: p.Logger, dummy: passwords.Dummy(p.Users.PasswordParams()),
	}
}

// Users returns the user store.
func (s *Service) Users() *users.Store { return s.users }

// Sessions returns the session manager.
func (s *Service) Sessions() *sessions.Manager { return s.sessions }

// Client is where a login attempt comes from.
type Client struct {
	IP string // the client address as the limiter counts it (IPv6 by /64)
}

// Login is a successful login.
type Login struct {
	Token   string // handed to the client once, never stored
	Session *sessions.Session
	User    *users.User
}

// Login checks the lockout before any hash (one BatchGetItem reads the
// counters and the user), verifies the password against the stored hash or a
// dummy of the same cost, counts a failure, rehashes under stronger
// parameters, and starts a session. Errors: *LockedError,
// ErrInvalidCredentials, or a store error.
func (s *Service) Login(ctx context.Context, username, password string, c Client) (*Login, error) {
	key := lockout.NewKey(username, c.IP)
	keys := s.guard.Keys(key)
	userKey := users.Key(username)
	keys[s.users.Table()] = append(keys[s.users.Table()], userKey)
	items, err := store.BatchGet(ctx, s.db, keys)
	if err != nil {
		return nil, fmt.Errorf("login read: %w", err)
	}
	st, err := s.guard.Evaluate(key, items)
	if err != nil {
		return nil, err
	}
	if st.Locked {
		s.logger.WarnContext(ctx, "login refused: locked out", "security", true, "reason", st.Reason, "counter", key.Pair[:16])
		return nil, &LockedError{RetryAfter: st.RetryAfter, Reason: st.Reason}
	}
	u, err := users.DecodeUser(items.Find(s.users.Table(), userKey))
	if err != nil {
		return nil, err
	}
	if !s.checkPassword(ctx, u, password) {
		if err := s.guard.RecordFailure(ctx, key, st); err != nil {
			return nil, err
		}
		if s.events != nil {
			s.events.CountEvent(ctx, metrics.EventFailedLogin)
		}
		s.logger.WarnContext(ctx, "login failed", "security", true, "counter", key.Pair[:16], "failures", st.Failures()+1)
		return nil, ErrInvalidCredentials
	}
	if passwords.NeedsRehash(u.PasswordHash, s.users.PasswordParams()) {
		if err := s.users.Rehash(ctx, u, password); err != nil {
			s.logger.WarnContext(ctx, "password rehash failed", "user", u.ID, "err", err)
		}
	}
	if err := s.guard.RecordSuccess(ctx, key, st); err != nil {
		return nil, err
	}
	token, sess, err := s.sessions.Create(ctx, u)
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "login", "audit", true, "event", "session.created", "actor", u.ID, "target", u.ID, "handle", sess.Handle)
	return &Login{Token: token, Session: sess, User: u}, nil
}

// checkPassword verifies against the user's hash, or a dummy of the same
// cost when there is no such user, so both failures take comparable time.
// An inactive user fails after the same work.
func (s *Service) checkPassword(ctx context.Context, u *users.User, password string) bool {
	phc := s.dummy
	if u != nil {
		phc = u.PasswordHash
	}
	ok, err := passwords.Verify(password, phc)
	if err != nil {
		if u != nil {
			s.logger.ErrorContext(ctx, "stored password hash is malformed", "user", u.ID)
		}
		_, _ = passwords.Verify(password, s.dummy)
		return false
	}
	return ok && u != nil && u.Active
}

// EndAllSessions ends every session of the user at once by moving their
// session version on (exact even for sessions the index has not caught up
// with), then deletes the items; it returns how many items it found. A
// failed cleanup only leaves ended items for TTL to remove.
func (s *Service) EndAllSessions(ctx context.Context, actor users.Actor, username string) (int, error) {
	u, err := s.users.EndSessions(ctx, actor, username)
	if err != nil {
		return 0, err
	}
	return s.cleanSessions(ctx, u.ID), nil
}

// cleanSessions deletes the items of sessions already ended by the session
// version; a failure only leaves dead items for TTL to remove.
func (s *Service) cleanSessions(ctx context.Context, userID string) int {
	n, err := s.sessions.DeleteAll(ctx, userID)
	if err != nil {
		s.logger.WarnContext(ctx, "deleting ended sessions failed", "user", userID, "err", err)
	}
	return n
}

// CreateUser adds a staff user.
func (s *Service) CreateUser(ctx context.Context, actor users.Actor, in users.NewUser) (*users.User, error) {
	return s.users.Create(ctx, actor, in)
}

// UpdateUser applies ch to a user; a role, password or active change ends
// that user's sessions at once (reported as true).
func (s *Service) UpdateUser(ctx context.Context, actor users.Actor, username string, ch users.Changes) (*users.User, bool, error) {
	u, ended, err := s.users.Update(ctx, actor, username, ch)
	if err != nil {
		return nil, false, err
	}
	if ended {
		s.cleanSessions(ctx, u.ID)
	}
	return u, ended, nil
}

// DeactivateUser deactivates a user and ends their sessions (the item stays,
// so the name cannot be reused to inherit anything).
func (s *Service) DeactivateUser(ctx context.Context, actor users.Actor, username string) (*users.User, error) {
	u, err := s.users.Deactivate(ctx, actor, username)
	if err != nil {
		return nil, err
	}
	s.cleanSessions(ctx, u.ID)
	return u, nil
}
