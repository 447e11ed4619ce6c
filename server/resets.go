package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// A bound on stream resets per connection. A client that opens streams and
// resets them at once (HEADERS then RST_STREAM, the "rapid reset" of
// CVE-2023-44487) makes the server start a call for each and cancel it,
// for almost nothing on its side: one such connection cut Decide
// throughput from about 4,000 to 43 a second (the fault suite, cmd/faults/).
// MaxConcurrentStreams does not bound it, since each stream ends at once.
//
// WithResetLimit counts the RST_STREAM frames a client sends on each
// connection, in the HTTP/2 framing as it is read (after TLS), with a
// token bucket; a connection past its budget is closed before the frames
// that broke it reach gRPC. An address whose connections are closed three
// times in ten seconds may not connect for a second (the handshake is
// refused): an attacker who reconnects at once would otherwise get a fresh
// budget each time. A well-behaved client
// resets a stream only when it cancels a call (a deadline, a user who
// navigated away): far below the bucket. Behind a proxy that carries many
// clients on few connections, raise the limit.

// ErrTooManyResets closes a connection whose client reset too many
// streams.
var ErrTooManyResets = errors.New("too many stream resets on this connection")

// ResetLimit is the budget: Burst resets at once, refilled at PerSecond.
type ResetLimit struct {
	PerSecond float64
	Burst     float64
	// Closed counts the connections closed for it (may be nil).
	Closed *atomic.Int64
}

// WithResetLimit wraps transport credentials (TLS, or insecure for
// plaintext) so that every connection they hand to gRPC counts its
// client's stream resets.
func WithResetLimit(creds credentials.TransportCredentials, limit ResetLimit) credentials.TransportCredentials {
	return resetLimitCreds{TransportCredentials: creds, limit: limit, penalty: &penaltyBox{hosts: map[string]*strikes{}}}
}

type resetLimitCreds struct {
	credentials.TransportCredentials
	limit   ResetLimit
	penalty *penaltyBox
}

// penaltyBox holds the addresses whose connections were closed for
// resets again and again (penaltyStrikes within penaltyWindow), until when
// they may connect again. One closure is not enough: a client whose calls
// all time out (each a reset) during a Redis blip loses a connection, not
// its address; and behind NAT or a sidecar one address carries many
// clients.
type penaltyBox struct {
	mu    sync.Mutex
	hosts map[string]*strikes
}

type strikes struct {
	times [penaltyStrikes]time.Time // the last closures, a ring
	next  int
	until time.Time
}

const (
	penaltyStrikes = 3
	penaltyWindow  = 10 * time.Second
	penaltyTime    = time.Second
	// penaltyHosts bounds the box: past it, the oldest entries go.
	penaltyHosts = 10_000
)

func (p *penaltyBox) strike(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	st, ok := p.hosts[host]
	if !ok {
		if len(p.hosts) >= penaltyHosts {
			p.evict(now)
		}
		st = &strikes{}
		p.hosts[host] = st
	}
	st.times[st.next] = now
	st.next = (st.next + 1) % penaltyStrikes
	// The ring's oldest is the one next overwritten: all within the window?
	if oldest := st.times[st.next]; !oldest.IsZero() && now.Sub(oldest) <= penaltyWindow {
		st.until = now.Add(penaltyTime)
	}
}

// evict forgets the entries whose last closure left the window, or, when
// none has, any entry: the box never grows past penaltyHosts.
func (p *penaltyBox) evict(now time.Time) {
	for h, st := range p.hosts {
		last := st.times[(st.next+penaltyStrikes-1)%penaltyStrikes]
		if now.Sub(last) > penaltyWindow && now.After(st.until) {
			delete(p.hosts, h)
		}
	}
	for h := range p.hosts {
		if len(p.hosts) < penaltyHosts {
			return
		}
		delete(p.hosts, h)
	}
}

func (p *penaltyBox) holds(host string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.hosts[host]
	return ok && time.Now().Before(st.until)
}

func hostOf(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}

func (c resetLimitCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host := hostOf(raw)
	if c.penalty.holds(host) {
		return nil, nil, ErrTooManyResets
	}
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return conn, info, err
	}
	return &resetCountingConn{Conn: conn, limit: c.limit, tokens: c.limit.Burst, last: time.Now(), preface: 24,
		penalize: func() { c.penalty.strike(host) }}, info, nil
}

func (c resetLimitCreds) Clone() credentials.TransportCredentials {
	return resetLimitCreds{TransportCredentials: c.TransportCredentials.Clone(), limit: c.limit, penalty: c.penalty}
}

// resetCountingConn follows the HTTP/2 frames the client sends: the 24-byte
// preface, then frames of a 9-byte header (length, type, flags, stream)
// and a payload, which it skips. Only gRPC's reader calls Read.
type resetCountingConn struct {
	net.Conn
	limit   ResetLimit
	tokens  float64
	last    time.Time
	preface int     // preface bytes still to pass
	skip    int     // payload bytes of the current frame still to pass
	hdr     [9]byte // a frame header read in part
	hdrN    int
	closed  bool
	// penalize keeps the client's address out for a while.
	penalize func()
}

const frameRSTStream = 0x3

func (c *resetCountingConn) Read(p []byte) (int, error) {
	if c.closed {
		return 0, ErrTooManyResets
	}
	n, err := c.Conn.Read(p)
	if c.scan(p[:n]) {
		c.closed = true
		if c.limit.Closed != nil {
			c.limit.Closed.Add(1)
		}
		if c.penalize != nil {
			c.penalize()
		}
		c.Conn.Close()
		return 0, ErrTooManyResets
	}
	return n, err
}

// scan walks the frame headers in b, and reports whether the client went
// past its budget of resets.
func (c *resetCountingConn) scan(b []byte) bool {
	for len(b) > 0 {
		switch {
		case c.preface > 0:
			k := min(c.preface, len(b))
			c.preface -= k
			b = b[k:]
		case c.skip > 0:
			k := min(c.skip, len(b))
			c.skip -= k
			b = b[k:]
		default:
			k := copy(c.hdr[c.hdrN:], b)
			c.hdrN += k
			b = b[k:]
			if c.hdrN < len(c.hdr) {
				return false
			}
			c.hdrN = 0
			c.skip = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
			if c.hdr[3] == frameRSTStream && !c.take() {
				return true
			}
		}
	}
	return false
}

// take spends a token of the connection's bucket, if there is one.
func (c *resetCountingConn) take() bool {
	now := time.Now()
	c.tokens = min(c.limit.Burst, c.tokens+now.Sub(c.last).Seconds()*c.limit.PerSecond)
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}
