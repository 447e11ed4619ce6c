package server

import (
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// The counting conn follows frames across reads of any size and closes the
// connection at the reset past its budget, before that read reaches gRPC.
func TestResetCountingConnClosesPastItsBudget(t *testing.T) {
	c := &resetCountingConn{limit: ResetLimit{PerSecond: 0.001, Burst: 3}, tokens: 3, last: time.Now(), preface: 24}
	stream := []byte(http2.ClientPreface)
	fr := http2.NewFramer(&appendWriter{&stream}, nil)
	_ = fr.WriteSettings()
	for id := uint32(1); id <= 9; id += 2 {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: []byte{0x82}, EndHeaders: true})
		_ = fr.WriteRSTStream(id, http2.ErrCodeCancel)
	}
	// Where the fourth reset's header ends.
	var rsts []int
	for off := 24; off+9 <= len(stream); {
		n := int(stream[off])<<16 | int(stream[off+1])<<8 | int(stream[off+2])
		if stream[off+3] == 0x3 {
			rsts = append(rsts, off+9)
		}
		off += 9 + n
	}
	if len(rsts) != 5 {
		t.Fatalf("the test stream has %d resets, want 5", len(rsts))
	}
	// Feed the bytes in reads of 7, splitting headers and frames.
	closedAt := -1
	for i := 0; i < len(stream); i += 7 {
		if c.scan(stream[i:min(i+7, len(stream))]) {
			closedAt = i + 7
			break
		}
	}
	if closedAt < rsts[3] || closedAt-7 >= rsts[3] {
		t.Fatalf("closed in the read ending at byte %d; the fourth reset (past a budget of 3) ends at %d", closedAt, rsts[3])
	}
}

type appendWriter struct{ b *[]byte }

func (w *appendWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// One closure does not shut an address out (a client whose calls all
// timed out in a blip); three within the window do, for a while.
func TestPenaltyBoxNeedsThreeStrikes(t *testing.T) {
	p := &penaltyBox{hosts: map[string]*strikes{}}
	p.strike("10.0.0.1")
	p.strike("10.0.0.1")
	if p.holds("10.0.0.1") {
		t.Fatal("two closures shut the address out")
	}
	p.strike("10.0.0.1")
	if !p.holds("10.0.0.1") {
		t.Fatal("three closures in the window did not shut the address out")
	}
	if p.holds("10.0.0.2") {
		t.Fatal("another address is shut out")
	}
	// Strikes older than the window do not count.
	st := p.hosts["10.0.0.3"]
	if st != nil {
		t.Fatal("an address never struck has an entry")
	}
	p.strike("10.0.0.3")
	for i := range p.hosts["10.0.0.3"].times {
		p.hosts["10.0.0.3"].times[i] = time.Now().Add(-time.Minute)
	}
	p.strike("10.0.0.3")
	p.strike("10.0.0.3")
	if p.holds("10.0.0.3") {
		t.Fatal("a strike outside the window counted")
	}
}
