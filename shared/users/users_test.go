package users_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/secrets"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

var epoch = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

func newStore(t *testing.T, opts ...func(*dynamodb.Options)) (*users.Store, *dynamotest.Env, *clock.Fake) {
	t.Helper()
	env := dynamotest.New(t, "auth", nil, opts...)
	fake := clock.NewFake(epoch)
	s := users.New(env.Client, env.Tables.Users, fake, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.UseCursorKeys(keyring.New(env.NewClient(t), env.Tables.Users, fake, nil))
	return s, env, fake
}

var admin = users.Actor{Username: "tester"}

func TestSeedRoles(t *testing.T) {
	s, env, _ := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range users.DefaultRoles() {
		got, err := s.Roles().Fresh(ctx, want.ID)
		if err != nil || got == nil || *got != want {
			t.Fatalf("role %s = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	// An edit made in the store survives a later seed.
	_, err := env.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(env.Tables.Users), Key: users.RoleKey(users.RoleStaffTester),
		UpdateExpression:          aws.String("SET trafficControl = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Roles().Fresh(ctx, users.RoleStaffTester)
	if !got.TrafficControl {
		t.Fatal("seed overwrote an edited role")
	}
}

func TestRoleCacheTTL(t *testing.T) {
	s, env, fake := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	_, perms, err := s.Roles().Get(ctx, users.RoleStaffTester)
	if err != nil || perms[users.PermTrafficControl] {
		t.Fatalf("initial: %v %v", perms, err)
	}
	_, err = env.Client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(env.Tables.Users), Key: users.RoleKey(users.RoleStaffTester),
		UpdateExpression:          aws.String("SET trafficControl = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": &types.AttributeValueMemberBOOL{Value: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	fake.Advance(59 * time.Second)
	if _, perms, _ := s.Roles().Get(ctx, users.RoleStaffTester); perms[users.PermTrafficControl] {
		t.Fatal("cache refreshed before 60 s (fine, but this test pins the bound)")
	}
	fake.Advance(time.Second)
	if _, perms, _ := s.Roles().Get(ctx, users.RoleStaffTester); !perms[users.PermTrafficControl] {
		t.Fatal("a role edit was not seen after 60 s")
	}
	// An absent role grants nothing.
	role, perms, err := s.Roles().Get(ctx, "ghost")
	if err != nil || role != nil || perms[users.PermAIAPIs] || perms[users.PermUserManagement] {
		t.Fatalf("absent role: %v %v %v", role, perms, err)
	}
}

func TestCreateAndUpdate(t *testing.T) {
	s, _, fake := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := s.Create(ctx, admin, users.NewUser{Username: "Mixed_Case", Password: "password-123", Role: users.RoleStaffTester})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "mixed_case" || u.Username != "Mixed_Case" || u.Name != "Mixed_Case" || !u.Active || u.SessionVersion != 1 {
		t.Fatalf("created %+v", u)
	}
	if _, err := s.Create(ctx, admin, users.NewUser{Username: "MIXED_case", Password: "password-123", Role: users.RoleStaffTester}); !errors.Is(err, users.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := s.Create(ctx, admin, users.NewUser{Username: "other", Password: "password-123", Role: "nope"}); !errors.Is(err, users.ErrUnknownRole) {
		t.Fatalf("unknown role: %v", err)
	}
	fake.Advance(time.Minute)
	name := "New Name"
	u2, ended, err := s.Update(ctx, admin, "mixed_CASE", users.Changes{Name: &name})
	if err != nil || ended || u2.Name != name || u2.SessionVersion != 1 || u2.UpdatedAt != epoch.Add(time.Minute).UnixMilli() {
		t.Fatalf("name change: %+v %v %v", u2, ended, err)
	}
	same := users.RoleStaffTester
	if _, ended, _ := s.Update(ctx, admin, "mixed_case", users.Changes{Role: &same}); ended {
		t.Fatal("setting the same role ended sessions")
	}
	pw := "password-456"
	u3, ended, err := s.Update(ctx, admin, "mixed_case", users.Changes{Password: &pw})
	if err != nil || !ended || u3.SessionVersion != 2 {
		t.Fatalf("password change: %+v %v %v", u3, ended, err)
	}
	if ok, _ := passwords.Verify(pw, u3.PasswordHash); !ok {
		t.Fatal("new password does not verify")
	}
	if _, _, err := s.Update(ctx, admin, "nobody", users.Changes{Name: &name}); !errors.Is(err, users.ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// TestLastAdminConcurrent: two admins demoting each other at the same time
// cannot both succeed.
func TestLastAdminConcurrent(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"admin_a", "admin_b"} {
		if _, err := s.Create(ctx, admin, users.NewUser{Username: n, Password: "password-123", Role: users.RoleMasterAdmin}); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		demote := users.RoleStaffTester
		for i, n := range []string{"admin_a", "admin_b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = s.Update(ctx, admin, n, users.Changes{Role: &demote})
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
			} else if !errors.Is(err, users.ErrLastAdmin) {
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d demotions succeeded, want exactly 1 (%v)", round, ok, errs)
		}
		a, _ := s.Get(ctx, "admin_a")
		b, _ := s.Get(ctx, "admin_b")
		if a.IsActiveAdmin() == b.IsActiveAdmin() {
			t.Fatalf("admins after the race: a=%v b=%v", a.IsActiveAdmin(), b.IsActiveAdmin())
		}
		// Promote the demoted one back for the next round.
		promote := users.RoleMasterAdmin
		for _, u := range []*users.User{a, b} {
			if !u.IsActiveAdmin() {
				if _, _, err := s.Update(ctx, admin, u.ID, users.Changes{Role: &promote}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Deactivating one of two admins works; the other is then the last.
	if _, err := s.Deactivate(ctx, admin, "admin_a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deactivate(ctx, admin, "admin_b"); !errors.Is(err, users.ErrLastAdmin) {
		t.Fatalf("deactivating the last admin: %v", err)
	}
	// Reactivating restores the count.
	yes := true
	if _, _, err := s.Update(ctx, admin, "admin_a", users.Changes{Active: &yes}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deactivate(ctx, admin, "admin_b"); err != nil {
		t.Fatalf("with two admins again: %v", err)
	}
}

func TestListCursor(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"user_a", "user_b", "user_c"} {
		if _, err := s.Create(ctx, admin, users.NewUser{Username: n, Password: "password-123", Role: users.RoleStaffTester}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	cursor := ""
	for i := 0; i < 10; i++ {
		list, next, err := s.List(ctx, 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range list {
			seen[u.ID] = true
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(seen) != 3 {
		t.Fatalf("listed %v", seen)
	}
	// A cursor in the old clear form, junk, and a sealed cursor of another
	// deployment's key are all refused.
	_, first, err := s.List(ctx, 2, "")
	if err != nil || first == "" {
		t.Fatalf("first page: %q %v", first, err)
	}
	other, _, _ := newStore(t)
	if err := other.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"x", "eyJ9", "eyJwayI6IngifQ", "eyJwayI6InVzZXIjdXNlcl9hIn0", strings.Repeat("A", 2000)} {
		if _, _, err := s.List(ctx, 2, bad); !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}
	if _, _, err := other.List(ctx, 2, first); !errors.Is(err, store.ErrBadCursor) {
		t.Fatalf("another deployment's cursor: %v", err)
	}
}

// TestGrantRules (finding 5): the rules of who may change whom, checked
// against the stored user the write is conditional on.
func TestGrantRules(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	if err := s.Roles().Seed(ctx); err != nil {
		t.Fatal(err)
	}
	s.Protect("Root_User")
	pw := "password-123"
	for _, u := range []users.NewUser{
		{Username: "root_user", Password: pw, Role: users.RoleMasterAdmin},
		{Username: "other_admin", Password: pw, Role: users.RoleMasterAdmin},
		{Username: "staff_a", Password: pw, Role: users.RoleStaffTester},
	} {
		if _, err := s.Create(ctx, admin, u); err != nil {
			t.Fatal(err)
		}
	}
	masterActor := users.Actor{Username: "other_admin", Role: users.RoleMasterAdmin}
	staffActor := users.Actor{Username: "staff_a", Role: "user_admin"}
	str := func(v string) *string { return &v }
	no := false
	cases := []struct {
		name   string
		actor  users.Actor
		target string
		ch     users.Changes
		want   error
	}{
		{"non-admin grants master_admin", staffActor, "staff_a", users.Changes{Role: str(users.RoleMasterAdmin)}, users.ErrForbidden},
		{"non-admin renames a master_admin", staffActor, "other_admin", users.Changes{Name: str("X")}, users.ErrForbidden},
		{"non-admin deactivates a master_admin", staffActor, "other_admin", users.Changes{Active: &no}, users.ErrForbidden},
		{"admin demotes the master user", masterActor, "root_user", users.Changes{Role: str(users.RoleStaffTester)}, users.ErrProtected},
		{"admin deactivates the master user", masterActor, "ROOT_USER", users.Changes{Active: &no}, users.ErrProtected},
		{"own password without the current one", masterActor, "other_admin", users.Changes{Password: str("new-password-1")}, users.ErrCurrentPasswordRequired},
		{"own password with a wrong current one", masterActor, "other_admin", users.Changes{Password: str("new-password-1"), CurrentPassword: str("wrong-password")}, users.ErrWrongPassword},
		{"own password with the current one", masterActor, "other_admin", users.Changes{Password: str("new-password-1"), CurrentPassword: str(pw)}, nil},
		{"admin renames the master user", masterActor, "root_user", users.Changes{Name: str("Root")}, nil},
		{"non-admin renames staff", staffActor, "staff_a", users.Changes{Name: str("Staff")}, nil},
		{"code (no role) is not a caller", users.Actor{Username: "tool"}, "other_admin", users.Changes{Name: str("Y")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := s.Update(ctx, tc.actor, tc.target, tc.ch); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := s.Create(ctx, staffActor, users.NewUser{Username: "made_admin", Password: pw, Role: users.RoleMasterAdmin}); !errors.Is(err, users.ErrForbidden) {
		t.Fatalf("non-admin creates a master_admin: %v", err)
	}
	if _, err := s.Deactivate(ctx, masterActor, "root_user"); !errors.Is(err, users.ErrProtected) {
		t.Fatalf("deactivate the master user: %v", err)
	}
}

func TestValidators(t *testing.T) {
	tests := []struct {
		fn   func(string) []string
		in   string
		want int
	}{
		{users.ValidateUsername, "abc", 0},
		{users.ValidateUsername, "A_b_9", 0},
		{users.ValidateUsername, strings.Repeat("a", 50), 0},
		{users.ValidateUsername, "", 1},
		{users.ValidateUsername, "ab", 1},
		{users.ValidateUsername, "a-b", 1},
		{users.ValidateUsername, "a-", 2},
		{users.ValidateUsername, "abc d", 1},
		{users.ValidateUsername, "ümlaut", 1},
		{users.ValidatePassword, "12345678", 0},
		{users.ValidatePassword, "пароль12", 0},               // 8 runes, 14 bytes
		{users.ValidatePassword, strings.Repeat("é", 100), 0}, // 100 runes, 200 bytes
		{users.ValidatePassword, strings.Repeat("é", 101), 1},
		{users.ValidatePassword, "1234567", 1},
		{users.ValidatePassword, "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", 1},
		{users.ValidateName, "Ann", 0},
		{users.ValidateName, "", 1},
		{users.ValidateName, "a\nb", 1},
	}
	for _, tc := range tests {
		if got := tc.fn(tc.in); len(got) != tc.want {
			t.Errorf("%q: %v", tc.in, got)
		}
	}
}

// fakeAWS answers Secrets Manager and SSM JSON-protocol calls from a map
// (shared/secrets checks the signatures; here the bootstrap's use of them).
func fakeAWS(t *testing.T, secrets map[string]string, params map[string][2]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		notFound := func() {
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"__type":"ResourceNotFoundException","message":"not found"}`))
		}
		switch r.Header.Get("X-Amz-Target") {
		case "secretsmanager.GetSecretValue":
			id, _ := in["SecretId"].(string)
			v, ok := secrets[id]
			if !ok {
				notFound()
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"Name": id, "SecretString": v})
		case "AmazonSSM.GetParameter":
			name, _ := in["Name"].(string)
			if in["WithDecryption"] != true {
				t.Errorf("GetParameter without decryption")
			}
			p, ok := params[name]
			if !ok {
				w.WriteHeader(400)
				_, _ = w.Write([]byte(`{"__type":"ParameterNotFound","message":"not found"}`))
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{"Name": name, "Type": p[0], "Value": p[1]}})
		default:
			w.WriteHeader(400)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestBootstrapFromSecrets(t *testing.T) {
	s, env, _ := newStore(t)
	ctx := context.Background()
	srv := fakeAWS(t,
		map[string]string{
			"zenith/master":      `{"password":"from-secrets-json","username":"ignored"}`,
			"zenith/plain":       "from-secrets-plain",
			"zenith/short":       "short",
			"zenith/no-password": `{"pass":"x"}`,
		},
		map[string][2]string{
			"/zenith/master":    {"SecureString", "from-ssm-secure"},
			"/zenith/plaintext": {"String", "from-ssm-plain-1"},
		})
	ac, err := store.LoadAWS(ctx, env.Config.Region, env.Config.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	reader := secrets.NewAWS(ac)
	reader.Endpoint = srv.URL
	tests := []struct {
		user, ref, password, errPart string
	}{
		{"sm_json", "zenith/master", "from-secrets-json", ""},
		{"sm_plain", "secretsmanager:zenith/plain", "from-secrets-plain", ""},
		{"sm_arn", "arn:aws:secretsmanager:us-east-1:123456789012:secret:zenith/plain", "", "read secret"}, // not in the fake
		{"ssm_path", "/zenith/master", "from-ssm-secure", ""},
		{"ssm_prefix", "ssm:/zenith/master", "from-ssm-secure", ""},
		{"ssm_plain_type", "/zenith/plaintext", "", "must be a SecureString"},
		{"ssm_missing", "/zenith/none", "", "read SSM parameter"},
		{"sm_short", "zenith/short", "", "MASTER_PASSWORD_SECRET holds an invalid password"},
		{"sm_no_field", "zenith/no-password", "", `without a string "password" field`},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			err := s.Bootstrap(ctx, users.Master{Username: tc.user, Secret: tc.ref}, reader)
			u, _ := s.Get(ctx, tc.user)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) || !strings.Contains(err.Error(), "MASTER_PASSWORD_SECRET") {
					t.Fatalf("err = %v, want one naming MASTER_PASSWORD_SECRET and %q", err, tc.errPart)
				}
				if u != nil {
					t.Fatal("a failed bootstrap created the user")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := passwords.Verify(tc.password, u.PasswordHash); !ok || u.Role != users.RoleMasterAdmin {
				t.Fatalf("user %+v does not hold the secret's password", u)
			}
		})
	}
	// A present master user is left alone: no secret read, no write.
	calls := &store.CallCounter{}
	s2 := users.New(env.NewClient(t, calls.Option()), env.Tables.Users, nil, nil)
	if err := s2.Bootstrap(ctx, users.Master{Username: "SM_JSON", Secret: "zenith/absent"}, reader); err != nil {
		t.Fatalf("warm start: %v", err)
	}
	if calls.Count("PutItem") != 0 || calls.Count("TransactWriteItems") != 0 || calls.Count("GetItem") != 1 {
		t.Fatalf("warm start calls: %v", calls.Snapshot())
	}
}

func TestMasterFromConfigNeverEchoesPassword(t *testing.T) {
	s, env, _ := newStore(t)
	_ = s
	cfg := env.Config
	cfg.MasterUsername, cfg.MasterPassword = "admin_ok", "tiny"
	err := users.Master{Username: cfg.MasterUsername, Password: cfg.MasterPassword, Secret: cfg.MasterPasswordSecret}.Validate()
	if err == nil || strings.Contains(err.Error(), "tiny") || !strings.Contains(err.Error(), "MASTER_PASSWORD") {
		t.Fatalf("err = %v", err)
	}
}
