package store

import (
	"context"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
)

// Usage accumulates the capacity units the DynamoDB calls of one request
// consumed, as DynamoDB reported them (ConsumedCapacity). It is safe for the
// concurrent calls of one request. A nil *Usage reads as zero.
type Usage struct {
	mu          sync.Mutex
	read, write float64
}

type usageKey struct{}

// WithUsage returns a context whose DynamoDB calls (through a client with
// UsageOption) add their consumed capacity to the returned Usage.
func WithUsage(ctx context.Context) (context.Context, *Usage) {
	u := &Usage{}
	return context.WithValue(ctx, usageKey{}, u), u
}

// WithoutUsage returns ctx without an accumulator, for calls that are not the
// request's own (the recorder's counter writes).
func WithoutUsage(ctx context.Context) context.Context {
	if UsageFrom(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, usageKey{}, (*Usage)(nil))
}

// UsageFrom returns the accumulator of ctx, nil when there is none.
func UsageFrom(ctx context.Context) *Usage {
	u, _ := ctx.Value(usageKey{}).(*Usage)
	return u
}

// ReadUnits returns the read units consumed so far.
func (u *Usage) ReadUnits() float64 {
	if u == nil {
		return 0
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.read
}

// WriteUnits returns the write units consumed so far.
func (u *Usage) WriteUnits() float64 {
	if u == nil {
		return 0
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.write
}

func (u *Usage) add(read, write float64) {
	if read == 0 && write == 0 {
		return
	}
	u.mu.Lock()
	u.read += read
	u.write += write
	u.mu.Unlock()
}

// UsageOption returns the client option that feeds the accumulator of a
// call's context (WithUsage): it asks for ReturnConsumedCapacity TOTAL when
// the caller left it unset, and adds the answer's ConsumedCapacity. Calls
// whose context carries no accumulator are left exactly as they are. The
// PartiQL operations are not covered (nothing here uses them, and DynamoDB
// Local reports no capacity for them). A failed call adds nothing: DynamoDB
// reports no capacity with an error, although AWS charges a failed
// conditional write.
func UsageOption() func(*dynamodb.Options) {
	return func(o *dynamodb.Options) {
		o.APIOptions = append(o.APIOptions, func(s *middleware.Stack) error {
			return s.Initialize.Add(middleware.InitializeMiddlewareFunc("ConsumedCapacityUsage", handleUsage), middleware.After)
		})
	}
}

func handleUsage(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
	u := UsageFrom(ctx)
	if u == nil {
		return next.HandleInitialize(ctx, in)
	}
	// The input is copied, never edited: the caller may reuse it (paginators) or share it.
	in.Parameters = askCapacity(in.Parameters)
	out, md, err := next.HandleInitialize(ctx, in)
	if err == nil {
		u.add(consumed(out.Result))
	}
	return out, md, err
}

const total = types.ReturnConsumedCapacityTotal

// askCapacity returns in, or a shallow copy of it asking for the consumed
// capacity when it takes ReturnConsumedCapacity and left it unset.
func askCapacity(in any) any {
	switch v := in.(type) {
	case *dynamodb.GetItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.PutItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.UpdateItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.DeleteItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.QueryInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.ScanInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.BatchGetItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.BatchWriteItemInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.TransactGetItemsInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	case *dynamodb.TransactWriteItemsInput:
		if v.ReturnConsumedCapacity == "" {
			c := *v
			c.ReturnConsumedCapacity = total
			return &c
		}
	}
	return in
}

// consumed returns the read and write units of an operation's answer. An
// entry with a ReadCapacityUnits/WriteCapacityUnits split counts by it;
// otherwise (DynamoDB Local reports CapacityUnits only) its CapacityUnits
// count as reads or writes by operation.
func consumed(out any) (read, write float64) {
	one := func(c *types.ConsumedCapacity, isWrite bool) {
		if c == nil {
			return
		}
		if c.ReadCapacityUnits != nil || c.WriteCapacityUnits != nil {
			read += deref(c.ReadCapacityUnits)
			write += deref(c.WriteCapacityUnits)
			return
		}
		if isWrite {
			write += deref(c.CapacityUnits)
		} else {
			read += deref(c.CapacityUnits)
		}
	}
	list := func(cs []types.ConsumedCapacity, isWrite bool) {
		for i := range cs {
			one(&cs[i], isWrite)
		}
	}
	switch v := out.(type) {
	case *dynamodb.GetItemOutput:
		one(v.ConsumedCapacity, false)
	case *dynamodb.QueryOutput:
		one(v.ConsumedCapacity, false)
	case *dynamodb.ScanOutput:
		one(v.ConsumedCapacity, false)
	case *dynamodb.BatchGetItemOutput:
		list(v.ConsumedCapacity, false)
	case *dynamodb.TransactGetItemsOutput:
		list(v.ConsumedCapacity, false)
	case *dynamodb.PutItemOutput:
		one(v.ConsumedCapacity, true)
	case *dynamodb.UpdateItemOutput:
		one(v.ConsumedCapacity, true)
	case *dynamodb.DeleteItemOutput:
		one(v.ConsumedCapacity, true)
	case *dynamodb.BatchWriteItemOutput:
		list(v.ConsumedCapacity, true)
	case *dynamodb.TransactWriteItemsOutput:
		list(v.ConsumedCapacity, true)
	}
	return read, write
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
