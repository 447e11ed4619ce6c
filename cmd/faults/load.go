package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
)

// The load runs through every fault, and keeps the books the verdict is
// drawn from:
//
//   - deciders ask Decide for random recipients, and check every answer
//     against what they know of consent: a recipient withdrawn from every
//     channel at the start gets no recommendation at all; a recipient whose
//     last acknowledged promotional-email consent is an opt-out (and who
//     has no write in flight) gets no promotional email;
//   - consent writers own a set of recipients each and toggle their
//     promotional-email consent, channel-wide, with rising capture times,
//     keeping every acknowledged ledger entry;
//   - event writers report opens with unique ids, keeping every
//     acknowledged id.
//
// A write whose call failed may or may not have been applied: it is
// neither counted as acknowledged nor as lost, and the recipient's consent
// is unknown to the oracle until the next acknowledged write.
type load struct {
	c         *client.Client
	withdrawn []string // no recommendation, ever
	toggled   []string // consent toggled by the writers

	mu    sync.Mutex
	state map[string]*toggleState

	ackedEntries []ackedEntry
	ackedEvents  []client.Event

	decisions, decideErrs, writes, writeErrs atomic.Int64
	violations                               atomic.Int64
	violationSamples                         []string
	codes                                    sync.Map // codes.Code -> *atomic.Int64
	lastOK                                   atomic.Int64
	eventSeq                                 atomic.Int64
}

type toggleState struct {
	optedOut  bool // the last acknowledged write was an opt-out
	known     bool // no write since with an unknown outcome
	inFlight  bool
	gen       int64
	lastCapMs int64
}

type ackedEntry struct {
	hcp    string
	seq    int64
	status client.ConsentStatus
	at     time.Time
}

// countCode counts a failed call by its code, and backs off briefly when
// the server is unreachable, as a client would, so that a server down is
// not a million failed calls a second.
func (l *load) countCode(err error) {
	code := status.Code(err)
	v, _ := l.codes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
	if code == codes.Unavailable {
		time.Sleep(20 * time.Millisecond) // a client's retry backoff
	}
}

// run starts the workers; they stop when ctx ends.
func (l *load) run(ctx context.Context, deciders, consentWriters, eventWriters int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for i := range deciders {
		wg.Go(func() { l.decider(ctx, uint64(i)) })
	}
	per := (len(l.toggled) + consentWriters - 1) / consentWriters
	for i := range consentWriters {
		own := l.toggled[min(i*per, len(l.toggled)):min((i+1)*per, len(l.toggled))]
		wg.Go(func() { l.consentWriter(ctx, own) })
	}
	for i := range eventWriters {
		wg.Go(func() { l.eventWriter(ctx, uint64(100+i)) })
	}
	return &wg
}

func (l *load) decider(ctx context.Context, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 7))
	for ctx.Err() == nil {
		var hcp string
		switch r.IntN(4) {
		case 0:
			hcp = l.withdrawn[r.IntN(len(l.withdrawn))]
		case 1:
			hcp = l.toggled[r.IntN(len(l.toggled))]
		default:
			hcp = demo.HCPID(1 + r.IntN(population))
		}
		l.mu.Lock()
		st := l.state[hcp]
		var before toggleState
		if st != nil {
			before = *st
		}
		l.mu.Unlock()
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		d, err := l.c.Decide(callCtx, hcp, client.DecideOptions{Limit: 3})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				l.decideErrs.Add(1)
				l.countCode(err)
			}
			continue
		}
		l.decisions.Add(1)
		l.lastOK.Store(time.Now().UnixNano())
		l.check(hcp, d, st, before)
	}
}

// check is the consent oracle for one answer.
func (l *load) check(hcp string, d *client.Decision, st *toggleState, before toggleState) {
	for _, rec := range d.Recommendations {
		bad := ""
		switch {
		case isWithdrawn(l.withdrawn, hcp):
			bad = "recommended to a recipient who withdrew from every channel"
		case st != nil && rec.Channel == arbiter.Email && rec.Purpose == arbiter.Promotional:
			l.mu.Lock()
			stable := before.known && !before.inFlight && st.gen == before.gen && !st.inFlight
			l.mu.Unlock()
			if stable && before.optedOut {
				bad = "promotional email after an acknowledged opt-out"
			}
		}
		if bad != "" {
			l.violations.Add(1)
			l.mu.Lock()
			if len(l.violationSamples) < 5 {
				l.violationSamples = append(l.violationSamples, fmt.Sprintf("%s: %s (%s)", d.ID, bad, rec.ActionID))
			}
			l.mu.Unlock()
		}
	}
}

func isWithdrawn(ids []string, id string) bool {
	for _, w := range ids {
		if w == id {
			return true
		}
	}
	return false
}

func (l *load) consentWriter(ctx context.Context, own []string) {
	if len(own) == 0 {
		return
	}
	for i := 0; ctx.Err() == nil; i++ {
		hcp := own[i%len(own)]
		l.mu.Lock()
		st := l.state[hcp]
		optOut := !st.optedOut
		if !st.known {
			optOut = i%2 == 0
		}
		ms := max(time.Now().UnixMilli(), st.lastCapMs+1)
		st.lastCapMs = ms
		st.inFlight = true
		st.gen++
		l.mu.Unlock()

		s := client.ConsentOptIn
		if optOut {
			s = client.ConsentOptOut
		}
		at := time.UnixMilli(ms).UTC()
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		e, err := l.c.SetConsent(callCtx, hcp, client.ConsentRecord{Channel: arbiter.Email,
			Purpose: arbiter.Promotional, Status: s, CapturedAt: at, Source: "fault-suite"}, false)
		cancel()

		l.mu.Lock()
		st.inFlight = false
		st.gen++
		if err != nil {
			st.known = false // applied or not: unknown until the next acknowledged write
			l.mu.Unlock()
			if ctx.Err() == nil {
				l.writeErrs.Add(1)
				l.countCode(err)
			}
			continue
		}
		st.known, st.optedOut = true, optOut
		l.ackedEntries = append(l.ackedEntries, ackedEntry{hcp: hcp, seq: e.Seq, status: s, at: at})
		l.mu.Unlock()
		l.writes.Add(1)
	}
}

func (l *load) eventWriter(ctx context.Context, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 11))
	for ctx.Err() == nil {
		e := client.Event{ID: fmt.Sprintf("fault-%d-%d", seed, l.eventSeq.Add(1)),
			HCPID: demo.HCPID(1 + r.IntN(population)), Type: arbiter.EventOpened, Channel: arbiter.Email,
			OccurredAt: time.Now().UTC()}
		callCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := l.c.RecordEvent(callCtx, e)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				l.writeErrs.Add(1)
				l.countCode(err)
			}
			continue
		}
		l.mu.Lock()
		l.ackedEvents = append(l.ackedEvents, e)
		l.mu.Unlock()
		l.writes.Add(1)
	}
}

// lost counts the acknowledged writes that are not in Redis: an event sent
// again must be a duplicate, and every acknowledged ledger entry must be in
// its recipient's ledger, as acknowledged.
func (l *load) lost(ctx context.Context) (events, entries int, err error) {
	l.mu.Lock()
	evs := append([]client.Event(nil), l.ackedEvents...)
	ents := append([]ackedEntry(nil), l.ackedEntries...)
	l.mu.Unlock()
	for _, e := range evs {
		dup, err := l.c.RecordEvent(ctx, e)
		if err != nil {
			return 0, 0, fmt.Errorf("resend event: %w", err)
		}
		if !dup {
			events++
		}
	}
	ledgers := map[string]map[int64]client.LedgerEntry{}
	for _, a := range ents {
		led, ok := ledgers[a.hcp]
		if !ok {
			led = map[int64]client.LedgerEntry{}
			for off := 0; ; off += 500 {
				page, total, err := l.c.ConsentHistory(ctx, a.hcp, off, 500)
				if err != nil {
					return 0, 0, fmt.Errorf("consent history: %w", err)
				}
				for _, e := range page {
					led[e.Seq] = e
				}
				if int64(off+len(page)) >= total || len(page) == 0 {
					break
				}
			}
			ledgers[a.hcp] = led
		}
		got, ok := led[a.seq]
		if !ok || got.Record.Status != a.status || !got.Record.CapturedAt.Equal(a.at) {
			entries++
		}
	}
	return events, entries, nil
}

// finalConsent checks the oracle's last word against the store: every
// toggled recipient whose last write was acknowledged has that consent.
func (l *load) finalConsent(ctx context.Context) (wrong int, err error) {
	for _, hcp := range l.toggled {
		l.mu.Lock()
		st := *l.state[hcp]
		l.mu.Unlock()
		if !st.known || st.gen == 0 {
			continue
		}
		cs, err := l.c.GetConsent(ctx, hcp)
		if err != nil {
			return 0, err
		}
		want := client.ConsentOptIn
		if st.optedOut {
			want = client.ConsentOptOut
		}
		found := false
		for _, r := range cs.Records {
			if r.Channel == arbiter.Email && r.Purpose == arbiter.Promotional && r.Topic == "" && r.AddressRef == "" {
				found = r.Status == want && r.CapturedAt.UnixMilli() == st.lastCapMs
			}
		}
		if !found {
			wrong++
		}
	}
	return wrong, nil
}

func (l *load) codeSummary() string {
	out := ""
	for c := codes.Code(0); c <= codes.Unauthenticated; c++ {
		if v, ok := l.codes.Load(c); ok {
			out += fmt.Sprintf(" %s=%d", c, v.(*atomic.Int64).Load())
		}
	}
	if out == "" {
		return " none"
	}
	return out
}
