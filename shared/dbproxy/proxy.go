package dbproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/clock"
)

// AdminPrefix is the path prefix of the admin endpoints; DynamoDB calls always go to "/".
const AdminPrefix = "/__dbproxy/"

// maxRequestBytes is far above DynamoDB's own request limit (16 MB for a batch).
const maxRequestBytes = 64 << 20

// Option configures New.
type Option func(*options)

type options struct {
	listen string
	random clock.Random
	delay  time.Duration
}

// WithListenAddr listens on addr (host:port) instead of 127.0.0.1:0.
func WithListenAddr(addr string) Option { return func(o *options) { o.listen = addr } }

// WithRandom sets the source of the draws that decide a fractional fault
// (default clock.CryptoRandom; tests pass a clock.Sequence).
func WithRandom(r clock.Random) Option { return func(o *options) { o.random = r } }

// WithDelay sets the initial per-call delay (see SetDelay).
func WithDelay(d time.Duration) Option { return func(o *options) { o.delay = d } }

// Proxy forwards DynamoDB calls to an upstream DynamoDB (Local), counting
// them and injecting delays and faults. Safe for concurrent use.
type Proxy struct {
	upstream  *url.URL
	transport *http.Transport
	random    clock.Random
	srv       *http.Server
	gate      *gateListener
	admin     http.Handler
	stats     statsRecorder
	delay     atomic.Int64 // time.Duration
	requestID atomic.Uint64

	mu     sync.Mutex // guards what follows; taken before stats.mu, never after
	addr   string     // host:port, fixed by the first listen so a refused proxy comes back on the same port
	ln     net.Listener
	conns  map[net.Conn]http.ConnState
	faults map[Kind]*activeFault
	closed bool
}

// New starts a proxy to upstream (e.g. "http://127.0.0.1:8000") listening on
// 127.0.0.1:0 unless WithListenAddr says otherwise.
func New(upstream string, opts ...Option) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("dbproxy: upstream %q is not an http(s) URL", upstream)
	}
	o := options{listen: "127.0.0.1:0", random: clock.CryptoRandom{}}
	for _, opt := range opts {
		opt(&o)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, fmt.Errorf("dbproxy: listen: %w", err)
	}
	p := &Proxy{
		upstream: u,
		transport: &http.Transport{
			Proxy:               nil,  // never an HTTP(S)_PROXY from the environment
			DisableCompression:  true, // bodies pass through as DynamoDB wrote them
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		random: o.random,
		gate:   &gateListener{conns: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()},
		addr:   ln.Addr().String(),
		ln:     ln,
		conns:  map[net.Conn]http.ConnState{},
		faults: map[Kind]*activeFault{},
	}
	p.stats.reset()
	p.SetDelay(o.delay)
	p.admin = p.adminHandler()
	p.srv = &http.Server{
		Handler:           http.HandlerFunc(p.serveHTTP),
		ConnState:         p.connState,
		ReadHeaderTimeout: 30 * time.Second,
	}
	go p.accept(ln)
	go func() { _ = p.srv.Serve(p.gate) }()
	return p, nil
}

// URL is the proxy's base URL, e.g. for dynamodb.Options.BaseEndpoint.
func (p *Proxy) URL() string { return "http://" + p.addr }

// Close stops the proxy, freeing any held calls.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for k, f := range p.faults {
		f.end()
		delete(p.faults, k)
	}
	var err error
	if p.ln != nil {
		err = p.ln.Close()
		p.ln = nil
	}
	p.mu.Unlock()
	if e := p.srv.Close(); err == nil {
		err = e
	}
	p.transport.CloseIdleConnections()
	return err
}

// SetDelay makes every DynamoDB call wait d before anything else happens to
// it (forwarding or a fault), like a network round trip to DynamoDB; zero or
// negative turns it off.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(max(d, 0))) }

// Delay returns the current per-call delay.
func (p *Proxy) Delay() time.Duration { return time.Duration(p.delay.Load()) }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats { return p.stats.snapshot() }

// Reset zeroes the counters.
func (p *Proxy) Reset() { p.stats.reset() }

// SetFault activates f, replacing any active fault of the same kind.
func (p *Proxy) SetFault(f Fault) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("dbproxy: %w", err)
	}
	f.Operations = append([]string(nil), f.Operations...)
	f.Tables = append([]string(nil), f.Tables...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("dbproxy: closed")
	}
	if old := p.faults[f.Kind]; old != nil {
		old.end()
	}
	a := &activeFault{Fault: f, release: make(chan struct{})}
	if f.For > 0 {
		a.timer = time.AfterFunc(f.For, func() { _ = p.clear(f.Kind, a) })
	}
	p.faults[f.Kind] = a
	if f.Kind == Refuse && p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
		for c, s := range p.conns {
			if s != http.StateActive { // an active one closes when its answer is sent (connState)
				p.closeRefused(c)
			}
		}
	}
	return nil
}

// ClearFault ends the active fault of kind k, if any.
func (p *Proxy) ClearFault(k Kind) error { return p.clear(k, nil) }

// ClearFaults ends every active fault. Calls held by Hang are forwarded; a
// refusing proxy listens again on its port (the error says if it cannot).
func (p *Proxy) ClearFaults() error {
	var errs []error
	for _, k := range Kinds {
		errs = append(errs, p.clear(k, nil))
	}
	return errors.Join(errs...)
}

// clear ends the fault of kind k if it is only (when only is not nil).
func (p *Proxy) clear(k Kind, only *activeFault) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.faults[k]
	if a == nil || (only != nil && a != only) {
		return nil
	}
	a.end()
	delete(p.faults, k)
	if k == Refuse && p.ln == nil && !p.closed {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return fmt.Errorf("dbproxy: listen again on %s: %w", p.addr, err)
		}
		p.ln = ln
		go p.accept(ln)
	}
	return nil
}

// Faults lists the active faults in the order of Kinds.
func (p *Proxy) Faults() []Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := []Fault{}
	for _, k := range Kinds {
		if a := p.faults[k]; a != nil {
			out = append(out, a.Fault)
		}
	}
	return out
}

// AdminHandler serves the admin endpoints (under AdminPrefix), e.g. on a
// second listener that stays reachable while connections are refused.
func (p *Proxy) AdminHandler() http.Handler { return p.admin }

// accept hands the connections of one listener to the HTTP server until the
// listener is closed (by Refuse or Close). The server itself keeps serving a
// gateListener, so refusing and listening again never restarts it.
func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors
			continue
		}
		select {
		case p.gate.conns <- c:
		case <-p.gate.done:
			_ = c.Close()
			return
		}
	}
}

// connState tracks open connections so Refuse can close them: idle ones at
// once, active ones once their answer is sent (so the admin call that set the
// fault still gets its answer).
func (p *Proxy) connState(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	default:
		p.conns[c] = s
		if p.ln == nil && s != http.StateActive { // refusing (or closed)
			p.closeRefused(c)
		}
	}
}

// closeRefused closes a connection for Refuse; p.mu is held.
func (p *Proxy) closeRefused(c net.Conn) {
	delete(p.conns, c)
	_ = c.Close()
	if !p.closed {
		p.stats.fault(Refuse, 1)
	}
}

type gateListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
}

func (g *gateListener) Accept() (net.Conn, error) {
	select {
	case c := <-g.conns:
		return c, nil
	case <-g.done:
		return nil, net.ErrClosed
	}
}

func (g *gateListener) Close() error {
	g.once.Do(func() { close(g.done) })
	return nil
}

func (g *gateListener) Addr() net.Addr { return g.addr }

// plan is what the active faults do to one call.
type plan struct {
	latency time.Duration
	kind    Kind // "" when the call is forwarded normally
	release chan struct{}
}

func (p *Proxy) plan(c *call) plan {
	p.mu.Lock()
	defer p.mu.Unlock()
	var pl plan
	if a := p.faults[Latency]; a != nil && p.hits(a, c) {
		pl.latency = a.Delay
		p.stats.fault(Latency, 1)
	}
	for _, k := range outcomes {
		if a := p.faults[k]; a != nil && p.hits(a, c) {
			pl.kind, pl.release = k, a.release
			p.stats.fault(k, 1)
			break
		}
	}
	return pl
}

// hits draws for a fractional fault; p.mu is held, so draws happen in call order.
func (p *Proxy) hits(a *activeFault, c *call) bool {
	if !a.matches(c) {
		return false
	}
	if a.Fraction > 0 && a.Fraction < 1 {
		return p.random.Float64() < a.Fraction
	}
	return true
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, AdminPrefix) {
		p.admin.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			p.writeAWSError(w, http.StatusRequestEntityTooLarge, "com.amazon.coral.service#SerializationException", "request too large for dbproxy")
		}
		return // otherwise the client went away
	}
	c := parseCall(r.Header.Get("X-Amz-Target"), body)
	p.stats.call(c)
	ctx := r.Context()
	if !sleep(ctx, p.Delay()) {
		return
	}
	pl := p.plan(c)
	if !sleep(ctx, pl.latency) {
		return
	}
	switch pl.kind {
	case Hang:
		select {
		case <-ctx.Done():
			return
		case <-pl.release: // cleared: forward the call after all
		}
	case Throttle:
		p.writeAWSError(w, http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ThrottlingException", "Rate of requests exceeds the allowed throughput. (dbproxy fault)")
		return
	case ThroughputExceeded:
		p.writeAWSError(w, http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException", "The level of configured provisioned throughput for the table was exceeded. (dbproxy fault)")
		return
	case ServerError:
		p.writeAWSError(w, http.StatusInternalServerError, "com.amazon.coral.service#InternalFailure", "The request processing has failed because of an unknown error, exception or failure. (dbproxy fault)")
		return
	}
	resp, err := p.forward(ctx, r, c, body)
	if err != nil {
		if ctx.Err() == nil {
			p.stats.upstreamError()
			reset(w, nil)
		}
		return
	}
	if pl.kind == Cut {
		reset(w, resp)
		return
	}
	writeResponse(w, resp)
}

// answer is an upstream response, read in full.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// forward sends the call upstream, asking for ConsumedCapacity when the
// client did not, and records and (if injected) strips it from the answer.
func (p *Proxy) forward(ctx context.Context, r *http.Request, c *call, body []byte) (*answer, error) {
	injected := false
	if c.capacity && !c.asked {
		if b, err := setMember(body, "ReturnConsumedCapacity", []byte(`"`+injectedCapacity+`"`)); err == nil {
			body, injected = b, true
		}
	}
	u := *p.upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	removeHopHeaders(req.Header)
	req.Header.Del("Content-Length")
	// An uncompressed answer can be read and edited; the SDK takes either.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	respBody, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	a := &answer{status: resp.StatusCode, header: resp.Header, body: respBody}
	removeHopHeaders(a.header)
	if resp.Header.Get("Content-Encoding") != "" && resp.Header.Get("Content-Encoding") != "identity" {
		return a, nil // not readable; upstream ignored Accept-Encoding
	}
	var raw json.RawMessage
	var found bool
	if injected {
		var stripped []byte
		if stripped, raw, found = removeMember(respBody, "ConsumedCapacity"); found {
			a.body = stripped
			if a.header.Get("X-Amz-Crc32") != "" {
				a.header.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(stripped)), 10))
			}
		}
	} else {
		raw, found = memberValue(respBody, "ConsumedCapacity")
	}
	switch {
	case found:
		p.stats.capacity(c, raw)
	case c.capacity && resp.StatusCode/100 == 2:
		p.stats.noCapacity(c.op)
	}
	return a, nil
}

func writeResponse(w http.ResponseWriter, a *answer) {
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// reset takes over the client's connection, writes the status line, the
// headers and half the body of a (when not nil) and resets the connection:
// an abrupt close (RST, not FIN), so the client reads what was sent and then
// fails with "connection reset by peer", like a dropped connection.
func reset(w http.ResponseWriter, a *answer) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // the server closes the connection
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	if a != nil {
		h := a.header.Clone()
		h.Set("Content-Length", strconv.Itoa(len(a.body)))
		fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", a.status, http.StatusText(a.status))
		_ = h.Write(buf)
		_, _ = buf.WriteString("\r\n")
		_, _ = buf.Write(a.body[:len(a.body)/2])
		_ = buf.Flush()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeAWSError answers like DynamoDB does with an error of type typ.
func (p *Proxy) writeAWSError(w http.ResponseWriter, status int, typ, message string) {
	body, _ := json.Marshal(struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}{typ, message})
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(body)), 10))
	h.Set("X-Amzn-Requestid", "dbproxy-"+strconv.FormatUint(p.requestID.Add(1), 10))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHopHeaders(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// sleep waits d unless ctx ends first; it reports whether the wait completed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
