package sessions

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// BenchmarkValidateLogic is the in-process part of a validate: parse and
// hash the token, decode the session and user items the BatchGetItem
// returned, and decide. The SDK call itself is measured in authapi's
// BenchmarkValidate.
func BenchmarkValidateLogic(b *testing.B) {
	cfg, err := config.Load("session", func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	m := newManager(nil, cfg, nil, nil)
	tok, _ := NewToken("bench_user")
	now := int64(4102444800000)
	sessItem, _ := attributevalue.MarshalMap(&Session{
		Hash: HashToken(tok), UserID: "bench_user", Handle: HandleOf(HashToken(tok)), SessionVersion: 3, Role: "staff_tester",
		CreatedAt: now, LastActivity: now, IdleExpiresAt: now + 86400000, ExpiresAt: now + 604800000, TTL: (now + 86400000) / 1000,
	})
	userItem, _ := attributevalue.MarshalMap(&users.User{
		ID: "bench_user", Username: "Bench_User", Name: "Bench", Role: "staff_tester",
		PasswordHash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U",
		Active:       true, SessionVersion: 3, Rev: 7, CreatedAt: now, UpdatedAt: now,
	})
	b.ReportAllocs()
	for b.Loop() {
		id, ok := ParseToken(tok)
		if !ok {
			b.Fatal("parse")
		}
		_ = HashToken(tok)
		s, _, v, err := m.check(id, sessItem, userItem, now+1000)
		if err != nil || s == nil || v != valid {
			b.Fatal("invalid")
		}
	}
}
