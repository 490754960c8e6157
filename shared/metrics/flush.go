package metrics

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// pending are the counts this instance recorded and has not written yet, by
// minute, and the batches whose write had an unknown outcome. A flush takes
// the batches in doubt when there are any (written again as they are, so
// never applied twice), else all the counts; counts whose write provably
// failed come back to be merged with newer ones.
type pending struct {
	mu        sync.Mutex
	counts    map[int64]Counts // by the minute's epoch seconds
	doubt     []batch
	lastFlush time.Time // when the last flush began; zero: never
}

func newPending() *pending { return &pending{counts: map[int64]Counts{}} }

func (p *pending) add(at time.Time, delta Counts) {
	minute := at.Truncate(time.Minute).Unix()
	p.mu.Lock()
	p.counts[minute] = p.counts[minute].Plus(delta)
	p.mu.Unlock()
}

// take starts a flush at now, when there is anything to write and (unless
// force) the last flush began at least interval ago: it returns the batches
// in doubt if any (the counts wait for them: a minute's counts are never
// split over a batch in doubt and a newer one), else the counts. Both are nil
// when no flush is due.
func (p *pending) take(now time.Time, interval time.Duration, force bool) (map[int64]Counts, []batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counts) == 0 && len(p.doubt) == 0 || (!force && !p.lastFlush.IsZero() && now.Sub(p.lastFlush) < interval) {
		return nil, nil
	}
	p.lastFlush = now
	if len(p.doubt) > 0 {
		d := p.doubt
		p.doubt = nil
		return nil, d
	}
	out := p.counts
	p.counts = make(map[int64]Counts, len(out))
	return out, nil
}

// restore merges the counts of a batch that was provably not applied back
// into the pending ones.
func (p *pending) restore(b batch) {
	minute := b.minute.Unix()
	p.mu.Lock()
	p.counts[minute] = p.counts[minute].Plus(b.counts)
	p.mu.Unlock()
}

// keep holds a batch whose outcome is unknown, to be written again as it is.
func (p *pending) keep(b batch) {
	p.mu.Lock()
	p.doubt = append(p.doubt, b)
	p.mu.Unlock()
}

func (p *pending) sum() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total Counts
	for _, c := range p.counts {
		total = total.Plus(c)
	}
	for _, b := range p.doubt {
		total = total.Plus(b.counts)
	}
	return total
}

// ResendWithin is how long after its first write a batch in doubt is still
// written again: inside DynamoDB's ten-minute idempotency window for a
// ClientRequestToken, with a minute's margin for clock skew. Past it, writing
// it again could count it twice, so it is dropped and logged instead.
const ResendWithin = 9 * time.Minute

// maxFlushWrites bounds the concurrent minute writes of one flush (one
// minute, two around a minute boundary, more only after failed flushes).
const maxFlushWrites = 4

func noWait() {}

// Start is called as a request begins (the request layer calls the returned
// wait before answering). When this instance holds pending counts and its
// last flush began at least FlushInterval ago (on the injected clock), it
// writes them in a goroutine, one write per minute on a random shard
// (Counters.write), so the flush overlaps the request's own DynamoDB calls,
// and wait blocks until it is done; otherwise wait returns at once. The flush
// has its own context (detached from the request's cancellation, bounded by
// the write timeout, its capacity not attributed to the request, unable to
// open the store breaker). Lambda freezes an instance after each answer, so
// no flush may outlive its request.
func (r *Recorder) Start(ctx context.Context) (wait func()) {
	if r.pending == nil {
		return noWait
	}
	due, doubt := r.pending.take(r.clock.Now(), r.interval, false)
	if due == nil && doubt == nil {
		return noWait
	}
	ctx, cancel := r.detach(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		_ = r.writePending(ctx, due, doubt)
	}()
	return func() { <-done }
}

// Flush writes every pending count now, whatever the interval, bounded by ctx
// and the write timeout: the functions call it on SIGTERM, the local API
// server on shutdown. A flush already running finishes on its own. Counts it
// fails to write stay pending (and are lost if the instance then ends).
func (r *Recorder) Flush(ctx context.Context) error {
	if r.pending == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(store.WithoutTrip(store.WithoutUsage(ctx)), r.timeout)
	defer cancel()
	// Batches in doubt first, then (once they are settled) the counts.
	for range 2 {
		due, doubt := r.pending.take(r.clock.Now(), r.interval, true)
		if due == nil && doubt == nil {
			return nil
		}
		if err := r.writePending(ctx, due, doubt); err != nil {
			return err
		}
	}
	return nil
}

// Pending returns the counts recorded on this instance and not written yet
// (those in doubt included), summed over minutes.
func (r *Recorder) Pending() Counts {
	if r.pending == nil {
		return Counts{}
	}
	return r.pending.sum()
}

// writePending writes the batches in doubt, or one new batch per minute of
// due, concurrently. A failed batch that may have been applied is kept as it
// is (pending.keep); one that provably was not has its counts restored.
func (r *Recorder) writePending(ctx context.Context, due map[int64]Counts, doubt []batch) error {
	now := r.clock.Now()
	batches := doubt
	for _, m := range slices.Sorted(maps.Keys(due)) {
		batches = append(batches, r.counters.newBatch(time.Unix(m, 0), due[m], now))
	}
	errs := make([]error, len(batches))
	var dropped Counts
	var mu sync.Mutex
	write := func(i int) {
		b := batches[i]
		if b.sent && now.Sub(b.first) >= ResendWithin {
			mu.Lock()
			dropped = dropped.Plus(b.counts)
			mu.Unlock()
			return
		}
		err := r.counters.write(ctx, b)
		switch {
		case err == nil:
		case b.sent || store.MaybeApplied(err): // only the same batch (same token) may be written again
			b.sent = true
			r.pending.keep(b)
		default:
			r.pending.restore(b)
		}
		errs[i] = err
	}
	if len(batches) == 1 {
		write(0)
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxFlushWrites)
		for i := range batches {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				write(i)
			}()
		}
		wg.Wait()
	}
	if dropped.Requests != 0 || dropped.FailedLogins != 0 {
		r.logger.ErrorContext(ctx, "metrics counts dropped: their write's outcome stayed unknown past the idempotency window",
			"requests", dropped.Requests, "errors5xx", dropped.Errors5xx, "failedLogins", dropped.FailedLogins)
	}
	err := errors.Join(errs...)
	if err != nil {
		r.logger.WarnContext(ctx, "metrics counter write failed", "err", err, "batches", len(batches), "kept", true)
	}
	return err
}
