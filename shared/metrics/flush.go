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
// minute. A flush takes them all; the minutes it fails to write come back.
type pending struct {
	mu        sync.Mutex
	counts    map[int64]Counts // by the minute's epoch seconds
	lastFlush time.Time        // when the last flush began; zero: never
}

func newPending() *pending { return &pending{counts: map[int64]Counts{}} }

func (p *pending) add(at time.Time, delta Counts) {
	minute := at.Truncate(time.Minute).Unix()
	p.mu.Lock()
	p.counts[minute] = p.counts[minute].Plus(delta)
	p.mu.Unlock()
}

// take returns the pending counts and starts a flush at now, when there are
// any and (unless force) the last flush began at least interval ago; else nil.
func (p *pending) take(now time.Time, interval time.Duration, force bool) map[int64]Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counts) == 0 || (!force && !p.lastFlush.IsZero() && now.Sub(p.lastFlush) < interval) {
		return nil
	}
	out := p.counts
	p.counts = make(map[int64]Counts, len(out))
	p.lastFlush = now
	return out
}

// restore merges counts a flush could not write back into the pending ones.
func (p *pending) restore(minute int64, c Counts) {
	p.mu.Lock()
	p.counts[minute] = p.counts[minute].Plus(c)
	p.mu.Unlock()
}

func (p *pending) sum() Counts {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total Counts
	for _, c := range p.counts {
		total = total.Plus(c)
	}
	return total
}

// maxFlushWrites bounds the concurrent minute writes of one flush (one
// minute, two around a minute boundary, more only after failed flushes).
const maxFlushWrites = 4

func noWait() {}

// Start is called as a request begins (the request layer calls the returned
// wait before answering). When this instance holds pending counts and its
// last flush began at least FlushInterval ago (on the injected clock), it
// writes them in a goroutine, one atomic UpdateItem per minute on a random
// shard, so the flush overlaps the request's own DynamoDB calls, and wait
// blocks until it is done; otherwise wait returns at once. The flush has its
// own context (detached from the request's cancellation, bounded by the write
// timeout, its capacity not attributed to the request). Lambda freezes an
// instance after each answer, so no flush may outlive its request.
func (r *Recorder) Start(ctx context.Context) (wait func()) {
	if r.pending == nil {
		return noWait
	}
	due := r.pending.take(r.clock.Now(), r.interval, false)
	if due == nil {
		return noWait
	}
	ctx, cancel := r.detach(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		_ = r.writePending(ctx, due)
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
	due := r.pending.take(r.clock.Now(), r.interval, true)
	if due == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.writePending(store.WithoutUsage(ctx), due)
}

// Pending returns the counts recorded on this instance and not written yet,
// summed over minutes.
func (r *Recorder) Pending() Counts {
	if r.pending == nil {
		return Counts{}
	}
	return r.pending.sum()
}

// writePending writes one UpdateItem per minute of due, concurrently; the
// counts of a failed write go back to the pending ones for the next flush.
func (r *Recorder) writePending(ctx context.Context, due map[int64]Counts) error {
	minutes := slices.Sorted(maps.Keys(due))
	errs := make([]error, len(minutes))
	write := func(i int) {
		m := minutes[i]
		if err := r.counters.Add(ctx, time.Unix(m, 0), due[m]); err != nil {
			r.pending.restore(m, due[m])
			errs[i] = err
		}
	}
	if len(minutes) == 1 {
		write(0)
	} else {
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxFlushWrites)
		for i := range minutes {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				write(i)
			}()
		}
		wg.Wait()
	}
	err := errors.Join(errs...)
	if err != nil {
		r.logger.WarnContext(ctx, "metrics counter write failed", "err", err, "minutes", len(minutes), "kept", true)
	}
	return err
}
