package dbproxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Kind names a fault; the strings are the admin wire format.
type Kind string

// The fault kinds. Per call, a matching Latency adds its delay first; then the
// first matching kind of Hang, Cut, Throttle, ThroughputExceeded, ServerError
// (in that order) decides the outcome. Refuse acts on connections, not calls.
const (
	// Refuse closes the listener (connections are refused) and every open
	// connection; clearing it listens again on the same port.
	Refuse Kind = "refuse"
	// Latency waits Fault.Delay more before forwarding.
	Latency Kind = "latency"
	// Hang holds the call until the client gives up or the fault is cleared
	// (then the call is forwarded).
	Hang Kind = "hang"
	// Cut forwards the call, sends the status line, the headers and half of
	// the body, then resets the connection.
	Cut Kind = "cut"
	// Throttle answers 400 ThrottlingException.
	Throttle Kind = "throttle"
	// ThroughputExceeded answers 400 ProvisionedThroughputExceededException.
	ThroughputExceeded Kind = "throughput"
	// ServerError answers 500 InternalFailure.
	ServerError Kind = "server-error"
)

// Kinds lists every kind in the order calls are checked against them.
var Kinds = []Kind{Refuse, Latency, Hang, Cut, Throttle, ThroughputExceeded, ServerError}

// outcomes are the kinds that decide a call's answer, in the order they are tried.
var outcomes = []Kind{Hang, Cut, Throttle, ThroughputExceeded, ServerError}

// maxFaultDuration bounds Delay and For so milliseconds on the wire cannot overflow.
const maxFaultDuration = 24 * time.Hour

// Fault is one injected failure. At most one fault of each Kind is active.
type Fault struct {
	Kind Kind
	// Operations limits the fault to these operations (e.g. "GetItem"); empty means all.
	Operations []string
	// Tables limits the fault to calls on one of these tables; empty means all.
	Tables []string
	// Fraction in (0, 1) hits that fraction of matching calls, each decided by
	// one draw of the proxy's random source (WithRandom); 0 or 1 hits all of
	// them without drawing.
	Fraction float64
	// Delay is the extra wait of a Latency fault (required there, zero elsewhere).
	Delay time.Duration
	// For, when positive, clears the fault by itself after that long, e.g. so a
	// script can refuse connections without reaching the admin endpoints to
	// clear it again.
	For time.Duration
}

// faultJSON is Fault on the admin wire: durations in milliseconds.
type faultJSON struct {
	Kind       Kind     `json:"kind"`
	Operations []string `json:"operations,omitempty"`
	Tables     []string `json:"tables,omitempty"`
	Fraction   float64  `json:"fraction,omitempty"`
	DelayMs    int64    `json:"delayMs,omitempty"`
	ForMs      int64    `json:"forMs,omitempty"`
}

// MarshalJSON writes the admin wire form.
func (f Fault) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultJSON{
		Kind: f.Kind, Operations: f.Operations, Tables: f.Tables, Fraction: f.Fraction,
		DelayMs: f.Delay.Milliseconds(), ForMs: f.For.Milliseconds(),
	})
}

// UnmarshalJSON reads the admin wire form, rejecting unknown fields (a typo
// such as "operation" would otherwise widen the fault to every call).
func (f *Fault) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var w faultJSON
	if err := dec.Decode(&w); err != nil {
		return err
	}
	limit := maxFaultDuration.Milliseconds()
	if w.DelayMs < 0 || w.DelayMs > limit || w.ForMs < 0 || w.ForMs > limit {
		return fmt.Errorf("delayMs and forMs must be between 0 and %d", limit)
	}
	*f = Fault{
		Kind: w.Kind, Operations: w.Operations, Tables: w.Tables, Fraction: w.Fraction,
		Delay: time.Duration(w.DelayMs) * time.Millisecond, For: time.Duration(w.ForMs) * time.Millisecond,
	}
	return nil
}

// Validate reports why f cannot be set, if it cannot.
func (f Fault) Validate() error {
	if !slices.Contains(Kinds, f.Kind) {
		return fmt.Errorf("unknown fault kind %q", f.Kind)
	}
	if math.IsNaN(f.Fraction) || f.Fraction < 0 || f.Fraction > 1 {
		return errors.New("fraction must be between 0 and 1")
	}
	if f.For < 0 || f.For > maxFaultDuration {
		return fmt.Errorf("for must be between 0 and %s", maxFaultDuration)
	}
	switch {
	case f.Kind == Latency && (f.Delay <= 0 || f.Delay > maxFaultDuration):
		return fmt.Errorf("a latency fault needs a delay between 0 and %s", maxFaultDuration)
	case f.Kind != Latency && f.Delay != 0:
		return fmt.Errorf("only a latency fault takes a delay")
	}
	if f.Kind == Refuse && (len(f.Operations) > 0 || len(f.Tables) > 0 || (f.Fraction != 0 && f.Fraction != 1)) {
		// Connections are refused before any call is read.
		return errors.New("a refuse fault cannot be limited to operations, tables or a fraction")
	}
	return nil
}

// matches reports whether the fault's filters select a call.
func (f Fault) matches(c *call) bool {
	if len(f.Operations) > 0 && !slices.Contains(f.Operations, c.op) {
		return false
	}
	if len(f.Tables) > 0 && !slices.ContainsFunc(c.tables, func(t string) bool { return slices.Contains(f.Tables, t) }) {
		return false
	}
	return true
}

// activeFault is a set fault with what clearing it must undo.
type activeFault struct {
	Fault
	release chan struct{} // closed when the fault ends, freeing the calls it holds
	timer   *time.Timer   // clears the fault after For
}

func (a *activeFault) end() {
	close(a.release)
	if a.timer != nil {
		a.timer.Stop()
	}
}
