package sessions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/expression"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/keyring"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// benchTable is a sessions table seeded for the benchmarks, read through a
// dbproxy that counts calls and consumed capacity.
type benchTable struct {
	env    *dynamotest.Env
	proxy  *dbproxy.Proxy
	clock  *clock.Fake
	mgr    *Manager // on the proxy
	raw    *Manager // on DynamoDB Local directly, for seeding
	seeder *dynamodb.Client
	rng    *rand.Rand
	seq    int
}

func newBenchTable(b *testing.B) *benchTable {
	b.Helper()
	env := dynamotest.New(b, "session", nil) // 24 h idle, 7 d absolute
	p, err := dbproxy.New(env.Config.DynamoDBEndpoint)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	// On a minute boundary, so the count has no partly passed minute.
	fake := clock.NewFake(epoch.Add(90 * time.Minute))
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	proxied := env.NewClient(b, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()) })
	seeder := env.NewAdminClient(b) // long timeouts and retries: seeding loads DynamoDB Local
	bt := &benchTable{
		env: env, proxy: p, clock: fake, seeder: seeder,
		mgr: newManager(proxied, env.Config, fake, quiet),
		raw: newManager(seeder, env.Config, fake, quiet),
		rng: rand.New(rand.NewPCG(1, 2)),
	}
	// The cursor key is read past the proxy: a listing's calls are its own.
	bt.mgr.UseCursorKeys(keyring.New(env.Client, env.Tables.Users, fake, nil))
	return bt
}

// seed writes n live sessions of the given users (version 1 unless the map
// says otherwise) straight into the table with BatchWriteItem, 8 calls in
// flight, and the counter deltas they imply: the state Create would have
// left, at a fraction of its calls.
func (bt *benchTable) seed(b *testing.B, n int, userIDs []string, versions map[string]int64) []*Session {
	b.Helper()
	ctx := context.Background()
	now := bt.clock.Now().UnixMilli()
	cfg := bt.raw.cfg
	counts := newCountWrites(now)
	list := make([]*Session, 0, n)
	reqs := make([]types.WriteRequest, 0, n)
	for i := 0; i < n; i++ {
		bt.seq++
		sum := sha256.Sum256([]byte(fmt.Sprintf("bench-session-%d", bt.seq)))
		hash := hex.EncodeToString(sum[:])
		userID := userIDs[i%len(userIDs)]
		version := int64(1)
		if v, ok := versions[userID]; ok {
			version = v
		}
		last := now - bt.rng.Int64N(cfg.IdleTTL.Milliseconds()-time.Minute.Milliseconds())
		created := last - bt.rng.Int64N(cfg.MaxLifetime.Milliseconds()-cfg.IdleTTL.Milliseconds())
		s := &Session{
			Hash: hash, UserID: userID, Handle: HandleOf(hash), SessionVersion: version, Role: users.RoleStaffTester,
			CreatedAt: created, LastActivity: last, ExpiresAt: created + cfg.MaxLifetime.Milliseconds(),
		}
		s.IdleExpiresAt = min(last+cfg.IdleTTL.Milliseconds(), s.ExpiresAt)
		s.TTL = ceilSeconds(s.IdleExpiresAt)
		s.CountedExpiry = s.EffectiveExpiry(cfg)
		item, err := attributevalue.MarshalMap(s)
		if err != nil {
			b.Fatal(err)
		}
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
		counts.add(s.CountedExpiry, 1)
		list = append(list, s)
	}
	var calls []func(context.Context) error
	for start := 0; start < len(reqs); start += 25 {
		chunk := reqs[start:min(start+25, len(reqs))]
		calls = append(calls, func(ctx context.Context) error {
			return store.BatchWrite(ctx, bt.seeder, bt.env.Tables.Sessions, chunk)
		})
	}
	if err := parallel(ctx, 8, calls); err != nil {
		b.Fatalf("seed: %v", err)
	}
	if _, err := bt.raw.applyCounts(ctx, counts); err != nil {
		b.Fatalf("seed counters: %v", err)
	}
	return list
}

// reportProxy reports the proxy's calls and read and write units per operation.
func reportProxy(b *testing.B, p *dbproxy.Proxy) {
	s := p.Stats()
	n := float64(b.N)
	b.ReportMetric(float64(s.Calls)/n, "calls/op")
	b.ReportMetric(s.Units.Read/n, "read-units/op")
	b.ReportMetric(s.Units.Write/n, "write-units/op")
}

// scanCount is the count this package had before the counters: a Select
// COUNT scan of the whole table with the expiry rule as a filter, kept here
// to measure what the counters replaced.
func scanCount(ctx context.Context, db dynamodb.ScanAPIClient, table string, c Config, now int64) (int, error) {
	filter := expression.Name("expiresAt").GreaterThan(expression.Value(now)).
		And(expression.Name("idleExpiresAt").GreaterThan(expression.Value(now))).
		And(expression.Name("lastActivity").GreaterThan(expression.Value(now - c.IdleTTL.Milliseconds()))).
		And(expression.Name("createdAt").GreaterThan(expression.Value(now - c.MaxLifetime.Milliseconds())))
	expr, err := expression.NewBuilder().WithFilter(filter).Build()
	if err != nil {
		return 0, err
	}
	p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{
		TableName: aws.String(table), Select: types.SelectCount, FilterExpression: expr.Filter(),
		ExpressionAttributeNames: expr.Names(), ExpressionAttributeValues: expr.Values(),
	})
	total := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		total += int(out.Count)
	}
	return total, nil
}

// BenchmarkSessions20k seeds 20,000 live sessions of 500 users and measures,
// through the dbproxy: the count (from the counters, and the scan it
// replaced), the listings of GET /api/sessions (the caller's own, 20
// sessions; another user's), and the end of all 100 sessions of one user
// (calls, units and the longest chain of calls in sequence).
//
//	./bin/withdynamo -- go test -run '^$' -bench BenchmarkSessions20k -benchtime 20x ./shared/sessions/
func BenchmarkSessions20k(b *testing.B) {
	bt := newBenchTable(b)
	ctx := context.Background()
	store := users.New(bt.env.Client, bt.env.Tables.Users, bt.clock, bt.raw.logger)
	if err := store.Roles().Seed(ctx); err != nil {
		b.Fatal(err)
	}
	lister, err := store.Create(ctx, users.Actor{Username: "bench"}, users.NewUser{Username: "bench_lister", Password: "password-123", Role: users.RoleStaffTester})
	if err != nil {
		b.Fatal(err)
	}
	var many []string
	for i := 0; i < 500; i++ {
		many = append(many, fmt.Sprintf("bench_user_%03d", i))
	}
	start := time.Now()
	bt.seed(b, 20000-20, many, nil)
	own := bt.seed(b, 20, []string{lister.ID}, map[string]int64{lister.ID: lister.SessionVersion})
	b.Logf("seeded 20,000 sessions in %v", time.Since(start).Round(time.Millisecond))
	const total = 20000

	b.Run("count", func(b *testing.B) {
		bt.proxy.Reset()
		for b.Loop() {
			n, approximate, err := bt.mgr.Count(ctx)
			if err != nil || n != total || approximate {
				b.Fatalf("count %d approximate %v (%v), want %d exact", n, approximate, err, total)
			}
		}
		reportProxy(b, bt.proxy)
	})
	b.Run("count-by-scan-before", func(b *testing.B) {
		// The admin client's longer timeout: a scan page can outlast DB_TIMEOUT here.
		proxied := bt.env.NewAdminClient(b, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(bt.proxy.URL()) })
		bt.proxy.Reset()
		for b.Loop() {
			n, err := scanCount(ctx, proxied, bt.env.Tables.Sessions, bt.raw.cfg, bt.clock.Now().UnixMilli())
			if err != nil || n != total {
				b.Fatalf("scan count %d (%v), want %d", n, err, total)
			}
		}
		reportProxy(b, bt.proxy)
	})
	b.Run("list-own", func(b *testing.B) {
		p := &Principal{UserID: lister.ID, Session: own[0]}
		bt.proxy.Reset()
		for b.Loop() {
			page, err := bt.mgr.ListOwn(ctx, p, 20, "")
			if err != nil || len(page.Sessions) != 20 {
				b.Fatalf("listed %d (%v), want 20", len(page.Sessions), err)
			}
		}
		reportProxy(b, bt.proxy)
	})
	b.Run("list-user", func(b *testing.B) {
		bt.proxy.Reset()
		for b.Loop() {
			page, err := bt.mgr.ListUser(ctx, lister.ID, 20, "")
			if err != nil || len(page.Sessions) != 20 {
				b.Fatalf("listed %d (%v), want 20", len(page.Sessions), err)
			}
		}
		reportProxy(b, bt.proxy)
	})
	b.Run("end-all-100", func(b *testing.B) {
		path := &pathDB{Client: bt.env.NewClient(b, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(bt.proxy.URL()) }), delay: pathDelay}
		m := newManager(path, bt.env.Config, bt.clock, bt.raw.logger)
		chains := 0
		var calls dbproxy.Stats
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			bt.seed(b, 100, []string{"bench_ender"}, nil)
			bt.proxy.Reset()
			path.reset()
			b.StartTimer()
			n, err := m.DeleteAll(ctx, "bench_ender")
			b.StopTimer()
			if err != nil || n != 100 {
				b.Fatalf("ended %d (%v), want 100", n, err)
			}
			s := bt.proxy.Stats()
			chains += path.chain()
			calls.Calls += s.Calls
			calls.Units.Read += s.Units.Read
			calls.Units.Write += s.Units.Write
			b.StartTimer()
		}
		n := float64(b.N)
		b.ReportMetric(float64(calls.Calls)/n, "calls/op")
		b.ReportMetric(float64(chains)/n, "calls-in-sequence/op")
		b.ReportMetric(calls.Units.Read/n, "read-units/op")
		b.ReportMetric(calls.Units.Write/n, "write-units/op")
		if got, _, _ := bt.mgr.Count(ctx); got != total {
			b.Fatalf("count %d after the end-alls, want %d", got, total)
		}
	})
}
