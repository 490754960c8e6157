// Package users keeps the staff users and their roles in the users table:
// user items keyed "user#<lower-case username>", role items keyed
// "role#<name>", and one "meta#admins" item holding the set of active
// master_admin users, which makes the last-admin rule hold under concurrent
// changes. Every change writes an audit log line.
package users

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// API is the part of the DynamoDB client this package uses.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Errors of user changes; handlers map them to the contract's codes.
var (
	ErrNotFound    = errors.New("user not found")
	ErrExists      = errors.New("user already exists")
	ErrLastAdmin   = errors.New("last active master_admin")
	ErrUnknownRole = errors.New("unknown role")
	ErrConflict    = errors.New("user changed concurrently")
	// ErrForbidden: only a master_admin may grant master_admin or change a master_admin.
	ErrForbidden = errors.New("only a master_admin may grant master_admin or change a master_admin")
	// ErrProtected: the configured master user is never deactivated or demoted.
	ErrProtected = errors.New("the master user cannot be deactivated, demoted or deleted")
	// ErrCurrentPasswordRequired: a user changing their own password must give the current one.
	ErrCurrentPasswordRequired = errors.New("current password required")
	// ErrWrongPassword: the current password given is not the user's.
	ErrWrongPassword = errors.New("current password is wrong")
)

// User is a user item. ID is the lower-cased username: it is the key, it
// never changes, and sessions carry it.
type User struct {
	ID             string `dynamodbav:"userId"`
	Username       string `dynamodbav:"username"` // as first written (display case)
	Name           string `dynamodbav:"name"`
	Role           string `dynamodbav:"role"`
	PasswordHash   string `dynamodbav:"passwordHash"`
	Active         bool   `dynamodbav:"active"`
	SessionVersion int64  `dynamodbav:"sessionVersion"` // bumped on role, password or active change
	Rev            int64  `dynamodbav:"rev"`            // bumped on every write (optimistic locking)
	CreatedAt      int64  `dynamodbav:"createdAt"`      // epoch ms
	UpdatedAt      int64  `dynamodbav:"updatedAt"`      // epoch ms
}

// IsActiveAdmin reports whether u counts for the last-admin rule.
func (u *User) IsActiveAdmin() bool { return u != nil && u.Active && u.Role == RoleMasterAdmin }

// View is a user as the staff routes show it: never the hash.
type View struct {
	Username  string `json:"username"`
	Role      string `json:"role"`
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"createdAt"`
	UpdatedAt string `json:"updatedAt"`
}

// View returns the public form of u.
func (u *User) View() View {
	return View{
		Username: u.Username, Role: u.Role, Name: u.Name, Active: u.Active,
		CreatedAt: ISO(u.CreatedAt), UpdatedAt: ISO(u.UpdatedAt),
	}
}

// ISO renders epoch milliseconds as an RFC 3339 UTC timestamp with milliseconds.
func ISO(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// ID returns the user id (the key part) of a username: its lower case.
func ID(username string) string { return strings.ToLower(username) }

// Key is the users-table key of the user with the given id or username.
func Key(userID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: userPrefix + ID(userID)}}
}

// DecodeUser decodes a user item; nil for a nil item.
func DecodeUser(item map[string]types.AttributeValue) (*User, error) {
	if item == nil {
		return nil, nil
	}
	var u User
	if err := attributevalue.UnmarshalMap(item, &u); err != nil {
		return nil, fmt.Errorf("decode user: %w", err)
	}
	if pk, ok := item["pk"].(*types.AttributeValueMemberS); ok && u.ID == "" {
		u.ID = strings.TrimPrefix(pk.Value, userPrefix)
	}
	return &u, nil
}

// usernameChars reports whether s is one or more of [a-zA-Z0-9_] (a loop,
// not a regexp: package-level regexps are compiled on every cold start).
func usernameChars(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// ValidateUsername returns the contract's messages for a bad username (none when valid).
func ValidateUsername(s string) []string {
	switch n := len(s); {
	case n == 0:
		return []string{"Username is required"}
	case n < 3 || n > 50:
		if !usernameChars(s) {
			return []string{"Username must be between 3 and 50 characters", "Username can only contain letters, numbers and underscores"}
		}
		return []string{"Username must be between 3 and 50 characters"}
	case !usernameChars(s):
		return []string{"Username can only contain letters, numbers and underscores"}
	}
	return nil
}

// ValidatePassword returns the contract's messages for a bad password; the
// length counts runes, not bytes or UTF-16 units.
func ValidatePassword(s string) []string {
	if s == "" {
		return []string{"Password is required"}
	}
	if !utf8.ValidString(s) {
		return []string{"Password must be valid UTF-8"}
	}
	if n := utf8.RuneCountInString(s); n < 8 || n > 100 {
		return []string{"Password must be between 8 and 100 characters"}
	}
	return nil
}

// ValidateName returns the messages for a bad display name.
func ValidateName(s string) []string {
	if !utf8.ValidString(s) {
		return []string{"Name must be valid UTF-8"}
	}
	if n := utf8.RuneCountInString(strings.TrimSpace(s)); n < 1 || n > 100 {
		return []string{"Name must be between 1 and 100 characters"}
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return []string{"Name must not contain control characters"}
	}
	return nil
}

// Actor identifies who makes a change: for the audit line, and for the
// rules of who may change whom. A user acting through the API has Role set
// from their session's principal (their current role, read server-side);
// an Actor with no Role is code (the bootstrap, a tool, a test), which the
// rules of callers do not apply to, and which identity never passes on for
// a request.
type Actor struct {
	Username  string // the acting user's id, or a name for code
	Role      string // the acting user's current role; "" for code
	RequestID string
	ClientIP  string // the caller's address as the lockout counts it (never logged)
	Session   string // the handle of the session the change comes through (for the lockout)
}

// user reports whether the actor is a user acting through the API.
func (a Actor) user() bool { return a.Role != "" }

// Store reads and changes users.
type Store struct {
	db      API
	table   string
	clock   clock.Clock
	roles   *Roles
	params  passwords.Params
	cursors store.Cursors
	logger  *slog.Logger
	master  string // the id of the configured master user (MASTER_USERNAME); "" when unknown
}

// New returns a user store over table. logger receives the audit lines.
func New(db API, table string, clk clock.Clock, logger *slog.Logger) *Store {
	return NewWithRoles(db, table, NewRoles(db, table, clk), clk, logger)
}

// NewWithRoles is New sharing the instance's role cache.
func NewWithRoles(db API, table string, roles *Roles, clk clock.Clock, logger *slog.Logger) *Store {
	if clk == nil {
		clk = clock.System{}
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Store{db: db, table: table, clock: clk, roles: roles, params: passwords.Default, logger: logger}
}

// Roles returns the store's role cache.
func (s *Store) Roles() *Roles { return s.roles }

// Protect names the configured master user (MASTER_USERNAME), whom no
// change through this store deactivates or demotes.
func (s *Store) Protect(username string) { s.master = ID(username) }

// UseCursorKeys gives List the sealer of its cursors (the deployment's
// keyring); without one, a listing with more pages fails.
func (s *Store) UseCursorKeys(k store.Sealer) { s.cursors = store.Cursors{Sealer: k} }

// Table returns the users table name.
func (s *Store) Table() string { return s.table }

// PasswordParams returns the argon2id parameters new hashes use.
func (s *Store) PasswordParams() passwords.Params { return s.params }

// SetPasswordParams changes the argon2id parameters (tests of the rehash path).
func (s *Store) SetPasswordParams(p passwords.Params) { s.params = p }

// Get reads a user with a strongly consistent read; nil when absent.
func (s *Store) Get(ctx context.Context, username string) (*User, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: Key(username), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get user: %w", err)
	}
	return DecodeUser(out.Item)
}

// NewUser is the input of Create.
type NewUser struct {
	Username string
	Password string
	Role     string
	Name     string
}

// Create adds a user (hashing the password); ErrExists when the username is
// taken in any letter case, ErrUnknownRole when the role is absent.
func (s *Store) Create(ctx context.Context, actor Actor, in NewUser) (*User, error) {
	if actor.user() && in.Role == RoleMasterAdmin && actor.Role != RoleMasterAdmin {
		return nil, ErrForbidden
	}
	role, err := s.roles.Fresh(ctx, in.Role)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownRole, in.Role)
	}
	hash, err := passwords.Hash(in.Password, s.params)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UnixMilli()
	u := &User{
		ID: ID(in.Username), Username: in.Username, Name: in.Name, Role: in.Role, PasswordHash: hash,
		Active: true, SessionVersion: 1, Rev: 1, CreatedAt: now, UpdatedAt: now,
	}
	if u.Name == "" {
		u.Name = in.Username
	}
	created, err := s.put(ctx, u)
	if err != nil {
		return nil, err
	}
	if !created {
		return nil, ErrExists
	}
	s.audit(ctx, actor, "user.created", u.ID, "role", u.Role)
	return u, nil
}

// put writes a new user item only if absent (and joins the admin set when
// it is an active admin); false when the user already existed.
func (s *Store) put(ctx context.Context, u *User) (bool, error) {
	item, err := attributevalue.MarshalMap(u)
	if err != nil {
		return false, fmt.Errorf("encode user: %w", err)
	}
	item["pk"] = &types.AttributeValueMemberS{Value: userPrefix + u.ID}
	item["kind"] = &types.AttributeValueMemberS{Value: kindUser}
	absent, err := expression.NewBuilder().WithCondition(expression.AttributeNotExists(expression.Name("pk"))).Build()
	if err != nil {
		return false, fmt.Errorf("build user put: %w", err)
	}
	if !u.IsActiveAdmin() {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName: aws.String(s.table), Item: item,
			ConditionExpression: absent.Condition(), ExpressionAttributeNames: absent.Names(),
		})
		if store.IsConditionFailed(err) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("put user: %w", err)
		}
		return true, nil
	}
	join, err := s.adminSetUpdate(u.ID, true)
	if err != nil {
		return false, err
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{
			TableName: aws.String(s.table), Item: item,
			ConditionExpression: absent.Condition(), ExpressionAttributeNames: absent.Names(),
		}},
		{Update: join},
	}})
	if err == nil {
		return true, nil
	}
	if reasons, ok := cancelReasons(err); ok && reasons[0] == "ConditionalCheckFailed" {
		return false, nil
	}
	return false, fmt.Errorf("put admin user: %w", err)
}

var adminsKey = map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "meta#admins"}}

// adminSetUpdate adds the user to, or removes them from, the set of active
// admins; a removal is refused by the condition when it would empty the set.
func (s *Store) adminSetUpdate(userID string, add bool) (*types.Update, error) {
	admins := expression.Name("admins")
	member := expression.Value(&types.AttributeValueMemberSS{Value: []string{userID}})
	b := expression.NewBuilder().WithUpdate(expression.Add(admins, member))
	if !add {
		b = expression.NewBuilder().WithUpdate(expression.Delete(admins, member)).
			WithCondition(expression.Size(admins).GreaterThan(expression.Value(1)))
	}
	expr, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build admin set update: %w", err)
	}
	return &types.Update{
		TableName:                 aws.String(s.table),
		Key:                       adminsKey,
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}, nil
}

// cancelReasons returns the per-item codes of a cancelled transaction.
func cancelReasons(err error) ([]string, bool) {
	var tce *types.TransactionCanceledException
	if !errors.As(err, &tce) {
		return nil, false
	}
	out := make([]string, len(tce.CancellationReasons))
	for i, r := range tce.CancellationReasons {
		out[i] = aws.ToString(r.Code)
	}
	return out, len(out) > 0
}

// Changes are the optional fields of a user update.
type Changes struct {
	Role     *string
	Name     *string
	Active   *bool
	Password *string
	// CurrentPassword must accompany a user's change of their own password
	// (checked against the stored hash, argon2id, constant time).
	CurrentPassword *string
	// EndSessions ends the user's sessions even when nothing else changes.
	EndSessions bool
}

// Update applies ch to a user. A role, password or active change (or
// EndSessions) increments the user's session version, which ends all of
// their sessions on the next request. The last active master_admin cannot
// be demoted or deactivated (ErrLastAdmin).
// It also reports whether the user's sessions were ended.
func (s *Store) Update(ctx context.Context, actor Actor, username string, ch Changes) (*User, bool, error) {
	return s.update(ctx, actor, "user.updated", username, ch)
}

func (s *Store) update(ctx context.Context, actor Actor, event, username string, ch Changes) (*User, bool, error) {
	var newHash string
	if ch.Password != nil {
		h, err := passwords.Hash(*ch.Password, s.params)
		if err != nil {
			return nil, false, err
		}
		newHash = h
	}
	if ch.Role != nil {
		role, err := s.roles.Fresh(ctx, *ch.Role)
		if err != nil {
			return nil, false, err
		}
		if role == nil {
			return nil, false, fmt.Errorf("%w: %s", ErrUnknownRole, *ch.Role)
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		old, err := s.Get(ctx, username)
		if err != nil {
			return nil, false, err
		}
		if old == nil {
			return nil, false, ErrNotFound
		}
		next := *old
		var fields []string
		if ch.Role != nil && *ch.Role != old.Role {
			next.Role = *ch.Role
			fields = append(fields, "role")
		}
		if ch.Name != nil && *ch.Name != old.Name {
			next.Name = *ch.Name
			fields = append(fields, "name")
		}
		if ch.Active != nil && *ch.Active != old.Active {
			next.Active = *ch.Active
			fields = append(fields, "active")
		}
		if ch.Password != nil {
			next.PasswordHash = newHash
			fields = append(fields, "password")
		}
		if err := s.authorize(actor, old, &next, ch); err != nil {
			return nil, false, err
		}
		endSessions := ch.EndSessions || ch.Password != nil || next.Role != old.Role || next.Active != old.Active
		if len(fields) == 0 && !endSessions {
			return old, false, nil
		}
		if endSessions {
			next.SessionVersion++
		}
		next.Rev++
		next.UpdatedAt = s.clock.Now().UnixMilli()
		err = s.write(ctx, old, &next)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return nil, false, err
		}
		s.audit(ctx, actor, event, next.ID, "fields", fields, "sessionsEnded", endSessions)
		return &next, endSessions, nil
	}
	return nil, false, ErrConflict
}

// authorize applies the rules of who may change whom to the change from old
// to next, against the item the write is conditional on (so a concurrent
// promotion cannot slip a change past them):
//   - the configured master user is never deactivated or demoted;
//   - only a master_admin grants master_admin or changes a master_admin
//     (ending someone's sessions alone is not a change of them);
//   - a user changing their own password gives the current one.
func (s *Store) authorize(actor Actor, old, next *User, ch Changes) error {
	changes := next.Role != old.Role || next.Name != old.Name || next.Active != old.Active || ch.Password != nil
	if actor.user() && changes && actor.Role != RoleMasterAdmin && (old.Role == RoleMasterAdmin || next.Role == RoleMasterAdmin) {
		return ErrForbidden
	}
	if s.master != "" && old.ID == s.master && ((old.Active && !next.Active) || (old.Role == RoleMasterAdmin && next.Role != RoleMasterAdmin)) {
		return ErrProtected
	}
	if actor.user() && ch.Password != nil && ID(actor.Username) == old.ID {
		if ch.CurrentPassword == nil || *ch.CurrentPassword == "" {
			return ErrCurrentPasswordRequired
		}
		ok, err := passwords.Verify(*ch.CurrentPassword, old.PasswordHash)
		if err != nil || !ok {
			return ErrWrongPassword
		}
	}
	return nil
}

// write stores next over old if old is still current (its rev unchanged),
// keeping the admin set in step in the same transaction.
func (s *Store) write(ctx context.Context, old, next *User) error {
	upd := expression.Set(expression.Name("role"), expression.Value(next.Role)).
		Set(expression.Name("name"), expression.Value(next.Name)).
		Set(expression.Name("active"), expression.Value(next.Active)).
		Set(expression.Name("passwordHash"), expression.Value(next.PasswordHash)).
		Set(expression.Name("sessionVersion"), expression.Value(next.SessionVersion)).
		Set(expression.Name("rev"), expression.Value(next.Rev)).
		Set(expression.Name("updatedAt"), expression.Value(next.UpdatedAt))
	expr, err := expression.NewBuilder().WithUpdate(upd).
		WithCondition(expression.Name("rev").Equal(expression.Value(old.Rev))).Build()
	if err != nil {
		return fmt.Errorf("build user update: %w", err)
	}
	update := &types.Update{
		TableName:                 aws.String(s.table),
		Key:                       Key(old.ID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	}
	wasAdmin, isAdmin := old.IsActiveAdmin(), next.IsActiveAdmin()
	if wasAdmin == isAdmin {
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: update.TableName, Key: update.Key, UpdateExpression: update.UpdateExpression,
			ConditionExpression: update.ConditionExpression, ExpressionAttributeNames: update.ExpressionAttributeNames,
			ExpressionAttributeValues: update.ExpressionAttributeValues,
		})
		if store.IsConditionFailed(err) {
			return ErrConflict
		}
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		return nil
	}
	adminSet, err := s.adminSetUpdate(old.ID, isAdmin)
	if err != nil {
		return err
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Update: update},
		{Update: adminSet},
	}})
	if err == nil {
		return nil
	}
	if reasons, ok := cancelReasons(err); ok {
		switch {
		case reasons[0] == "ConditionalCheckFailed":
			return ErrConflict
		case len(reasons) > 1 && reasons[1] == "ConditionalCheckFailed":
			return ErrLastAdmin
		case slices.Contains(reasons, "TransactionConflict"):
			return ErrConflict
		}
	}
	return fmt.Errorf("update admin user: %w", err)
}

// Deactivate marks a user inactive and ends all of their sessions.
func (s *Store) Deactivate(ctx context.Context, actor Actor, username string) (*User, error) {
	inactive := false
	u, _, err := s.update(ctx, actor, "user.deactivated", username, Changes{Active: &inactive, EndSessions: true})
	return u, err
}

// EndSessions ends every session of a user at once by moving their session version on.
func (s *Store) EndSessions(ctx context.Context, actor Actor, username string) (*User, error) {
	u, _, err := s.update(ctx, actor, "user.sessions_ended", username, Changes{EndSessions: true})
	return u, err
}

// Rehash replaces a user's hash with one under the current parameters after
// a successful login, only if the stored hash is still the one verified. The
// password is unchanged, so sessions stay valid.
func (s *Store) Rehash(ctx context.Context, u *User, password string) error {
	hash, err := passwords.Hash(password, s.params)
	if err != nil {
		return err
	}
	expr, err := expression.NewBuilder().
		WithUpdate(expression.Set(expression.Name("passwordHash"), expression.Value(hash)).
			Set(expression.Name("rev"), expression.Name("rev").Plus(expression.Value(1)))).
		WithCondition(expression.Name("passwordHash").Equal(expression.Value(u.PasswordHash))).Build()
	if err != nil {
		return fmt.Errorf("build rehash: %w", err)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       Key(u.ID),
		UpdateExpression:          expr.Update(),
		ConditionExpression:       expr.Condition(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if store.IsConditionFailed(err) {
		return nil // changed meanwhile: the newer hash wins
	}
	if err != nil {
		return fmt.Errorf("rehash: %w", err)
	}
	s.audit(ctx, Actor{Username: u.ID}, "user.password_rehashed", u.ID)
	return nil
}

// usersTableKey matches every key shape of the users table (a scan page may
// end on a role or meta item as well as on a user): (user|role|meta)#
// followed by 1 to 64 of [a-zA-Z0-9_].
func usersTableKey(k string) bool {
	kind, name, ok := strings.Cut(k, "#")
	return ok && (kind == "user" || kind == "role" || kind == "meta") && len(name) <= 64 && usernameChars(name)
}

// List returns a page of users (a page may be short) and the cursor of the
// next page ("" at the end); store.ErrBadCursor for a cursor not issued here.
func (s *Store) List(ctx context.Context, limit int, cursor string) ([]*User, string, error) {
	start, err := s.cursors.Decode(ctx, cursor, store.KeyField{Name: "pk", Valid: usersTableKey})
	if err != nil {
		return nil, "", err
	}
	expr, err := expression.NewBuilder().WithFilter(expression.Name("kind").Equal(expression.Value(kindUser))).Build()
	if err != nil {
		return nil, "", fmt.Errorf("build user list: %w", err)
	}
	out, err := s.db.Scan(ctx, &dynamodb.ScanInput{
		TableName:                 aws.String(s.table),
		Limit:                     aws.Int32(int32(limit)),
		ExclusiveStartKey:         start,
		ConsistentRead:            aws.Bool(true),
		FilterExpression:          expr.Filter(),
		ExpressionAttributeNames:  expr.Names(),
		ExpressionAttributeValues: expr.Values(),
	})
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	list := make([]*User, 0, len(out.Items))
	for _, it := range out.Items {
		u, err := DecodeUser(it)
		if err != nil {
			return nil, "", err
		}
		list = append(list, u)
	}
	next, err := s.cursors.Encode(ctx, out.LastEvaluatedKey)
	if err != nil {
		return nil, "", err
	}
	return list, next, nil
}

func (s *Store) audit(ctx context.Context, actor Actor, event, target string, attrs ...any) {
	args := append([]any{"audit", true, "event", event, "actor", actor.Username, "target", target}, attrs...)
	if actor.RequestID != "" {
		args = append(args, "apiRequestId", actor.RequestID)
	}
	s.logger.InfoContext(ctx, "audit", args...)
}
