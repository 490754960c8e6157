package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// RollupGrace is how long after an hour has settled readers expect its
// roll-up: the schedule runs once a minute, so by then an evaluation has
// written it. Before that the hour is read from its minute counters.
const RollupGrace = 2 * time.Minute

// SeriesMaxAge is the oldest data a Series keeps: the 168 h history, its
// partial oldest hour and a little slack.
const SeriesMaxAge = 170 * time.Hour

// Series reads per-minute counters for a window from the hourly roll-ups and
// the raw minute counters, and caches per instance what is complete: the
// roll-ups (never changed once written) and the raw minutes that have settled
// (SettleAfter past their end). A warm instance reads only the minutes that
// are not settled yet, so a read costs about the same whatever the window and
// the traffic. Safe for concurrent use.
type Series struct {
	counters *Counters
	rollups  *Rollups
	clock    clock.Clock
	logger   *slog.Logger

	mu    sync.Mutex
	hours map[int64]*hourEntry // by the hour's epoch seconds

	rolling atomic.Bool // a RollUp is running on this instance
}

// hourEntry is what an instance knows of one hour.
type hourEntry struct {
	rollup *Rollup
	// raw holds the settled minutes [rawFrom, rawTo) of the hour, every counter.
	raw            *[60]Counts
	rawFrom, rawTo time.Time
}

// knows reports whether the settled raw minutes cover [a, b).
func (e *hourEntry) knows(a, b time.Time) bool {
	return e != nil && e.raw != nil && !e.rawFrom.After(a) && !e.rawTo.Before(b)
}

// rawGap returns the part of [a, b) that the settled raw minutes do not cover.
func (e *hourEntry) rawGap(a, b time.Time) (time.Time, time.Time) {
	if !a.Before(b) || e.knows(a, b) {
		return b, b
	}
	if e != nil && e.raw != nil && !e.rawFrom.After(a) && e.rawTo.After(a) {
		return e.rawTo, b
	}
	return a, b
}

// NewSeries returns a reader over the counters and their roll-ups.
func NewSeries(counters *Counters, rollups *Rollups, c clock.Clock, logger *slog.Logger) *Series {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Series{counters: counters, rollups: rollups, clock: c, logger: logger, hours: map[int64]*hourEntry{}}
}

// span is a time interval [from, to), empty when from >= to.
type span struct{ from, to time.Time }

func (s *span) add(a, b time.Time) {
	if !a.Before(b) {
		return
	}
	if s.empty() {
		s.from, s.to = a, b
		return
	}
	if a.Before(s.from) {
		s.from = a
	}
	if b.After(s.to) {
		s.to = b
	}
}

func (s span) empty() bool { return !s.from.Before(s.to) }

func (s span) covers(a, b time.Time) bool {
	return !a.Before(b) || !s.empty() && !s.from.After(a) && !s.to.Before(b)
}

func (s span) holds(t time.Time) bool { return !t.Before(s.from) && t.Before(s.to) }

// rawRead is one read of raw minutes: the minutes with counters in its span.
type rawRead struct {
	span
	minutes []Minute
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlierOf(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Read returns one Minute for every minute of [from, to), oldest first, zero
// where there was no traffic. Minutes from full on carry every counter (they
// come from the raw counters); earlier ones may come from a roll-up, which
// keeps requests, errors5xx, throttled and durationMs per minute only.
//
// The roll-ups of the settled hours this instance lacks and the raw minutes
// it lacks are read concurrently (one Query for the roll-ups, one per shard
// for the minutes): one round trip. An hour whose roll-up should exist but
// does not (the schedule is down) is read from its minute counters in a
// second round trip, and logged.
func (s *Series) Read(ctx context.Context, from, to, full time.Time) ([]Minute, error) {
	from, to, full = from.Truncate(time.Minute), to.Truncate(time.Minute), full.Truncate(time.Minute)
	if !to.After(from) {
		return nil, nil
	}
	now := s.clock.Now()
	type need struct{ hour, from, to time.Time }
	var (
		candidates []need // settled hours expected to have a roll-up
		raw        span
	)
	s.mu.Lock()
	s.evict(now)
	for h := from.Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		a, b := laterOf(h, from), earlierOf(h.Add(time.Hour), to)
		fa := laterOf(a, full)
		e := s.hours[h.Unix()]
		switch {
		case e != nil && e.rollup != nil:
			raw.add(e.rawGap(fa, b))
		case e.knows(a, b):
		case !now.Before(h.Add(time.Hour + SettleAfter + RollupGrace)):
			candidates = append(candidates, need{h, a, b})
			raw.add(e.rawGap(fa, b))
		default:
			raw.add(e.rawGap(a, b))
		}
	}
	s.mu.Unlock()

	var (
		reads   []rawRead
		rolls   map[int64]*Rollup
		rollErr error
		rawErr  error
		wg      sync.WaitGroup
	)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(candidates) > 0 {
		wg.Go(func() {
			if rolls, rollErr = s.rollups.Range(rctx, candidates[0].hour, candidates[len(candidates)-1].hour); rollErr != nil {
				cancel()
			}
		})
	}
	if !raw.empty() {
		wg.Go(func() {
			var ms []Minute
			if ms, rawErr = s.counters.Minutes(rctx, raw.from, raw.to); rawErr != nil {
				cancel()
				return
			}
			reads = append(reads, rawRead{raw, ms})
		})
	}
	wg.Wait()
	if err := firstCause(rawErr, rollErr); err != nil {
		return nil, err
	}

	// Hours whose roll-up is missing: their minute counters, in a second read.
	var fallback span
	var missing []time.Time
	s.mu.Lock()
	for _, c := range candidates {
		if rolls[c.hour.Unix()] != nil {
			continue
		}
		missing = append(missing, c.hour)
		if a, b := s.hours[c.hour.Unix()].rawGap(c.from, c.to); !raw.covers(a, b) {
			fallback.add(a, b)
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 {
		s.logger.WarnContext(ctx, "hourly roll-ups missing; reading their minute counters instead",
			"hours", len(missing), "first", missing[0], "last", missing[len(missing)-1])
	}
	if !fallback.empty() {
		ms, err := s.counters.Minutes(ctx, fallback.from, fallback.to)
		if err != nil {
			return nil, err
		}
		reads = append(reads, rawRead{fallback, ms})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for h, r := range rolls {
		s.entry(h).rollup = r
	}
	// Minutes before settled are final: they may be cached.
	settled := now.Add(-SettleAfter).Truncate(time.Minute)
	fresh := map[int64]Counts{}
	for _, rr := range reads {
		for _, m := range rr.minutes {
			fresh[m.Start.Unix()] = m.Counts
		}
		s.learn(rr, settled, fresh)
	}
	out := make([]Minute, int(to.Sub(from)/time.Minute))
	for i := range out {
		t := from.Add(time.Duration(i) * time.Minute)
		out[i].Start = t.UTC()
		if inReads(reads, t) {
			out[i].Counts = fresh[t.Unix()]
			continue
		}
		h := t.Truncate(time.Hour)
		e := s.hours[h.Unix()]
		idx := int(t.Sub(h) / time.Minute)
		switch {
		case e != nil && e.raw != nil && !t.Before(e.rawFrom) && t.Before(e.rawTo):
			out[i].Counts = e.raw[idx]
		case e != nil && e.rollup != nil:
			out[i].Counts = e.rollup.Minutes[idx].Counts()
		}
	}
	return out, nil
}

func inReads(reads []rawRead, t time.Time) bool {
	for _, r := range reads {
		if r.holds(t) {
			return true
		}
	}
	return false
}

// firstCause returns the first error that is not the cancellation another
// error caused, else the first error.
func firstCause(errs ...error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if !errors.Is(err, context.Canceled) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// entry returns the hour's entry, creating it; s.mu is held.
func (s *Series) entry(hour int64) *hourEntry {
	e := s.hours[hour]
	if e == nil {
		e = &hourEntry{}
		s.hours[hour] = e
	}
	return e
}

// learn caches the settled minutes (before settled) of a raw read; s.mu is held.
func (s *Series) learn(rr rawRead, settled time.Time, counts map[int64]Counts) {
	end := earlierOf(rr.to, settled)
	for h := rr.from.Truncate(time.Hour); h.Before(end); h = h.Add(time.Hour) {
		a, b := laterOf(h, rr.from), earlierOf(h.Add(time.Hour), end)
		if !a.Before(b) {
			continue
		}
		e := s.entry(h.Unix())
		switch {
		case e.raw == nil:
			e.raw, e.rawFrom, e.rawTo = new([60]Counts), a, b
		case !a.After(e.rawTo) && !b.Before(e.rawFrom): // overlaps or touches what is known
			e.rawFrom, e.rawTo = earlierOf(e.rawFrom, a), laterOf(e.rawTo, b)
		default:
			*e.raw = [60]Counts{}
			e.rawFrom, e.rawTo = a, b
		}
		for t := a; t.Before(b); t = t.Add(time.Minute) {
			e.raw[int(t.Sub(h)/time.Minute)] = counts[t.Unix()]
		}
	}
}

// evict drops the hours older than SeriesMaxAge; s.mu is held.
func (s *Series) evict(now time.Time) {
	oldest := now.Add(-SeriesMaxAge).Unix()
	for h := range s.hours {
		if h+3600 < oldest {
			delete(s.hours, h)
		}
	}
}

// RollupLookback is how far back the schedule fills missing roll-ups: the
// longest history, so a week-long outage of the schedule is caught up.
const RollupLookback = 168 * time.Hour

// RollupBatch caps the hours one evaluation rolls up (newest first), so a
// catch-up after an outage is spread over several minutes.
const RollupBatch = 6

// RollUpResult says what one RollUp did.
type RollUpResult struct {
	Written int // roll-ups this call wrote
	Found   int // hours already rolled up (by this or another evaluation)
	Missing int // hours of the look-back still without a roll-up afterwards
}

// RollUp writes the roll-ups of the settled hours of the last lookback that
// have none, newest first, at most maxHours of them: one Query of the
// roll-ups this instance does not know, one strongly consistent Query per
// shard over the minutes of the hours to roll up, and one conditional PutItem
// per hour (so concurrent or repeated evaluations never write an hour twice).
// An instance that knows every roll-up of the look-back makes no call, and
// one that is already rolling up skips (concurrent evaluations on one
// instance would only repeat the same work).
func (s *Series) RollUp(ctx context.Context, lookback time.Duration, maxHours int) (RollUpResult, error) {
	var res RollUpResult
	if !s.rolling.CompareAndSwap(false, true) {
		return res, nil
	}
	defer s.rolling.Store(false)
	now := s.clock.Now()
	latest := now.Add(-SettleAfter).Truncate(time.Hour).Add(-time.Hour) // the newest settled hour
	oldest := latest.Add(-lookback + time.Hour)
	var missing []time.Time
	s.mu.Lock()
	s.evict(now)
	for h := oldest; !h.After(latest); h = h.Add(time.Hour) {
		if e := s.hours[h.Unix()]; e == nil || e.rollup == nil {
			missing = append(missing, h)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return res, nil
	}
	found, err := s.rollups.Range(ctx, missing[0], missing[len(missing)-1])
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	kept := missing[:0]
	for _, h := range missing {
		if r := found[h.Unix()]; r != nil {
			s.entry(h.Unix()).rollup = r
			res.Found++
			continue
		}
		kept = append(kept, h)
	}
	s.mu.Unlock()
	missing = kept
	if len(missing) == 0 {
		return res, nil
	}
	pick := missing[max(0, len(missing)-maxHours):]
	ms, err := s.counters.MinutesConsistent(ctx, pick[0], pick[len(pick)-1].Add(time.Hour))
	if err != nil {
		res.Missing = len(missing)
		return res, err
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 4)
	)
	res.Missing = len(missing) - len(pick)
	for _, h := range pick {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			stored, written, err := s.rollups.Put(ctx, BuildRollup(h, ms))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
				res.Missing++
				return
			case written:
				res.Written++
			default:
				res.Found++
			}
			if stored != nil {
				s.mu.Lock()
				s.entry(h.Unix()).rollup = stored
				s.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res, errors.Join(errs...)
}
