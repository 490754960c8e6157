// Package sessions keeps staff sessions in the sessions table. A session
// item is keyed by the SHA-256 of its token (the token itself is never
// stored), carries its user id for the userId-index GSI, the user's session
// version and role at login, and its idle and absolute expiry. Validation is
// one strongly consistent BatchGetItem of the session and its user; expiry
// is checked on every read, whatever DynamoDB's TTL sweep has done
// (docs/identity.md, Sessions).
package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
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

// UserIndex is the sessions table's GSI on userId (keys only).
const UserIndex = "userId-index"

// API is the part of the DynamoDB client this package uses.
type API interface {
	store.BatchGetAPI
	store.BatchWriteAPI
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
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
	dead       *deadSet // tokens whose session is dead for good (never a valid one)
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
		dead: newDeadSet(DeadCacheSize, DeadCacheTTL),
	}
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
	item, err := attributevalue.MarshalMap(s)
	if err != nil {
		return "", nil, fmt.Errorf("encode session: %w", err)
	}
	expr, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return "", nil, fmt.Errorf("build session put: %w", err)
	}
	_, err = m.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(m.table),
		Item:                     item,
		ConditionExpression:      expr.Condition(),
		ExpressionAttributeNames: expr.Names(),
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
	case ended:
		m.dead.add(key, now)
		m.expireEnded(ctx, s, now)
		return nil, nil, nil
	case dead:
		m.dead.add(key, now)
		return nil, nil, nil
	default:
		return nil, nil, nil
	}
	if now-s.LastActivity >= m.cfg.TouchInterval.Milliseconds() && now > s.LastActivity {
		m.touch(ctx, s, now)
	}
	return s, u, nil
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
// its item (idle expiry and ttl set to now), for an item the end-all cleanup
// missed, so it leaves Count at once and TTL sweeps it. An UpdateItem, which
// every function may already do on the sessions table (the touch), not a
// delete. Best effort: the session is rejected whatever happens.
func (m *Manager) expireEnded(ctx context.Context, s *Session, now int64) {
	upd := expression.Set(expression.Name("idleExpiresAt"), expression.Value(now)).
		Set(expression.Name("ttl"), expression.Value(ceilSeconds(now)))
	if err := m.update(ctx, s.Hash, upd, sameSessionLive(s, now)); err != nil && !store.IsConditionFailed(err) {
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

// touch slides the idle expiry. The condition keeps it from bringing back a
// session that expired, was deleted or was revoked meanwhile, and
// (lastActivity = what was read) makes concurrent instances write once per
// interval; a failed touch does not fail the request that was valid when read.
func (m *Manager) touch(ctx context.Context, s *Session, now int64) {
	idle := min(now+m.cfg.IdleTTL.Milliseconds(), s.ExpiresAt)
	ttl := ceilSeconds(min(idle, s.ExpiresAt))
	upd := expression.Set(expression.Name("lastActivity"), expression.Value(now)).
		Set(expression.Name("idleExpiresAt"), expression.Value(idle)).
		Set(expression.Name("ttl"), expression.Value(ttl))
	cond := sameSessionLive(s, now).
		And(expression.Name("expiresAt").GreaterThan(expression.Value(now))).
		And(expression.Name("lastActivity").Equal(expression.Value(s.LastActivity)))
	if err := m.update(ctx, s.Hash, upd, cond); err != nil {
		if !store.IsConditionFailed(err) {
			m.logger.WarnContext(ctx, "session touch failed", "handle", s.Handle, "err", err)
		}
		return
	}
	s.LastActivity, s.IdleExpiresAt, s.TTL = now, idle, ttl
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
// one DeleteItem, plus one strongly consistent GetItem of the user when the
// deleted session had not expired.
func (m *Manager) Revoke(ctx context.Context, hash, userID string) (bool, error) {
	old, err := m.deleteOwned(ctx, hash, userID)
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
// so it costs only the conditional DeleteItem. It reports whether the
// deleted item was still that live session.
func (m *Manager) RevokeValidated(ctx context.Context, s *Session) (bool, error) {
	old, err := m.deleteOwned(ctx, s.Hash, s.UserID)
	if err != nil || old == nil {
		return false, err
	}
	return old.SessionVersion == s.SessionVersion && old.Live(m.clock.Now().UnixMilli(), m.cfg), nil
}

// deleteOwned deletes the session item with the given hash if it belongs to
// userID and returns it; nil when there was none. The deleted token goes
// into the negative cache: it can never be valid again.
func (m *Manager) deleteOwned(ctx context.Context, hash, userID string) (*Session, error) {
	cond := expression.AttributeExists(expression.Name("pk")).And(expression.Name("userId").Equal(expression.Value(userID)))
	expr, err := expression.NewBuilder().WithCondition(cond).Build()
	if err != nil {
		return nil, fmt.Errorf("build session delete: %w", err)
	}
	out, err := m.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(m.table),
		Key:                       hashKey(hash),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
		ReturnValues:              types.ReturnValueAllOld,
	})
	if store.IsConditionFailed(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delete session: %w", err)
	}
	if k, ok := keyOfHash(hash); ok {
		m.dead.add(k, m.clock.Now().UnixMilli())
	}
	s := new(Session)
	if err := attributevalue.UnmarshalMap(out.Attributes, s); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	return s, nil
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

// ListUser returns a page of the live sessions of userID: the GSI gives the
// keys (a page may be short), one BatchGetItem gives the items and the user,
// so sessions of an older session version are left out.
func (m *Manager) ListUser(ctx context.Context, userID string, limit int, cursor string) (Page, error) {
	start, err := m.cursors.Decode(ctx, cursor,
		store.KeyField{Name: "pk", Valid: validHash},
		store.KeyField{Name: "userId", Valid: func(v string) bool { return v == userID }})
	if err != nil {
		return Page{}, err
	}
	expr, err := byUser(userID)
	if err != nil {
		return Page{}, err
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
		return Page{}, fmt.Errorf("list sessions: %w", err)
	}
	hashes := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if h := store.String(it["pk"]); h != "" {
			hashes = append(hashes, h)
		}
	}
	page, err := m.load(ctx, hashes, []string{userID})
	if err != nil {
		return Page{}, err
	}
	if page.Cursor, err = m.cursors.Encode(ctx, out.LastEvaluatedKey); err != nil {
		return Page{}, err
	}
	return page, nil
}

// ListAll returns a page of every user's live sessions (a scan; a page may be short).
func (m *Manager) ListAll(ctx context.Context, limit int, cursor string) (Page, error) {
	start, err := m.cursors.Decode(ctx, cursor, store.KeyField{Name: "pk", Valid: validHash})
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
	var list []*Session
	ids := map[string]bool{}
	for _, it := range out.Items {
		var s Session
		if err := attributevalue.UnmarshalMap(it, &s); err != nil {
			return Page{}, fmt.Errorf("decode session: %w", err)
		}
		list = append(list, &s)
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

// load reads the sessions with the given hashes and the given users, with
// strong consistency, keeping the live ones.
func (m *Manager) load(ctx context.Context, hashes, userIDs []string) (Page, error) {
	keys := map[string][]map[string]types.AttributeValue{}
	for _, h := range hashes {
		keys[m.table] = append(keys[m.table], hashKey(h))
	}
	for _, id := range userIDs {
		keys[m.usersTable] = append(keys[m.usersTable], users.Key(id))
	}
	items, err := store.BatchGet(ctx, m.db, keys)
	if err != nil {
		return Page{}, err
	}
	page := Page{Users: map[string]*users.User{}}
	for _, it := range items[m.usersTable] {
		u, err := users.DecodeUser(it)
		if err != nil {
			return Page{}, err
		}
		page.Users[u.ID] = u
	}
	byHash := map[string]*Session{}
	for _, it := range items[m.table] {
		var s Session
		if err := attributevalue.UnmarshalMap(it, &s); err != nil {
			return Page{}, fmt.Errorf("decode session: %w", err)
		}
		byHash[s.Hash] = &s
	}
	now := m.clock.Now().UnixMilli()
	for _, h := range hashes { // keep the index order
		if s := byHash[h]; s != nil && m.current(s, page.Users[s.UserID], now) {
			page.Sessions = append(page.Sessions, s)
		}
	}
	return page, nil
}

func (m *Manager) loadUsers(ctx context.Context, ids []string) (map[string]*users.User, error) {
	p, err := m.load(ctx, nil, ids)
	if err != nil {
		return nil, err
	}
	return p.Users, nil
}

// hashesOf returns the keys of every session of userID from the GSI.
func (m *Manager) hashesOf(ctx context.Context, userID string) ([]string, error) {
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
	var hashes []string
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		for _, it := range out.Items {
			if h := store.String(it["pk"]); h != "" {
				hashes = append(hashes, h)
			}
		}
	}
	return hashes, nil
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
		hashes, err := m.hashesOf(ctx, owner)
		if err != nil {
			return "", "", err
		}
		for _, h := range hashes {
			if HandleOf(h) == handle {
				return h, owner, nil
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
			if h != "" && u != "" && HandleOf(h) == handle {
				return h, u, nil
			}
		}
	}
	return "", "", nil
}

// DeleteAll deletes every session item of userID and returns how many were
// found. Callers end the sessions exactly by moving the user's session
// version on first; this removes the items, whose GSI entries may lag.
func (m *Manager) DeleteAll(ctx context.Context, userID string) (int, error) {
	hashes, err := m.hashesOf(ctx, userID)
	if err != nil {
		return 0, err
	}
	reqs := make([]types.WriteRequest, 0, len(hashes))
	for _, h := range hashes {
		reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: hashKey(h)}})
	}
	if err := store.BatchWrite(ctx, m.db, m.table, reqs); err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	return len(hashes), nil
}

// maxCountPages bounds the scan behind Count; past it the count is approximate.
const maxCountPages = 20

// Count returns the number of unexpired session items of all users, by the
// same expiry rule as validation (both stored expiries, each bounded by the
// configuration in force). It does not read users; docs/identity.md
// (GET /api/sessions/count) says how long an ended session's item can still
// be counted.
// A Select COUNT scan; approximate when it stopped after maxCountPages pages,
// the count then being that of the pages read.
func (m *Manager) Count(ctx context.Context) (int, bool, error) {
	now := m.clock.Now().UnixMilli()
	// now < min(idleExpiresAt, lastActivity+SESSION_TTL, expiresAt, createdAt+SESSION_MAX_LIFETIME)
	filter := expression.Name("expiresAt").GreaterThan(expression.Value(now)).
		And(expression.Name("idleExpiresAt").GreaterThan(expression.Value(now))).
		And(expression.Name("lastActivity").GreaterThan(expression.Value(now - m.cfg.IdleTTL.Milliseconds()))).
		And(expression.Name("createdAt").GreaterThan(expression.Value(now - m.cfg.MaxLifetime.Milliseconds())))
	expr, err := expression.NewBuilder().WithFilter(filter).Build()
	if err != nil {
		return 0, false, fmt.Errorf("build session count: %w", err)
	}
	p := dynamodb.NewScanPaginator(m.db, &dynamodb.ScanInput{
		TableName:                 aws.String(m.table),
		Select:                    types.SelectCount,
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	total := 0
	for page := 0; p.HasMorePages(); page++ {
		if page == maxCountPages {
			return total, true, nil
		}
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, false, fmt.Errorf("count sessions: %w", err)
		}
		total += int(out.Count)
	}
	return total, false, nil
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
