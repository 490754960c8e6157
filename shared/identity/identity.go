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
	Reason     string // "pair", "device" or "username"
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
	keys     Signer
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
	Keys     Signer       // signs and checks device cookies (the deployment keyring)
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
		db: p.DB, users: p.Users, sessions: p.Sessions, guard: p.Guard, events: p.Events, keys: p.Keys,
		clock: p.Clock, logger: p.Logger, dummy: passwords.Dummy(p.Users.PasswordParams()),
	}
}

// Users returns the user store.
func (s *Service) Users() *users.Store { return s.users }

// Sessions returns the session manager.
func (s *Service) Sessions() *sessions.Manager { return s.sessions }

// Client is where a login attempt comes from.
type Client struct {
	IP     string // the client address as the limiter counts it (IPv6 by /64)
	Device string // the device cookie it sent ("" for none)
}

// Login is a successful login.
type Login struct {
	Token   string // handed to the client once, never stored
	Session *sessions.Session
	User    *users.User
	Device  *DeviceCookie // the device cookie to set
}

// Attempt is what a login reads before any hash: the lockout state of the
// (username, client, device) and the user, in one BatchGetItem. It only
// reads, so it may be prepared while the rate limiter decides.
type Attempt struct {
	username string
	client   Client
	device   string // the verified device id ("" when none or not valid)
	key      lockout.Key
	state    lockout.State
	user     *users.User
}

// For reports whether the attempt was prepared for this username and client.
func (a *Attempt) For(username string, c Client) bool {
	return a != nil && a.username == username && a.client == c
}

// Prepare reads a login attempt: it checks the device cookie, and reads the
// lockout counters and the user in one strongly consistent BatchGetItem.
func (s *Service) Prepare(ctx context.Context, username string, c Client) (*Attempt, error) {
	device, err := s.device(ctx, users.ID(username), c.Device)
	if err != nil {
		return nil, fmt.Errorf("device cookie: %w", err)
	}
	key, err := s.guard.Key(ctx, username, c.IP, device)
	if err != nil {
		return nil, fmt.Errorf("login key: %w", err)
	}
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
	u, err := users.DecodeUser(items.Find(s.users.Table(), userKey))
	if err != nil {
		return nil, err
	}
	return &Attempt{username: username, client: c, device: device, key: key, state: st, user: u}, nil
}

// Login is Prepare then Finish.
func (s *Service) Login(ctx context.Context, username, password string, c Client) (*Login, error) {
	a, err := s.Prepare(ctx, username, c)
	if err != nil {
		return nil, err
	}
	return s.Finish(ctx, a, password)
}

// Finish decides a prepared attempt: refused during a lockout (before any
// hash), else the password is verified against the stored hash or a dummy of
// the same cost; a failure is counted, a success rehashes under stronger
// parameters, starts a session and issues a new device cookie. A valid
// device cookie for the username exempts the attempt from the username-wide
// limit (the device's own lock applies instead). Errors: *LockedError,
// ErrInvalidCredentials, or a store error.
func (s *Service) Finish(ctx context.Context, a *Attempt, password string) (*Login, error) {
	key, st, u, device := a.key, a.state, a.user, a.device
	if st.Locked {
		s.logger.WarnContext(ctx, "login refused: locked out", "security", true, "reason", st.Reason, "counter", key.Pair[:16], "device", device != "")
		return nil, &LockedError{RetryAfter: st.RetryAfter, Reason: st.Reason}
	}
	if !s.checkPassword(ctx, u, password) {
		if err := s.guard.RecordFailure(ctx, key, st); err != nil {
			return nil, err
		}
		if s.events != nil {
			s.events.CountEvent(ctx, metrics.EventFailedLogin)
		}
		s.logger.WarnContext(ctx, "login failed", "security", true, "counter", key.Pair[:16], "failures", st.Failures()+1, "device", device != "")
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
	cookie, err := s.newDevice(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("device cookie: %w", err)
	}
	token, sess, err := s.sessions.Create(ctx, u)
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "login", "audit", true, "event", "session.created", "actor", u.ID, "target", u.ID, "handle", sess.Handle)
	return &Login{Token: token, Session: sess, User: u, Device: cookie}, nil
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

// ErrForbidden refuses a staff change the actor may not make (users.ErrForbidden).
var ErrForbidden = users.ErrForbidden

// caller checks that a staff change comes from a user with a role (from
// their session's principal): the rules of who may change whom need it.
func caller(actor users.Actor) error {
	if actor.Username == "" || actor.Role == "" {
		return ErrForbidden
	}
	return nil
}

// CreateUser adds a staff user; only a master_admin creates a master_admin.
func (s *Service) CreateUser(ctx context.Context, actor users.Actor, in users.NewUser) (*users.User, error) {
	if err := caller(actor); err != nil {
		return nil, err
	}
	return s.users.Create(ctx, actor, in)
}

// UpdateUser applies ch to a user; a role, password or active change ends
// that user's sessions at once (reported as true). Only a master_admin
// grants master_admin or changes a master_admin; the master user is never
// deactivated or demoted; a user's change of their own password needs the
// current one, and a wrong one counts as a failed login for the lockout
// (so a stolen session cannot guess it at the API rate) and answers
// ErrInvalidCredentials, or *LockedError while locked out. The session the
// change comes through counts like a device cookie: it has its own lock,
// whatever the addresses, and the username-wide limit (which a distributed
// attack on the username may have tripped) does not refuse its owner.
func (s *Service) UpdateUser(ctx context.Context, actor users.Actor, username string, ch users.Changes) (*users.User, bool, error) {
	if err := caller(actor); err != nil {
		return nil, false, err
	}
	var key lockout.Key
	var st lockout.State
	self := ch.Password != nil && users.ID(actor.Username) == users.ID(username)
	if self && ch.CurrentPassword != nil && *ch.CurrentPassword != "" {
		var err error
		if key, err = s.guard.Key(ctx, username, actor.ClientIP, "session:"+actor.Session); err != nil {
			return nil, false, err
		}
		if st, err = s.guard.Check(ctx, key); err != nil {
			return nil, false, err
		}
		if st.Locked {
			return nil, false, &LockedError{RetryAfter: st.RetryAfter, Reason: st.Reason}
		}
	}
	u, ended, err := s.users.Update(ctx, actor, username, ch)
	if errors.Is(err, users.ErrWrongPassword) {
		if key.Pair != "" { // always set when a current password was given
			if err := s.guard.RecordFailure(ctx, key, st); err != nil {
				return nil, false, err
			}
			s.logger.WarnContext(ctx, "password change refused: wrong current password", "security", true, "user", users.ID(username), "counter", key.Pair[:16])
		}
		if s.events != nil {
			s.events.CountEvent(ctx, metrics.EventFailedLogin)
		}
		return nil, false, ErrInvalidCredentials
	}
	if err != nil {
		return nil, false, err
	}
	if ended {
		s.cleanSessions(ctx, u.ID)
	}
	return u, ended, nil
}

// DeactivateUser deactivates a user and ends their sessions (the item stays,
// so the name cannot be reused to inherit anything). The master user cannot
// be deactivated; only a master_admin deactivates a master_admin.
func (s *Service) DeactivateUser(ctx context.Context, actor users.Actor, username string) (*users.User, error) {
	if err := caller(actor); err != nil {
		return nil, err
	}
	u, err := s.users.Deactivate(ctx, actor, username)
	if err != nil {
		return nil, err
	}
	s.cleanSessions(ctx, u.ID)
	return u, nil
}
