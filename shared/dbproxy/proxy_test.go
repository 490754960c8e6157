package dbproxy_test

import (
	"context"
	"errors"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/dbproxy"
	"github.com/zenithfresh/zenith-serverless/shared/dynamotest"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// setup gives a test its own tables and a proxy in front of this run's DynamoDB Local.
func setup(t *testing.T, opts ...dbproxy.Option) (*dynamotest.Env, *dbproxy.Proxy) {
	t.Helper()
	env := dynamotest.New(t, "test", nil)
	p, err := dbproxy.New(env.Config.DynamoDBEndpoint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return env, p
}

// client is a project-built client (store.NewDynamoDB) on the proxy, with
// DB_TIMEOUT timeout and at most attempts attempts, retried without backoff
// so the tests stay short.
func client(t *testing.T, env *dynamotest.Env, p *dbproxy.Proxy, timeout time.Duration, attempts int, extra ...func(*dynamodb.Options)) *dynamodb.Client {
	t.Helper()
	cfg := env.Config
	cfg.DBTimeout = timeout
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]func(*dynamodb.Options){func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(p.URL())
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			so.RateLimiter = ratelimit.None
		})
	}}, extra...)
	return store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, opts...)
}

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: pk}}
}

func put(ctx context.Context, c *dynamodb.Client, table, pk string) error {
	item := key(pk)
	item["n"] = store.Num(1)
	_, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: item})
	return err
}

func get(ctx context.Context, c *dynamodb.Client, table, pk string) (*dynamodb.GetItemOutput, error) {
	return c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(table), Key: key(pk), ConsistentRead: aws.Bool(true)})
}

func TestAccounting(t *testing.T) {
	env, p := setup(t)
	ctx := context.Background()
	c := client(t, env, p, 5*time.Second, 1)
	rl, users, sessions := env.Tables.RateLimits, env.Tables.Users, env.Tables.Sessions

	t.Run("put then get", func(t *testing.T) {
		p.Reset()
		item := key("acct")
		item["n"] = store.Num(7)
		pout, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(rl), Item: item})
		if err != nil {
			t.Fatal(err)
		}
		gout, err := get(ctx, c, rl, "acct")
		if err != nil {
			t.Fatal(err)
		}
		if pout.ConsumedCapacity != nil || gout.ConsumedCapacity != nil {
			t.Errorf("the client sees ConsumedCapacity it did not ask for: %+v %+v", pout.ConsumedCapacity, gout.ConsumedCapacity)
		}
		if store.Int(gout.Item["n"]) != 7 {
			t.Errorf("item = %v", gout.Item)
		}
		s := p.Stats()
		if s.Calls != 2 || s.Operations["PutItem"] != 1 || s.Operations["GetItem"] != 1 || s.Tables[rl] != 2 {
			t.Errorf("calls = %d, operations = %v, tables = %v", s.Calls, s.Operations, s.Tables)
		}
		// A small item: one write unit, one strongly consistent read unit.
		want := dbproxy.Units{Read: 1, Write: 1}
		if s.TableUnits[rl] != want || s.Units != want || len(s.TableUnits) != 1 {
			t.Errorf("units = %+v by table %v, want %+v on %s", s.Units, s.TableUnits, want, rl)
		}
		if len(s.NoCapacity) != 0 || len(s.Faults) != 0 || s.UpstreamErrors != 0 {
			t.Errorf("stats = %+v", s)
		}
	})

	t.Run("a call that asks for capacity still gets it", func(t *testing.T) {
		p.Reset()
		out, err := c.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(rl), Key: key("acct"), ConsistentRead: aws.Bool(true),
			ReturnConsumedCapacity: types.ReturnConsumedCapacityTotal,
		})
		if err != nil {
			t.Fatal(err)
		}
		cc := out.ConsumedCapacity
		if cc == nil || aws.ToString(cc.TableName) != rl || aws.ToFloat64(cc.CapacityUnits) != 1 || cc.Table != nil {
			t.Fatalf("ConsumedCapacity = %+v, want TOTAL: 1 unit on %s", cc, rl)
		}
		if got := p.Stats().TableUnits[rl]; got != (dbproxy.Units{Read: 1}) {
			t.Errorf("units = %+v, want 1 read", got)
		}
	})

	t.Run("index writes are counted on the table and itemised", func(t *testing.T) {
		p.Reset()
		item := key("sess")
		item["userId"] = &types.AttributeValueMemberS{Value: "u1"}
		if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(sessions), Item: item}); err != nil {
			t.Fatal(err)
		}
		s := p.Stats()
		if s.TableUnits[sessions] != (dbproxy.Units{Write: 2}) || s.IndexUnits[sessions+"/userId-index"] != (dbproxy.Units{Write: 1}) {
			t.Errorf("table units %v, index units %v; want 2 writes, 1 of them on userId-index", s.TableUnits, s.IndexUnits)
		}
	})

	t.Run("BatchGetItem over two tables", func(t *testing.T) {
		if err := put(ctx, env.Client, users, "u1"); err != nil {
			t.Fatal(err)
		}
		in := &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{
			rl:    {Keys: []map[string]types.AttributeValue{key("acct"), key("absent")}},
			users: {Keys: []map[string]types.AttributeValue{key("u1")}, ConsistentRead: aws.Bool(true)},
		}}
		p.Reset()
		out, err := c.BatchGetItem(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if out.ConsumedCapacity != nil || len(out.Responses[rl]) != 1 || len(out.Responses[users]) != 1 {
			t.Fatalf("out = %+v", out)
		}
		// What DynamoDB Local reports for the same call made directly.
		in.ReturnConsumedCapacity = types.ReturnConsumedCapacityTotal
		direct, err := env.Client.BatchGetItem(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]dbproxy.Units{}
		for _, cc := range direct.ConsumedCapacity {
			want[aws.ToString(cc.TableName)] = dbproxy.Units{Read: aws.ToFloat64(cc.CapacityUnits)}
		}
		s := p.Stats()
		if len(want) != 2 || want[rl].Read <= 0 || want[users].Read <= 0 {
			t.Fatalf("DynamoDB Local reported %v, want units on both tables", want)
		}
		if len(s.TableUnits) != 2 || s.TableUnits[rl] != want[rl] || s.TableUnits[users] != want[users] {
			t.Errorf("units by table = %v, want %v", s.TableUnits, want)
		}
		if s.Operations["BatchGetItem"] != 1 || s.Tables[rl] != 1 || s.Tables[users] != 1 {
			t.Errorf("operations %v, tables %v", s.Operations, s.Tables)
		}
	})

	t.Run("the client gets the bytes DynamoDB would have sent, with a matching CRC32", func(t *testing.T) {
		body := `{"TableName":"` + rl + `","Key":{"pk":{"S":"acct"}},"ConsistentRead":true}`
		dh, direct := rawCall(t, env.Config.DynamoDBEndpoint, "GetItem", body)
		p.Reset()
		ph, proxied := rawCall(t, p.URL(), "GetItem", body)
		if string(proxied) != string(direct) || strings.Contains(string(proxied), "ConsumedCapacity") {
			t.Errorf("through the proxy %s, directly %s", proxied, direct)
		}
		if crc := strconv.FormatUint(uint64(crc32.ChecksumIEEE(proxied)), 10); ph.Get("X-Amz-Crc32") != crc || dh.Get("X-Amz-Crc32") != crc {
			t.Errorf("X-Amz-Crc32 %q through the proxy, %q directly, body's %s", ph.Get("X-Amz-Crc32"), dh.Get("X-Amz-Crc32"), crc)
		}
		if ph.Get("Content-Length") != strconv.Itoa(len(proxied)) {
			t.Errorf("Content-Length %q for %d bytes", ph.Get("Content-Length"), len(proxied))
		}
		if got := p.Stats().TableUnits[rl]; got != (dbproxy.Units{Read: 1}) {
			t.Errorf("units = %+v, want 1 read (the capacity was asked for and stripped)", got)
		}
	})

	t.Run("PartiQL answers carry no capacity on DynamoDB Local", func(t *testing.T) {
		p.Reset()
		// DynamoDB Local loads its PartiQL engine on the first statement: slow on a busy machine.
		slow := client(t, env, p, 60*time.Second, 1)
		_, err := slow.ExecuteStatement(ctx, &dynamodb.ExecuteStatementInput{Statement: aws.String(`SELECT * FROM "` + rl + `" WHERE pk = 'acct'`)})
		if err != nil {
			t.Fatal(err)
		}
		if s := p.Stats(); s.NoCapacity["ExecuteStatement"] != 1 || len(s.TableUnits) != 0 {
			t.Errorf("noCapacity = %v, units = %v", s.NoCapacity, s.TableUnits)
		}
	})
}

func TestDelayIsALowerBound(t *testing.T) {
	env, p := setup(t, dbproxy.WithDelay(150*time.Millisecond))
	c := client(t, env, p, 5*time.Second, 1)
	ctx := context.Background()
	start := time.Now()
	if err := put(ctx, c, env.Tables.RateLimits, "d"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("call took %s with a 150ms delay", took)
	}
	p.SetDelay(0)
	if p.Delay() != 0 {
		t.Errorf("delay = %s", p.Delay())
	}
}

func TestFaults(t *testing.T) {
	env, p := setup(t)
	ctx := context.Background()
	rl := env.Tables.RateLimits
	if err := put(ctx, env.Client, rl, "f"); err != nil {
		t.Fatal(err)
	}
	const attempts = 3
	// The faulted call of the deadline cases gets a short DB_TIMEOUT; every
	// other call a long one, so a slow machine fails none of them.
	c := client(t, env, p, 5*time.Second, attempts)
	short := client(t, env, p, 300*time.Millisecond, attempts)
	onGet := []string{"GetItem"}
	isDeadline := func(err error) bool { return errors.Is(err, context.DeadlineExceeded) && store.IsUnavailable(err) }
	tests := []struct {
		name   string
		fault  dbproxy.Fault
		check  func(error) bool
		faults int64 // faults counted for the one GetItem
		short  bool  // make the call with the short DB_TIMEOUT
	}{
		{"refuse", dbproxy.Fault{Kind: dbproxy.Refuse}, func(err error) bool {
			return errors.Is(err, syscall.ECONNREFUSED) && store.IsUnavailable(err)
		}, -1, false},
		{"latency beyond DB_TIMEOUT", dbproxy.Fault{Kind: dbproxy.Latency, Operations: onGet, Delay: time.Minute}, isDeadline, 1, true},
		{"hang", dbproxy.Fault{Kind: dbproxy.Hang, Operations: onGet}, isDeadline, 1, true},
		{"cut", dbproxy.Fault{Kind: dbproxy.Cut, Operations: onGet}, func(err error) bool {
			return errors.Is(err, syscall.ECONNRESET) && store.IsUnavailable(err) && !errors.Is(err, context.DeadlineExceeded)
		}, attempts, false},
		{"throttle", dbproxy.Fault{Kind: dbproxy.Throttle, Operations: onGet}, func(err error) bool {
			var api smithy.APIError
			return store.IsThrottled(err) && errors.As(err, &api) && api.ErrorCode() == "ThrottlingException"
		}, attempts, false},
		{"throughput", dbproxy.Fault{Kind: dbproxy.ThroughputExceeded, Operations: onGet}, func(err error) bool {
			var pte *types.ProvisionedThroughputExceededException
			return store.IsThrottled(err) && errors.As(err, &pte)
		}, attempts, false},
		{"server error", dbproxy.Fault{Kind: dbproxy.ServerError, Operations: onGet}, func(err error) bool {
			var re *awshttp.ResponseError
			var api smithy.APIError
			return errors.As(err, &re) && re.HTTPStatusCode() == 500 && errors.As(err, &api) &&
				api.ErrorCode() == "InternalFailure" && store.IsUnavailable(err)
		}, attempts, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := get(ctx, c, rl, "f"); err != nil { // leaves a kept-alive connection
				t.Fatal(err)
			}
			p.Reset()
			if err := p.SetFault(tc.fault); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.ClearFaults() })
			faulted := c
			if tc.short {
				faulted = short
			}
			_, err := get(ctx, faulted, rl, "f")
			if err == nil || !tc.check(err) {
				t.Fatalf("GetItem err = %v (%T)", err, err)
			}
			s := p.Stats()
			if tc.faults >= 0 && (s.Faults[tc.fault.Kind] != tc.faults || s.Calls != tc.faults || s.Operations["GetItem"] != tc.faults) {
				t.Errorf("faults %v, calls %d, want %d of each (attempts)", s.Faults, s.Calls, tc.faults)
			}
			if tc.fault.Kind == dbproxy.Refuse {
				if s.Calls != 0 {
					t.Errorf("calls %d, want 0", s.Calls)
				}
				// The kept-alive connection closes once the server has made it
				// idle, which can come after the client read its answer.
				waitFor(t, func() bool { return p.Stats().Faults[dbproxy.Refuse] == 1 })
			} else if err := put(ctx, c, rl, "other"); err != nil {
				t.Errorf("PutItem during a GetItem fault: %v", err)
			}
			if err := p.ClearFaults(); err != nil {
				t.Fatal(err)
			}
			if out, err := get(ctx, c, rl, "f"); err != nil || out.Item == nil {
				t.Fatalf("after clearing: %v, %v", out, err)
			}
		})
	}
}

func TestFaultFilters(t *testing.T) {
	seq := &clock.Sequence{Values: []float64{0.9, 0.1, 0.5, 0.49}}
	env, p := setup(t, dbproxy.WithRandom(seq))
	ctx := context.Background()
	rl, users := env.Tables.RateLimits, env.Tables.Users
	c := client(t, env, p, 5*time.Second, 1)

	t.Run("tables", func(t *testing.T) {
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Throttle, Tables: []string{users}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		if err := put(ctx, c, rl, "x"); err != nil {
			t.Errorf("other table: %v", err)
		}
		if err := put(ctx, c, users, "x"); !store.IsThrottled(err) {
			t.Errorf("faulted table: %v", err)
		}
	})

	t.Run("fraction uses the injected random source", func(t *testing.T) {
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.ServerError, Fraction: 0.5}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		p.Reset()
		var got []bool
		for range 4 {
			_, err := get(ctx, c, rl, "x")
			got = append(got, err != nil)
		}
		want := []bool{false, true, false, true} // draws 0.9, 0.1, 0.5, 0.49 against 0.5
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("failed calls = %v, want %v", got, want)
			}
		}
		if n := p.Stats().Faults[dbproxy.ServerError]; n != 2 {
			t.Errorf("server errors = %d, want 2", n)
		}
	})

	t.Run("a held call goes through when the hang clears", func(t *testing.T) {
		p.Reset()
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Hang}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		done := make(chan error, 1)
		go func() {
			_, err := get(ctx, c, rl, "x")
			done <- err
		}()
		waitFor(t, func() bool { return p.Stats().Faults[dbproxy.Hang] == 1 })
		if err := p.ClearFaults(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Errorf("held call after clearing: %v", err)
		}
	})

	t.Run("a fault with For clears itself", func(t *testing.T) {
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Throttle, For: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		waitFor(t, func() bool { return len(p.Faults()) == 0 })
		if err := put(ctx, c, rl, "x"); err != nil {
			t.Error(err)
		}
	})
}

func TestRawConnectionFaults(t *testing.T) {
	env, p := setup(t)
	addr := strings.TrimPrefix(p.URL(), "http://")

	t.Run("cut sends the head, part of the body, then a reset", func(t *testing.T) {
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Cut}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		req, _ := http.NewRequest(http.MethodPost, p.URL()+"/", strings.NewReader(`{"TableName":"`+env.Tables.Users+`"}`))
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.DescribeTable")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
		hc := &http.Client{Transport: &http.Transport{}}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("no answer head: %v", err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !errors.Is(err, syscall.ECONNRESET) || len(body) == 0 || int64(len(body)) >= resp.ContentLength {
			t.Errorf("status %d, read %d of %d bytes, err %v; want 200, part of the body, a reset", resp.StatusCode, len(body), resp.ContentLength, err)
		}
	})

	t.Run("refuse closes the port and reopens it", func(t *testing.T) {
		if err := p.SetFault(dbproxy.Fault{Kind: dbproxy.Refuse}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = p.ClearFaults() })
		if c, err := net.Dial("tcp", addr); !errors.Is(err, syscall.ECONNREFUSED) {
			if c != nil {
				c.Close()
			}
			t.Fatalf("dial while refusing: %v", err)
		}
		if err := p.ClearFaults(); err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial after clearing: %v", err)
		}
		c.Close()
	})
}

// rawCall makes a DynamoDB call without the SDK, to see the exact answer.
func rawCall(t *testing.T, endpoint, op, body string) (http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	// DynamoDB Local wants a credential but checks no signature.
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s %v", op, resp.StatusCode, b, err)
	}
	return resp.Header, b
}

// waitFor polls cond for up to 5 s: it waits for something to happen, it
// does not time it.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

func TestUnreachableUpstreamResetsTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	p, err := dbproxy.New(closed)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cfg, err := config.Load("test", func(k string) string {
		return map[string]string{"DYNAMODB_ENDPOINT": p.URL(), "AWS_REGION": "us-east-1", "DB_TIMEOUT": "2000"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := store.LoadAWS(context.Background(), cfg.Region, cfg.DynamoDBEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	c := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, func(o *dynamodb.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		})
	})
	_, err = get(context.Background(), c, "t1", "k")
	if !store.IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a network error", err)
	}
	if s := p.Stats(); s.UpstreamErrors != 3 || s.Calls != 3 {
		t.Errorf("upstream errors %d, calls %d; want 3 of each (attempts)", s.UpstreamErrors, s.Calls)
	}
}
