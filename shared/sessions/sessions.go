// Package sessions keeps staff sessions in the sessions table. A session
// item is keyed by the SHA-256 of its token (the token itself is never
// stored), carries its user id for the userId-index GSI, the user's session
// version and role at login, its idle and absolute expiry, and the expiry
// under which the session counters hold it (counts.go). Validation is one
// strongly consistent BatchGetItem of the session and its user; expiry is
// checked on every read, whatever DynamoDB's TTL sweep has done
// (docs/identity.md, Sessions).
package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// UserIndex is the sessions table's GSI on userId.
const UserIndex = "userId-index"

// IndexAttributes are the attributes UserIndex projects besides the keys
// (template.yaml): what a listing shows and filters on, and what the end of
// all sessions needs to take them off the count, so each is one Query.
var IndexAttributes = []string{"handle", "sessionVersion", "createdAt", "lastActivity", "idleExpiresAt", "expiresAt", attrCounted}

// API is the part of the DynamoDB client this package uses.
type API interface {
	store.BatchGetAPI
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	dynamodb.QueryAPIClient
	dynamodb.ScanAPIClient
}

// Session is a session item. Times are epoch milliseconds.
type Session struct {
	Hash           string `dynamodbav:"pk"` // hex SHA-256 of the token
	UserID         string `dynamodbav:"userId"`
	Handle         string `dynamodbav:"handle"`
	SessionVersion int64  `dynamodbav:"sessionVersion"`
	Role           string `dynamodbav:"role"` // snapshot at login
	CreatedAt      int64  `dynamodbav:"createdAt"`
	LastActivity   int64  `dynamodbav:"lastActivity"`
	IdleExpiresAt  int64  `dynamodbav:"idleExpiresAt"`
	ExpiresAt      int64  `dynamodbav:"expiresAt"` // absolute
	TTL            int64  `dynamodbav:"ttl"`       // epoch seconds, the earlier expiry
	// CountedExpiry is the effective expiry the session counters hold the
	// session under (counts.go); 0 (absent) when it is not counted.
	CountedExpiry int64 `dynamodbav:"countedExpiry,omitempty"`
}

// Config holds the session lifetimes.
type Config struct {
	IdleTTL       time.Duration // SESSION_TTL, sliding
	MaxLifetime   time.Duration // SESSION_MAX_LIFETIME, absolute
	TouchInterval time.Duration // SESSION_TOUCH_INTERVAL
}

// Tables names the tables a Manager reads.
type Tables struct {
	Sessions string // SESSIONS_TABLE
	Users    string // USERS_TABLE, read with each session
}

// EffectiveExpiry is the session's expiry: the earlier of its idle and
// absolute expiry, each also bounded by the configuration in force now, so
// lowering SESSION_TTL or SESSION_MAX_LIFETIME applies to existing sessions.
func (s *Session) EffectiveExpiry(c Config) int64 {
	idle := min(s.IdleExpiresAt, s.LastActivity+c.IdleTTL.Milliseconds())
	abs := min(s.ExpiresAt, s.CreatedAt+c.MaxLifetime.Milliseconds())
	return min(idle, abs)
}

// Live reports whether the session has not expired at now (epoch ms).
func (s *Session) Live(now int64, c Config) bool { return now < s.EffectiveExpiry(c) }

// Principal is the caller behind a valid session, resolved once per request.
type Principal struct {
	UserID   string
	Username string
	Name     string
	Role     string
	// Permissions holds the role's boolean permissions by API.md name
	// (systemMonitoring, userManagement, trafficControl, ...); shared, read only.
	Permissions map[string]bool
	Session     *Session
}

// Can reports whether the principal's role grants permission.
func (p *Principal) Can(permission string) bool {
	return p != nil && p.Permissions[permission]
}

// Manager creates, validates, lists and ends sessions. It resolves every
// function's bearer and cookie tokens to a Principal.
type Manager struct {
	db         API
	table      string
	usersTable string
	roles      *users.Roles
	clock      clock.Clock
	cfg        Config
	cursors    store.Cursors
	logger     *slog.Logger
	dead       *deadSet            // tokens whose session is dead for good (never a valid one)
	known      *tokenCache[string] // tokens validated on this instance → their user id

	noteMu  sync.Mutex
	notedAt int64 // when this instance last noted its configuration for Count (ms)
}

// New returns a Manager over the given tables; roles is the instance's role cache.
func New(db API, t Tables, cfg Config, roles *users.Roles, clk clock.Clock, logger *slog.Logger) *Manager {
	if clk == nil {
		clk = clock.System{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	if roles == nil {
		roles = users.NewRoles(db, t.Users, clk)
	}
	return &Manager{
		db: db, table: t.Sessions, usersTable: t.Users,
		roles: roles, clock: clk, cfg: cfg, logger: logger,
		dead:  newDeadSet(DeadCacheSize, DeadCacheTTL),
		known: newTokenCache[string](KnownCacheSize, 0),
	}
}

// KnownUser returns the user id of a token this instance has validated
// before. A token maps to one user for good (its digits name it, and its hash
// keys one item), so the request layer may key the user's rate limit on it
// and run that write alongside the session read, which still decides whether
// the session is valid now. Unknown tokens (never validated here, or found
// invalid since) report false.
func (m *Manager) KnownUser(token string) (string, bool) {
	return m.known.get(sha256.Sum256([]byte(token)), m.clock.Now().UnixMilli())
}

// UseCursorKeys gives the listings the sealer of their cursors (the
// deployment's keyring); without one, a listing with more pages fails.
func (m *Manager) UseCursorKeys(k store.Sealer) { m.cursors = store.Cursors{Sealer: k} }

// Config returns the lifetimes in force.
func (m *Manager) Config() Config { return m.cfg }

// Roles returns the manager's role cache.
func (m *Manager) Roles() *users.Roles { return m.roles }

func hashKey(hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: hash}}
}

// Create starts a session for u and returns its token (to hand to the
// client once) and the stored record.
func (m *Manager) Create(ctx context.Context, u *users.User) (string, *Session, error) {
	token, err := NewToken(u.ID)
	if err != nil {
		return "", nil, err
	}
	now := m.clock.Now().UnixMilli()
	s := &Session{
		Hash: HashToken(token), UserID: u.ID, SessionVersion: u.SessionVersion, Role: u.Role,
		CreatedAt: now, LastActivity: now,
		IdleExpiresAt: now + m.cfg.IdleTTL.Milliseconds(), ExpiresAt: now + m.cfg.MaxLifetime.Milliseconds(),
	}
	s.IdleExpiresAt = min(s.IdleExpiresAt, s.ExpiresAt)
	s.Handle = HandleOf(s.Hash)
	s.TTL = ceilSeconds(min(s.IdleExpiresAt, s.ExpiresAt))
	s.CountedExpiry = s.EffectiveExpiry(m.cfg)
	item, err := attributevalue.MarshalMap(s)
	if err != nil {
		return "", nil, fmt.Errorf("encode session: %w", err)
	}
	expr, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return "", nil, fmt.Errorf("build session put: %w", err)
	}
	counts := newCountWrites(now)
	counts.add(s.CountedExpiry, 1)
	err = m.withCounts(ctx, counts, func() error {
		_, err := m.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                aws.String(m.table),
			Item:                     item,
			ConditionExpression:      expr.Condition(),
			ExpressionAttributeNames: expr.Names(),
		})
		return err
	})
	if err != nil {
		return "", nil, fmt.Errorf("put session: %w", err)
	}
	return token, s, nil
}

// Validate returns the live session of token and its user, or nils when the
// token is malformed, unknown, expired, revoked, or its user is inactive or
// has moved their session version on. One strongly consistent BatchGetItem,
// plus at most one conditional write per touch interval. A token found dead
// for good is remembered in the instance's negative cache, and its next
// presentations cost no call (deadcache.go); a store error is never
// remembered, nor is a valid session.
func (m *Manager) Validate(ctx context.Context, token string) (*Session, *users.User, error) {
	userID, ok := ParseToken(token)
	if !ok {
		return nil, nil, nil
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	if m.dead.has(key, m.clock.Now().UnixMilli()) {
		return nil, nil, nil
	}
	hash := hex.EncodeToString(key[:])
	sessItem, userItem, err := m.read(ctx, hash, userID)
	if err != nil {
		return nil, nil, err
	}
	now := m.clock.Now().UnixMilli()
	s, u, v, err := m.check(userID, sessItem, userItem, now)
	if err != nil {
		return nil, nil, err
	}
	switch v {
	case valid:
		m.known.put(key, userID, now)
	case ended:
		m.forget(key, now)
		m.expireEnded(ctx, s, now)
		return nil, nil, nil
	case dead:
		m.forget(key, now)
		return nil, nil, nil
	default:
		m.known.remove(key)
		return nil, nil, nil
	}
	if now-s.LastActivity >= m.cfg.TouchInterval.Milliseconds() && now > s.LastActivity {
		m.touch(ctx, s, now)
	}
	return s, u, nil
}

// forget records a token as dead for good.
func (m *Manager) forget(key tokenKey, now int64) {
	m.known.remove(key)
	m.dead.add(key, now)
}

// verdict is check's decision on a session.
type verdict int

const (
	valid    verdict = iota
	rejected         // invalid now, but not provably for good: never cached
	dead             // invalid for good: cached
	ended            // invalid for good through a session-version bump: cached, item marked expired
)

// check decides from the two items alone whether the session is valid now,
// and whether a rejection is permanent (so remembered in the negative cache).
// docs/identity.md ("The negative cache") says why each case is or is not.
func (m *Manager) check(userID string, sessItem, userItem map[string]types.AttributeValue, now int64) (*Session, *users.User, verdict, error) {
	if sessItem == nil {
		return nil, nil, dead, nil
	}
	s := new(Session)
	if err := attributevalue.UnmarshalMap(sessItem, s); err != nil {
		return nil, nil, rejected, fmt.Errorf("decode session: %w", err)
	}
	if s.UserID != userID {
		return s, nil, dead, nil
	}
	if userItem == nil {
		return s, nil, rejected, nil
	}
	u, err := users.DecodeUser(userItem)
	if err != nil {
		return nil, nil, rejected, err
	}
	switch {
	case u.ID != userID || s.SessionVersion > u.SessionVersion:
		return s, u, rejected, nil
	case s.SessionVersion < u.SessionVersion:
		return s, u, ended, nil
	case !u.Active:
		return s, u, rejected, nil
	}
	if !s.Live(now, m.cfg) {
		if m.expiredForGood(s, now) {
			return s, u, dead, nil
		}
		return s, u, rejected, nil
	}
	return s, u, valid, nil
}

// expiredForGood reports whether the expired session s can never be live
// again for this instance (see check).
func (m *Manager) expiredForGood(s *Session, now int64) bool {
	return now >= min(s.ExpiresAt, s.CreatedAt+m.cfg.MaxLifetime.Milliseconds()) ||
		now >= s.IdleExpiresAt+ClockSkew.Milliseconds()
}

// update runs one conditional UpdateItem on a session item.
func (m *Manager) update(ctx context.Context, hash string, upd expression.UpdateBuilder, cond expression.ConditionBuilder) error {
	expr, err := expression.NewBuilder().WithUpdate(upd).WithCondition(cond).Build()
	if err != nil {
		return fmt.Errorf("build session update: %w", err)
	}
	_, err = m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(m.table),
		Key:                       hashKey(hash),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	return err
}

// sameSessionLive is the condition every write to a possibly expired or
// revoked session item carries, so it cannot bring the item back to life.
func sameSessionLive(s *Session, now int64) expression.ConditionBuilder {
	return expression.AttributeExists(expression.Name("pk")).
		And(expression.Name("sessionVersion").Equal(expression.Value(s.SessionVersion))).
		And(expression.Name("idleExpiresAt").GreaterThan(expression.Value(now)))
}

// expireEnded marks a session ended by a session-version bump as expired in
// its item (idle expiry and ttl set to now, no longer counted), for an item
// the end-all cleanup missed, so it leaves Count at once and TTL sweeps it.
// An UpdateItem, which every function may already do on the sessions table
// (the touch), not a delete. Best effort: the session is rejected whatever
// happens.
func (m *Manager) expireEnded(ctx context.Context, s *Session, now int64) {
	upd := expression.Set(expression.Name("idleExpiresAt"), expression.Value(now)).
		Set(expression.Name("ttl"), expression.Value(ceilSeconds(now))).
		Remove(expression.Name(attrCounted))
	counts := newCountWrites(now)
	counts.add(s.CountedExpiry, -1)
	err := m.withCounts(ctx, counts, func() error {
		return m.update(ctx, s.Hash, upd, sameSessionLive(s, now).And(countedIs(s.CountedExpiry)))
	})
	if err != nil && !store.IsConditionFailed(err) {
		m.logger.WarnContext(ctx, "expiring an ended session failed", "handle", s.Handle, "err", err)
	}
}

func (m *Manager) read(ctx context.Context, hash, userID string) (sess, user map[string]types.AttributeValue, err error) {
	items, err := store.BatchGet(ctx, m.db, map[string][]map[string]types.AttributeValue{
		m.table:      {hashKey(hash)},
		m.usersTable: {users.Key(userID)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("validate session: %w", err)
	}
	if it := items[m.table]; len(it) > 0 {
		sess = it[0]
	}
	if it := items[m.usersTable]; len(it) > 0 {
		user = it[0]
	}
	return sess, user, nil
}

// touch slides the idle expiry and moves the session's count to the new
// expiry's buckets (counts.go), both in the same round trip. The condition
// keeps it from bringing back a session that expired, was deleted or was
// revoked meanwhile, and (lastActivity and countedExpiry = what was read)
// makes concurrent instances write once per interval and move the count
// once; a touch whose condition fails takes its counter move back. A failed
// touch does not fail the request that was valid when read.
func (m *Manager) touch(ctx context.Context, s *Session, now int64) {
	idle := min(now+m.cfg.IdleTTL.Milliseconds(), s.ExpiresAt)
	ttl := ceilSeconds(min(idle, s.ExpiresAt))
	next := *s
	next.LastActivity, next.IdleExpiresAt = now, idle
	counted := next.EffectiveExpiry(m.cfg)
	upd := expression.Set(expression.Name("lastActivity"), expression.Value(now)).
		Set(expression.Name("idleExpiresAt"), expression.Value(idle)).
		Set(expression.Name("ttl"), expression.Value(ttl)).
		Set(expression.Name(attrCounted), expression.Value(counted))
	cond := sameSessionLive(s, now).
		And(expression.Name("expiresAt").GreaterThan(expression.Value(now))).
		And(expression.Name("lastActivity").Equal(expression.Value(s.LastActivity))).
		And(countedIs(s.CountedExpiry))
	counts := newCountWrites(now)
	counts.move(s.CountedExpiry, counted)
	err := m.withCounts(ctx, counts, func() error { return m.update(ctx, s.Hash, upd, cond) })
	if err != nil {
		if !store.IsConditionFailed(err) {
			m.logger.WarnContext(ctx, "session touch failed", "handle", s.Handle, "err", err)
		}
		return
	}
	s.LastActivity, s.IdleExpiresAt, s.TTL, s.CountedExpiry = now, idle, ttl, counted
}

// Resolve is the caller's principal for token, with the permissions of the
// user's stored role (roles cached at most 60 s); nil for no valid session.
func (m *Manager) Resolve(ctx context.Context, token string) (*Principal, error) {
	s, u, err := m.Validate(ctx, token)
	if err != nil || s == nil {
		return nil, err
	}
	_, perms, err := m.roles.Get(ctx, u.Role)
	if err != nil {
		return nil, err
	}
	return &Principal{UserID: u.ID, Username: u.Username, Name: u.Name, Role: u.Role, Permissions: perms, Session: s}, nil
}

// Revoke deletes the session with the given hash if it belongs to userID
// (a conditional delete). It reports whether that ended a valid session:
// one unexpired, of an active user and of their current session version.
// A session that had already ended (expired, or ended by a version bump)
// is deleted all the same and reported false, like an unknown one. It costs
// one DeleteItem, then the counter write taking the deleted item off the
// count and, when the deleted session had not expired, one strongly
// consistent GetItem of the user, at the same time.
func (m *Manager) Revoke(ctx context.Context, hash, userID string) (bool, error) {
	old, settled, err := m.deleteOwned(ctx, hash, userID, nil)
	defer settled()
	if err != nil || old == nil || !old.Live(m.clock.Now().UnixMilli(), m.cfg) {
		return false, err
	}
	out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(m.usersTable), Key: users.Key(userID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, fmt.Errorf("read session user: %w", err)
	}
	u, err := users.DecodeUser(out.Item)
	if err != nil {
		return false, err
	}
	return u != nil && u.ID == userID && u.Active && u.SessionVersion == old.SessionVersion, nil
}

// RevokeValidated ends s, a session that Validate accepted during the
// current request (the caller's own): the user's version was checked then,
// so it costs only the conditional DeleteItem and, at the same time, the
// counter write for s as read. It reports whether the deleted item was
// still that live session.
func (m *Manager) RevokeValidated(ctx context.Context, s *Session) (bool, error) {
	old, settled, err := m.deleteOwned(ctx, s.Hash, s.UserID, s)
	settled()
	if err != nil || old == nil {
		return false, err
	}
	return old.SessionVersion == s.SessionVersion && old.Live(m.clock.Now().UnixMilli(), m.cfg), nil
}

// deleteOwned deletes the session item with the given hash if it belongs to
// userID, takes it off the count and returns it; nil when there was none.
// With guess (the item as read in this request) the counter write goes out
// with the delete and is corrected afterwards if the deleted item differed;
// without, it follows the delete, running until the caller calls settled
// (so other work can share its round trip). The deleted token goes into the
// negative cache: it can never be valid again.
func (m *Manager) deleteOwned(ctx context.Context, hash, userID string, guess *Session) (deleted *Session, settled func(), err error) {
	settled = func() {}
	cond := expression.AttributeExists(expression.Name("pk")).And(expression.Name("userId").Equal(expression.Value(userID)))
	expr, err := expression.NewBuilder().WithCondition(cond).Build()
	if err != nil {
		return nil, settled, fmt.Errorf("build session delete: %w", err)
	}
	now := m.clock.Now().UnixMilli()
	bg := context.WithoutCancel(ctx)
	guessed := newCountWrites(now)
	if guess != nil {
		guessed.add(guess.CountedExpiry, -1)
	}
	var done map[string]bool
	var cerr error
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if !guessed.empty() {
			done, cerr = m.applyCounts(bg, guessed)
		}
	}()
	out, err := m.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(m.table),
		Key:                       hashKey(hash),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ReturnValues:              types.ReturnValueAllOld,
	})
	<-finished
	want := newCountWrites(now)
	var old *Session
	var uncertain error
	switch {
	case store.IsConditionFailed(err):
		err = nil
	case err != nil:
		uncertain = err // the item may have been deleted all the same
		err = fmt.Errorf("delete session: %w", err)
	default:
		old = new(Session)
		if derr := attributevalue.UnmarshalMap(out.Attributes, old); derr != nil {
			old, uncertain, err = nil, derr, fmt.Errorf("decode session: %w", derr)
		} else {
			want.add(old.CountedExpiry, -1)
		}
	}
	settling := make(chan struct{})
	go func() {
		defer close(settling)
		m.settle(bg, guessed, done, cerr, want, uncertain)
	}()
	settled = func() { <-settling }
	if err != nil || old == nil {
		return nil, settled, err
	}
	if k, ok := keyOfHash(hash); ok {
		m.forget(k, now)
	}
	return old, settled, nil
}

// Logout ends the session of token; false when there was no valid session
// (see Revoke, whose cost it has).
func (m *Manager) Logout(ctx context.Context, token string) (bool, error) {
	userID, ok := ParseToken(token)
	if !ok {
		return false, nil
	}
	return m.Revoke(ctx, HashToken(token), userID)
}

// Page is one page of a listing.
type Page struct {
	Sessions []*Session
	Users    map[string]*users.User // the page's users, by id
	Cursor   string                 // "" at the end
}

// ErrBadCursor is returned for a cursor this service did not issue.
var ErrBadCursor = store.ErrBadCursor

// byUser is the key condition of one user's entries in the GSI.
func byUser(userID string) (expression.Expression, error) {
	expr, err := expression.NewBuilder().WithKeyCondition(expression.Key("userId").Equal(expression.Value(userID))).Build()
	if err != nil {
		return expr, fmt.Errorf("build session index query: %w", err)
	}
	return expr, nil
}

// ListOwn returns a page of the caller's own live sessions: one Query of
// the index, which projects what a listing needs, kept to the user's current
// session version, which validating p has just read. The index is
// eventually consistent: a session ended a moment ago may still be listed,
// one started a moment ago may be missing (docs/identity.md).
func (m *Manager) ListOwn(ctx context.Context, p *Principal, limit int, cursor string) (Page, error) {
	start, err := m.listCursor(ctx, p.UserID, cursor)
	if err != nil {
		return Page{}, err
	}
	list, next, err := m.queryPage(ctx, p.UserID, limit, start)
	if err != nil {
		return Page{}, err
	}
	now := m.clock.Now().UnixMilli()
	page := Page{Cursor: next}
	for _, s := range list {
		if s.SessionVersion == p.Session.SessionVersion && s.Live(now, m.cfg) {
			page.Sessions = append(page.Sessions, s)
		}
	}
	return page, nil
}

// ListUser returns a page of the live sessions of userID (another user's,
// for staff): the Query of the index and a strongly consistent GetItem of
// the user at the same time, keeping the sessions of the user's current
// version. As eventually consistent as ListOwn.
func (m *Manager) ListUser(ctx context.Context, userID string, limit int, cursor string) (Page, error) {
	start, err := m.listCursor(ctx, userID, cursor)
	if err != nil {
		return Page{}, err
	}
	var u *users.User
	var uerr error
	read := make(chan struct{})
	go func() {
		defer close(read)
		out, err := m.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(m.usersTable), Key: users.Key(userID), ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			uerr = fmt.Errorf("read session user: %w", err)
			return
		}
		u, uerr = users.DecodeUser(out.Item)
	}()
	list, next, err := m.queryPage(ctx, userID, limit, start)
	<-read
	if err != nil {
		return Page{}, err
	}
	if uerr != nil {
		return Page{}, uerr
	}
	page := Page{Users: map[string]*users.User{}, Cursor: next}
	if u != nil {
		page.Users[u.ID] = u
	}
	now := m.clock.Now().UnixMilli()
	for _, s := range list {
		if m.current(s, u, now) {
			page.Sessions = append(page.Sessions, s)
		}
	}
	return page, nil
}

// listCursor decodes the cursor of a listing of userID's sessions.
func (m *Manager) listCursor(ctx context.Context, userID, cursor string) (map[string]types.AttributeValue, error) {
	return m.cursors.Decode(ctx, cursor,
		store.KeyField{Name: "pk", Valid: validHash},
		store.KeyField{Name: "userId", Valid: func(v string) bool { return v == userID }})
}

// queryPage reads one page of userID's entries in the index from start (a
// page may be short once filtered) and the cursor of the next.
func (m *Manager) queryPage(ctx context.Context, userID string, limit int, start map[string]types.AttributeValue) ([]*Session, string, error) {
	expr, err := byUser(userID)
	if err != nil {
		return nil, "", err
	}
	out, err := m.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(m.table),
		IndexName:                 aws.String(UserIndex),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		Limit:                     aws.Int32(int32(limit)),
		ExclusiveStartKey:         start,
	})
	if err != nil {
		return nil, "", fmt.Errorf("list sessions: %w", err)
	}
	list, err := decodeSessions(out.Items)
	if err != nil {
		return nil, "", err
	}
	next, err := m.cursors.Encode(ctx, out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

// decodeSessions decodes session items (or index entries), skipping anything
// that is not one (the counter items a scan meets).
func decodeSessions(items []map[string]types.AttributeValue) ([]*Session, error) {
	list := make([]*Session, 0, len(items))
	for _, it := range items {
		if !validHash(store.String(it["pk"])) {
			continue
		}
		s := new(Session)
		if err := attributevalue.UnmarshalMap(it, s); err != nil {
			return nil, fmt.Errorf("decode session: %w", err)
		}
		list = append(list, s)
	}
	return list, nil
}

// ListAll returns a page of every user's live sessions (a scan; a page may be short).
func (m *Manager) ListAll(ctx context.Context, limit int, cursor string) (Page, error) {
	start, err := m.cursors.Decode(ctx, cursor, store.KeyField{Name: "pk", Valid: func(v string) bool { return validHash(v) || isCountKey(v) }})
	if err != nil {
		return Page{}, err
	}
	out, err := m.db.Scan(ctx, &dynamodb.ScanInput{
		TableName:         aws.String(m.table),
		Limit:             aws.Int32(int32(limit)),
		ConsistentRead:    aws.Bool(true),
		ExclusiveStartKey: start,
	})
	if err != nil {
		return Page{}, fmt.Errorf("list all sessions: %w", err)
	}
	list, err := decodeSessions(out.Items)
	if err != nil {
		return Page{}, err
	}
	ids := map[string]bool{}
	for _, s := range list {
		ids[s.UserID] = true
	}
	userIDs := make([]string, 0, len(ids))
	for id := range ids {
		userIDs = append(userIDs, id)
	}
	us, err := m.loadUsers(ctx, userIDs)
	if err != nil {
		return Page{}, err
	}
	next, err := m.cursors.Encode(ctx, out.LastEvaluatedKey)
	if err != nil {
		return Page{}, err
	}
	page := Page{Users: us, Cursor: next}
	now := m.clock.Now().UnixMilli()
	for _, s := range list {
		if m.current(s, us[s.UserID], now) {
			page.Sessions = append(page.Sessions, s)
		}
	}
	return page, nil
}

func (m *Manager) current(s *Session, u *users.User, now int64) bool {
	return u != nil && u.Active && u.SessionVersion == s.SessionVersion && s.Live(now, m.cfg)
}

// loadUsers reads the given users with strong consistency.
func (m *Manager) loadUsers(ctx context.Context, ids []string) (map[string]*users.User, error) {
	out := map[string]*users.User{}
	if len(ids) == 0 {
		return out, nil
	}
	keys := make([]map[string]types.AttributeValue, 0, len(ids))
	for _, id := range ids {
		keys = append(keys, users.Key(id))
	}
	items, err := store.BatchGet(ctx, m.db, store.Keys{m.usersTable: keys})
	if err != nil {
		return nil, err
	}
	for _, it := range items[m.usersTable] {
		u, err := users.DecodeUser(it)
		if err != nil {
			return nil, err
		}
		out[u.ID] = u
	}
	return out, nil
}

// entriesOf returns every index entry of userID (its sessions as the index
// projects them).
func (m *Manager) entriesOf(ctx context.Context, userID string) ([]*Session, error) {
	expr, err := byUser(userID)
	if err != nil {
		return nil, err
	}
	p := dynamodb.NewQueryPaginator(m.db, &dynamodb.QueryInput{
		TableName:                 aws.String(m.table),
		IndexName:                 aws.String(UserIndex),
		KeyConditionExpression:    expr.KeyCondition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	var list []*Session
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		page, err := decodeSessions(out.Items)
		if err != nil {
			return nil, err
		}
		list = append(list, page...)
	}
	return list, nil
}

// Find returns the hash and owner of the session with the given public
// handle. With owner set, only that user's sessions are searched (through
// the GSI); with owner empty, every session is (a scan, for staff with
// userManagement). ("", "") when there is none.
func (m *Manager) Find(ctx context.Context, handle, owner string) (hash, userID string, err error) {
	if !ValidHandle(handle) {
		return "", "", nil
	}
	if owner != "" {
		list, err := m.entriesOf(ctx, owner)
		if err != nil {
			return "", "", err
		}
		for _, s := range list {
			if HandleOf(s.Hash) == handle {
				return s.Hash, owner, nil
			}
		}
		return "", "", nil
	}
	expr, err := expression.NewBuilder().
		WithFilter(expression.Name("handle").Equal(expression.Value(handle))).
		WithProjection(expression.NamesList(expression.Name("pk"), expression.Name("userId"))).
		Build()
	if err != nil {
		return "", "", fmt.Errorf("build session find: %w", err)
	}
	p := dynamodb.NewScanPaginator(m.db, &dynamodb.ScanInput{
		TableName:                 aws.String(m.table),
		FilterExpression:          expr.Filter(),
		ProjectionExpression:      expr.Projection(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", "", fmt.Errorf("find session: %w", err)
		}
		for _, it := range out.Items {
			h, u := store.String(it["pk"]), store.String(it["userId"])
			if validHash(h) && u != "" && HandleOf(h) == handle {
				return h, u, nil
			}
		}
	}
	return "", "", nil
}

// Bounds of DeleteAll: items per TransactWriteItems, transactions in flight,
// and retries of a cancelled transaction (as the store's batch retries).
const (
	deleteChunk    = 25
	deleteParallel = 8
	deleteRetries  = 4
)

// DeleteAll deletes every session item of userID, takes them off the count
// and returns how many it deleted. Callers end the sessions exactly by
// moving the user's session version on first; this removes the items, whose
// GSI entries may lag. The index projects each item's countedExpiry, so the
// deletes go out at once in transactions of 25 (8 in flight), each delete
// conditional on the countedExpiry the index showed: a BatchWriteItem could
// neither check it nor say what it deleted, so a delete racing a touch or a
// logout would take the wrong bucket or the same session twice off the
// count. An item whose condition failed (touched since, or already gone) is
// deleted on its own, returning what it held. The counter writes follow.
// Critical path: the Query, one transaction, the counter writes.
func (m *Manager) DeleteAll(ctx context.Context, userID string) (int, error) {
	entries, err := m.entriesOf(ctx, userID)
	if err != nil {
		return 0, err
	}
	var mu sync.Mutex
	var deleted []*Session // by the transactions
	alone := 0             // deleted on their own, already off the count
	var calls []func(context.Context) error
	for start := 0; start < len(entries); start += deleteChunk {
		chunk := entries[start:min(start+deleteChunk, len(entries))]
		calls = append(calls, func(ctx context.Context) error {
			gone, n, err := m.deleteEntries(ctx, userID, chunk)
			mu.Lock()
			deleted = append(deleted, gone...)
			alone += n
			mu.Unlock()
			return err
		})
	}
	err = parallel(ctx, deleteParallel, calls)
	now := m.clock.Now().UnixMilli()
	counts := newCountWrites(now)
	for _, s := range deleted {
		counts.add(s.CountedExpiry, -1)
		if k, ok := keyOfHash(s.Hash); ok {
			m.dead.add(k, now)
		}
	}
	bg := context.WithoutCancel(ctx)
	done, cerr := m.applyCounts(bg, counts)
	m.settle(bg, counts, done, cerr, counts, nil)
	if err != nil {
		// A transaction that failed outright may have committed: its items
		// may be off the table but still counted.
		m.markSkew(bg, m.maxCountedUntil(entries, now), err)
		return len(deleted) + alone, fmt.Errorf("delete sessions: %w", err)
	}
	return len(deleted) + alone, nil
}

// maxCountedUntil is when the latest minute bucket of the entries ends.
func (m *Manager) maxCountedUntil(entries []*Session, now int64) int64 {
	w := newCountWrites(now)
	for _, s := range entries {
		w.add(s.CountedExpiry, 1)
	}
	return w.until
}

// deleteEntries deletes the items of one chunk of index entries in one
// transaction, each conditional on its countedExpiry as the index showed it,
// and returns the items it deleted so (their countedExpiry as the condition
// checked it, for the caller to take off the count). A cancellation names
// the items whose condition failed: each is deleted on its own, which
// returns the old item and takes it off the count exactly (counted in
// alone); the rest are retried, after the backoff of the store's batch
// retries when DynamoDB reported a conflict or throttling.
func (m *Manager) deleteEntries(ctx context.Context, userID string, entries []*Session) (deleted []*Session, alone int, err error) {
	pending := entries
	backoff := false
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > deleteRetries {
			return deleted, alone, store.ErrUnavailable
		}
		if backoff {
			if err := store.Sleep(ctx, time.Duration(attempt*attempt)*20*time.Millisecond); err != nil {
				return deleted, alone, err
			}
		}
		items := make([]types.TransactWriteItem, 0, len(pending))
		for _, s := range pending {
			cond := expression.AttributeExists(expression.Name("pk")).And(countedIs(s.CountedExpiry))
			expr, err := expression.NewBuilder().WithCondition(cond).Build()
			if err != nil {
				return deleted, alone, fmt.Errorf("build session delete: %w", err)
			}
			items = append(items, types.TransactWriteItem{Delete: &types.Delete{
				TableName:                 aws.String(m.table),
				Key:                       hashKey(s.Hash),
				ConditionExpression:       expr.Condition(),
				ExpressionAttributeNames:  expr.Names(),
				ExpressionAttributeValues: expr.Values(),
			}})
		}
		_, err := m.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
		if err == nil {
			return append(deleted, pending...), alone, nil
		}
		var tce *types.TransactionCanceledException
		if !errors.As(err, &tce) || len(tce.CancellationReasons) != len(pending) {
			return deleted, alone, err
		}
		var retry []*Session
		backoff = false
		for i, r := range tce.CancellationReasons {
			if code := aws.ToString(r.Code); code != "ConditionalCheckFailed" {
				backoff = backoff || (code != "" && code != "None")
				retry = append(retry, pending[i])
				continue
			}
			old, settled, err := m.deleteOwned(ctx, pending[i].Hash, userID, nil)
			settled()
			if err != nil {
				return deleted, alone, err
			}
			if old != nil {
				alone++
			}
		}
		pending = retry
	}
	return deleted, alone, nil
}
func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func ceilSeconds(ms int64) int64 { return (ms + 999) / 1000 }
