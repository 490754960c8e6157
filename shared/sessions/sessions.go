// Package sessions keeps staff sessions in the sessions table. A session
// item is keyed by the SHA-256 of its token (the token itself is never
// stored), carries its user id for the userId-index GSI, the user's session
// version and role at login, and its idle and absolute expiry. Validation is
// one strongly consistent BatchGetItem of the session and its user; expiry
// is checked on every read, whatever DynamoDB's TTL sweep has done.
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
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// UserIndex is the sessions table's GSI on userId (keys only).
const UserIndex = "userId-index"

// API is the part of the DynamoDB client this package uses.
type API interface {
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
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

// ConfigFrom takes the lifetimes from the function's configuration.
func ConfigFrom(cfg config.Config) Config {
	return Config{IdleTTL: cfg.SessionTTL, MaxLifetime: cfg.SessionMaxLifetime, TouchInterval: cfg.SessionTouchInterval}
}

// ExpiresAt is the session's effective expiry: the earlier of its idle and
// absolute expiry, each also bounded by the configuration in force now, so
// lowering SESSION_TTL or SESSION_MAX_LIFETIME applies to existing sessions.
func (s *Session) EffectiveExpiry(c Config) int64 {
	idle := min(s.IdleExpiresAt, s.LastActivity+c.IdleTTL.Milliseconds())
	abs := min(s.ExpiresAt, s.CreatedAt+c.MaxLifetime.Milliseconds())
	return min(idle, abs)
}

// Live reports whether the session has not expired at now (epoch ms).
func (s *Session) Live(now int64, c Config) bool { return now < s.EffectiveExpiry(c) }

// Manager creates, validates, lists and ends sessions. It is the
// httpapi.SessionResolver of every function.
type Manager struct {
	db         API
	table      string
	usersTable string
	roles      *users.Roles
	clock      clock.Clock
	cfg        Config
	logger     *slog.Logger
	dead       *deadSet // tokens whose session is dead for good (never a valid one)
}

// New returns a Manager over the configured tables.
func New(db API, cfg config.Config, clk clock.Clock, logger *slog.Logger) *Manager {
	if clk == nil {
		clk = clock.System{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Manager{
		db: db, table: cfg.Tables.Sessions, usersTable: cfg.Tables.Users,
		roles: users.NewRoles(db, cfg.Tables.Users, clk), clock: clk, cfg: ConfigFrom(cfg), logger: logger,
		dead: newDeadSet(DeadCacheSize, DeadCacheTTL),
	}
}

// Config returns the lifetimes in force.
func (m *Manager) Config() Config { return m.cfg }

// Roles returns the manager's role cache.
func (m *Manager) Roles() *users.Roles { return m.roles }

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
	_, err = m.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(m.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
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
// presentations cost no call (see deadcache.go); a store error is never
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
// and whether a rejection is permanent. Permanent, so remembered:
//   - no session item: an item's key is the hash of a fresh random token that
//     is handed out only after its conditional put succeeded, and a deleted
//     item is never written again;
//   - an item of another user id: an item's userId never changes;
//   - an older session version than the user's: versions only go up (one
//     per role, password or active change or end-all, under a rev condition);
//     this covers deactivated users, since deactivation and re-activation
//     each move the version on;
//   - absolutely expired: createdAt and expiresAt are never rewritten;
//   - idle-expired for more than ClockSkew by the stored idleExpiresAt: the
//     touch is conditional on idleExpiresAt > now, so no instance can slide
//     it any more.
//
// Not permanent, so not remembered: a missing user (users are never deleted;
// only a hand edit gets here), a session version above the user's, an
// inactive user of the session's own version (both hand edits), and an idle
// expiry that only this instance's lower SESSION_TTL decides, or that is
// within ClockSkew (another instance may still see the session live).
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

// expireEnded marks a session ended by a session-version bump as expired in
// its item (idle expiry and ttl set to now), for a session whose item the
// end-all cleanup missed (its index entry lagged, a login raced the bump, or
// the cleanup failed). It then leaves Count at once and is swept by TTL. An
// UpdateItem, which every function may already do on the sessions table (the
// touch), not a delete. Best effort: the session is rejected whatever happens.
func (m *Manager) expireEnded(ctx context.Context, s *Session, now int64) {
	_, err := m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                aws.String(m.table),
		Key:                      map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: s.Hash}},
		UpdateExpression:         aws.String("SET idleExpiresAt = :now, #ttl = :ttl"),
		ConditionExpression:      aws.String("attribute_exists(pk) AND sessionVersion = :sv AND idleExpiresAt > :now"),
		ExpressionAttributeNames: map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.Num(now), ":ttl": store.Num(ceilSeconds(now)), ":sv": store.Num(s.SessionVersion),
		},
	})
	if err != nil && !store.IsConditionFailed(err) {
		m.logger.WarnContext(ctx, "expiring an ended session failed", "handle", s.Handle, "err", err)
	}
}

func (m *Manager) read(ctx context.Context, hash, userID string) (sess, user map[string]types.AttributeValue, err error) {
	items, err := store.BatchGet(ctx, m.db, map[string][]map[string]types.AttributeValue{
		m.table:      {{"pk": &types.AttributeValueMemberS{Value: hash}}},
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
// session that expired, was deleted or was revoked meanwhile; a failed touch
// does not fail the request that was valid when read.
func (m *Manager) touch(ctx context.Context, s *Session, now int64) {
	idle := min(now+m.cfg.IdleTTL.Milliseconds(), s.ExpiresAt)
	ttl := ceilSeconds(min(idle, s.ExpiresAt))
	_, err := m.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:        aws.String(m.table),
		Key:              map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: s.Hash}},
		UpdateExpression: aws.String("SET lastActivity = :now, idleExpiresAt = :idle, #ttl = :ttl"),
		// lastActivity = :seen also makes concurrent instances write once per interval.
		ConditionExpression: aws.String("attribute_exists(pk) AND sessionVersion = :sv AND idleExpiresAt > :now " +
			"AND expiresAt > :now AND lastActivity = :seen"),
		ExpressionAttributeNames: map[string]string{"#ttl": "ttl"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": store.Num(now), ":idle": store.Num(idle), ":ttl": store.Num(ttl), ":sv": store.Num(s.SessionVersion), ":seen": store.Num(s.LastActivity),
		},
	})
	if err != nil {
		if !store.IsConditionFailed(err) {
			m.logger.WarnContext(ctx, "session touch failed", "handle", s.Handle, "err", err)
		}
		return
	}
	s.LastActivity, s.IdleExpiresAt, s.TTL = now, idle, ttl
}

// Resolve implements httpapi.SessionResolver: the caller's principal, with
// the permissions of the user's stored role (roles cached at most 60 s).
func (m *Manager) Resolve(ctx context.Context, token string) (*httpapi.Principal, error) {
	s, u, err := m.Validate(ctx, token)
	if err != nil || s == nil {
		return nil, err
	}
	_, perms, err := m.roles.Get(ctx, u.Role)
	if err != nil {
		return nil, err
	}
	return &httpapi.Principal{
		UserID: u.ID, Username: u.Username, Name: u.Name, Role: u.Role,
		SessionHash: s.Hash, Handle: s.Handle, Permissions: perms, Session: s,
	}, nil
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
	out, err := m.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(m.table),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: hash}},
		ConditionExpression:       aws.String("attribute_exists(pk) AND userId = :u"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: userID}},
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
var ErrBadCursor = users.ErrBadCursor

// ListUser returns a page of the live sessions of userID: the GSI gives the
// keys (a page may be short), one BatchGetItem gives the items and the user,
// so sessions of an older session version are left out.
func (m *Manager) ListUser(ctx context.Context, userID string, limit int, cursor string) (Page, error) {
	fields, err := users.DecodeCursorFields(cursor, "pk", "userId")
	if err != nil {
		return Page{}, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(m.table),
		IndexName:                 aws.String(UserIndex),
		KeyConditionExpression:    aws.String("userId = :u"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: userID}},
		Limit:                     aws.Int32(int32(limit)),
	}
	if fields != nil {
		if fields["userId"] != userID || !validHash(fields["pk"]) {
			return Page{}, ErrBadCursor
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			"pk":     &types.AttributeValueMemberS{Value: fields["pk"]},
			"userId": &types.AttributeValueMemberS{Value: userID},
		}
	}
	out, err := m.db.Query(ctx, in)
	if err != nil {
		return Page{}, fmt.Errorf("list sessions: %w", err)
	}
	hashes := make([]string, 0, len(out.Items))
	for _, it := range out.Items {
		if s, ok := it["pk"].(*types.AttributeValueMemberS); ok {
			hashes = append(hashes, s.Value)
		}
	}
	page, err := m.load(ctx, hashes, []string{userID})
	if err != nil {
		return Page{}, err
	}
	page.Cursor = users.EncodeCursor(out.LastEvaluatedKey)
	return page, nil
}

// ListAll returns a page of every user's live sessions (a scan; a page may be short).
func (m *Manager) ListAll(ctx context.Context, limit int, cursor string) (Page, error) {
	fields, err := users.DecodeCursorFields(cursor, "pk")
	if err != nil {
		return Page{}, err
	}
	in := &dynamodb.ScanInput{
		TableName:      aws.String(m.table),
		Limit:          aws.Int32(int32(limit)),
		ConsistentRead: aws.Bool(true),
	}
	if fields != nil {
		if !validHash(fields["pk"]) {
			return Page{}, ErrBadCursor
		}
		in.ExclusiveStartKey = map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fields["pk"]}}
	}
	out, err := m.db.Scan(ctx, in)
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
	page := Page{Users: us, Cursor: users.EncodeCursor(out.LastEvaluatedKey)}
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
		keys[m.table] = append(keys[m.table], map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: h}})
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
	var hashes []string
	var start map[string]types.AttributeValue
	for {
		out, err := m.db.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(m.table),
			IndexName:                 aws.String(UserIndex),
			KeyConditionExpression:    aws.String("userId = :u"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":u": &types.AttributeValueMemberS{Value: userID}},
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return nil, fmt.Errorf("list sessions: %w", err)
		}
		for _, it := range out.Items {
			if s, ok := it["pk"].(*types.AttributeValueMemberS); ok {
				hashes = append(hashes, s.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return hashes, nil
		}
		start = out.LastEvaluatedKey
	}
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
	var start map[string]types.AttributeValue
	for {
		out, err := m.db.Scan(ctx, &dynamodb.ScanInput{
			TableName:                 aws.String(m.table),
			FilterExpression:          aws.String("handle = :h"),
			ProjectionExpression:      aws.String("pk, userId"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":h": &types.AttributeValueMemberS{Value: handle}},
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return "", "", fmt.Errorf("find session: %w", err)
		}
		for _, it := range out.Items {
			h, _ := it["pk"].(*types.AttributeValueMemberS)
			u, _ := it["userId"].(*types.AttributeValueMemberS)
			if h != nil && u != nil && HandleOf(h.Value) == handle {
				return h.Value, u.Value, nil
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			return "", "", nil
		}
		start = out.LastEvaluatedKey
	}
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
		reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{
			Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: h}},
		}})
	}
	if err := store.BatchWrite(ctx, m.db, m.table, reqs); err != nil {
		return 0, fmt.Errorf("delete sessions: %w", err)
	}
	return len(hashes), nil
}

// maxCountPages bounds the scan behind Count; past it the count is approximate.
const maxCountPages = 20

// Count returns the number of unexpired session items of all users: those
// live by the same expiry rule as validation (both stored expiries, each also
// bounded by the configuration in force). It does not read users, so it also
// counts a session already ended by a session-version bump whose item is
// still there: end-all, a role, password or active change and deactivation
// delete the items right after the bump, and Validate marks any item they
// missed as expired the first time its token is presented, so such an item
// is counted at most until then or until its idle expiry (docs/identity.md).
// A Select COUNT scan; approximate when it stopped after maxCountPages pages,
// the count then being that of the pages read.
func (m *Manager) Count(ctx context.Context) (int, bool, error) {
	now := m.clock.Now().UnixMilli()
	values := map[string]types.AttributeValue{
		":now":     store.Num(now),
		":idleCut": store.Num(now - m.cfg.IdleTTL.Milliseconds()),
		":absCut":  store.Num(now - m.cfg.MaxLifetime.Milliseconds()),
	}
	var start map[string]types.AttributeValue
	total := 0
	for page := 0; page < maxCountPages; page++ {
		out, err := m.db.Scan(ctx, &dynamodb.ScanInput{
			TableName: aws.String(m.table),
			Select:    types.SelectCount,
			// now < min(idleExpiresAt, lastActivity+SESSION_TTL, expiresAt, createdAt+SESSION_MAX_LIFETIME)
			FilterExpression:          aws.String("expiresAt > :now AND idleExpiresAt > :now AND lastActivity > :idleCut AND createdAt > :absCut"),
			ExpressionAttributeValues: values,
			ExclusiveStartKey:         start,
		})
		if err != nil {
			return 0, false, fmt.Errorf("count sessions: %w", err)
		}
		total += int(out.Count)
		if len(out.LastEvaluatedKey) == 0 {
			return total, false, nil
		}
		start = out.LastEvaluatedKey
	}
	return total, true, nil
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
