package sessions

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// pathDB is the real client with a fixed delay before every call, recording
// when each call started and ended, so that the longest chain of calls made
// one after another (the round trips on the critical path) can be counted:
// with the delay far above the scheduling noise, calls issued together
// overlap and calls that wait on each other do not.
type pathDB struct {
	*dynamodb.Client
	delay time.Duration
	mu    sync.Mutex
	calls []span
}

type span struct {
	op         string
	start, end time.Time
}

func (p *pathDB) record(op string, call func()) {
	start := time.Now()
	time.Sleep(p.delay)
	call()
	end := time.Now()
	p.mu.Lock()
	p.calls = append(p.calls, span{op, start, end})
	p.mu.Unlock()
}

// reset forgets the calls recorded so far.
func (p *pathDB) reset() {
	p.mu.Lock()
	p.calls = nil
	p.mu.Unlock()
}

// ops counts the calls by operation.
func (p *pathDB) ops() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, c := range p.calls {
		out[c.op]++
	}
	return out
}

// chain is the number of calls in the longest sequence of calls each of
// which started after the previous one ended.
func (p *pathDB) chain() int {
	p.mu.Lock()
	calls := slices.Clone(p.calls)
	p.mu.Unlock()
	slices.SortFunc(calls, func(a, b span) int { return a.start.Compare(b.start) })
	depth := make([]int, len(calls))
	longest := 0
	for i, c := range calls {
		depth[i] = 1
		for j := 0; j < i; j++ {
			if !calls[j].end.After(c.start) {
				depth[i] = max(depth[i], depth[j]+1)
			}
		}
		longest = max(longest, depth[i])
	}
	return longest
}

func (p *pathDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.BatchGetItemOutput, err error) {
	p.record("BatchGetItem", func() { out, err = p.Client.BatchGetItem(ctx, in, opts...) })
	return
}

func (p *pathDB) BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.BatchWriteItemOutput, err error) {
	p.record("BatchWriteItem", func() { out, err = p.Client.BatchWriteItem(ctx, in, opts...) })
	return
}

func (p *pathDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.PutItemOutput, err error) {
	p.record("PutItem", func() { out, err = p.Client.PutItem(ctx, in, opts...) })
	return
}

func (p *pathDB) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.UpdateItemOutput, err error) {
	p.record("UpdateItem", func() { out, err = p.Client.UpdateItem(ctx, in, opts...) })
	return
}

func (p *pathDB) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.DeleteItemOutput, err error) {
	p.record("DeleteItem", func() { out, err = p.Client.DeleteItem(ctx, in, opts...) })
	return
}

func (p *pathDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (out *dynamodb.GetItemOutput, err error) {
	p.record("GetItem", func() { out, err = p.Client.GetItem(ctx, in, opts...) })
	return
}

func (p *pathDB) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (out *dynamodb.QueryOutput, err error) {
	p.record("Query", func() { out, err = p.Client.Query(ctx, in, opts...) })
	return
}

func (p *pathDB) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (out *dynamodb.ScanOutput, err error) {
	p.record("Scan", func() { out, err = p.Client.Scan(ctx, in, opts...) })
	return
}

func (p *pathDB) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (out *dynamodb.TransactWriteItemsOutput, err error) {
	p.record("TransactWriteItems", func() { out, err = p.Client.TransactWriteItems(ctx, in, opts...) })
	return
}

// pathDelay is the delay pathDB adds to every call in tests.
const pathDelay = 25 * time.Millisecond

// createMany starts n sessions of u, a minute apart (so their counts spread
// over several counter items).
func (f *fixture) createMany(t testing.TB, m *Manager, u *users.User, n int) []*Session {
	t.Helper()
	var out []*Session
	for i := 0; i < n; i++ {
		_, s, err := m.Create(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
		f.clock.Advance(time.Minute)
	}
	return out
}

// TestDeleteAllIsConcurrent: ending 100 sessions is one Query, four
// transactions of 25 deletes issued together, then the counter writes
// together: three calls in sequence.
func TestDeleteAllIsConcurrent(t *testing.T) {
	f := newFixture(t, map[string]string{"SESSION_TTL": "86400"})
	ctx := context.Background()
	u := f.user(t, "hundred", users.RoleStaffTester)
	db := &pathDB{Client: f.env.NewClient(t), delay: pathDelay}
	m := newManager(db, f.env.Config, f.clock, nil)
	f.createMany(t, f.mgr, u, 100) // seeded without the delay
	f.checkCount(t, m, "before")
	db.reset()
	n, err := m.DeleteAll(ctx, u.ID)
	if err != nil || n != 100 {
		t.Fatalf("deleted %d: %v", n, err)
	}
	ops := db.ops()
	if ops["Query"] != 1 || ops["TransactWriteItems"] != 4 || ops["BatchWriteItem"] != 0 || ops["DeleteItem"] != 0 || ops["UpdateItem"] == 0 {
		t.Fatalf("calls %v, want one Query, four TransactWriteItems and the counter UpdateItems", ops)
	}
	if c := db.chain(); c != 3 {
		t.Fatalf("%d calls in sequence (%v), want 3: the Query, the transactions, the counter writes", c, ops)
	}
	f.checkCount(t, m, "after")
	if n, _, _ := m.Count(ctx); n != 0 {
		t.Fatalf("count %d after ending every session", n)
	}
}
