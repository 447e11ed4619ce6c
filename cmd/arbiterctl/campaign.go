package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

// campaignLine is one recipient's answer in campaign check's JSON Lines
// output.
type campaignLine struct {
	Line           int64     `json:"line"`
	HCPID          string    `json:"hcp_id"`
	ActionID       string    `json:"action_id,omitempty"`
	Allowed        bool      `json:"allowed"`
	Reasons        []string  `json:"reasons,omitempty"`
	EarliestAllowd time.Time `json:"earliest_allowed_at,omitzero"`
	ReservationID  string    `json:"reservation_id,omitempty"`
	Existing       bool      `json:"reservation_existing,omitempty"`
	Error          string    `json:"error,omitempty"`
}

// campaignRow is one row of the list: a recipient, and optionally the
// action, planned time and idempotency key for that row.
type campaignRow struct {
	HCPID          string    `json:"hcp_id"`
	ActionID       string    `json:"action_id"`
	PlannedAt      time.Time `json:"planned_at"`
	IdempotencyKey string    `json:"idempotency_key"`
}

// campaignWindow is how many items may be sent ahead of the answers: the
// items a broken stream must send again, and all the list the command
// holds in memory.
const campaignWindow = 1024

// campaignPack is how many items go in one message.
const campaignPack = 100

// campaignRetries is how often a broken stream is reopened.
const campaignRetries = 5

func campaignCheckCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "campaign check", "-list FILE [-action ID] [-at TIME] [-reserve -campaign NAME] [-quiet]")
	conn := addConnFlags(fs, e)
	var (
		list, action, campaign string
		at                     time.Time
		reserve, quiet         bool
	)
	fs.StringVar(&list, "list", "", "the campaign list: a `file` of CSV (a header naming hcp_id and optionally action_id, planned_at, idempotency_key) or JSON Lines (.jsonl, objects with those fields); - for standard input (JSON Lines)")
	fs.StringVar(&action, "action", "", "the action `id` for rows that name none")
	timeVar(fs, &at, "at", "the planned send time for rows that give none (default: now)")
	fs.BoolVar(&reserve, "reserve", false, "book each allowed send (a reservation, confirmed by the send event that quotes it)")
	fs.StringVar(&campaign, "campaign", "", "the campaign's `name`: with -reserve, rows without an idempotency key get campaign:hcp_id:action_id:planned_at, so that running the same campaign again books nothing twice")
	fs.BoolVar(&quiet, "quiet", false, "print only the summary, not a JSON line per recipient")
	if err := parseFlags(fs, args, "list"); err != nil {
		return err
	}
	if reserve && campaign == "" {
		return usagef("-reserve needs -campaign NAME (the idempotency keys of rows that have none)")
	}
	rows, closeRows, err := openCampaignList(e, list)
	if err != nil {
		return err
	}
	defer closeRows()
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()

	next := func() (client.SendCheck, int64, error) {
		row, line, err := rows.next()
		if err != nil {
			return client.SendCheck{}, line, err
		}
		sc := client.SendCheck{HCPID: row.HCPID, ActionID: row.ActionID, PlannedAt: row.PlannedAt,
			Reserve: reserve, IdempotencyKey: row.IdempotencyKey, Caller: arbiter.CallerMarketingPlatform}
		if sc.ActionID == "" {
			sc.ActionID = action
		}
		if sc.PlannedAt.IsZero() {
			sc.PlannedAt = at
		}
		if reserve && sc.IdempotencyKey == "" {
			planned := "now"
			if !sc.PlannedAt.IsZero() {
				planned = sc.PlannedAt.UTC().Format(time.RFC3339)
			}
			sc.IdempotencyKey = campaign + ":" + sc.HCPID + ":" + sc.ActionID + ":" + planned
		}
		return sc, line, nil
	}

	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	sum := &campaignSummary{blocked: map[string]int{}, errors: map[string]int{}}
	prog := newProgress(e.stderr, rows.size, rows.read)
	defer prog.stop()
	emit := func(it client.SendBatchItem, line int64) error {
		out := sum.add(it, line)
		prog.count(sum.total)
		if quiet {
			return nil
		}
		return enc.Encode(out)
	}
	start := time.Now()
	if err := runCampaign(ctx, c, next, emit, e.stderr); err != nil {
		prog.stop()
		w.Flush()
		return fmt.Errorf("after %d recipients: %w", sum.total, err)
	}
	prog.stop()
	if err := w.Flush(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(e.stderr, "%d recipients in %s (%.0f per second): %d allowed, %d blocked, %d not checked\n",
		sum.total, elapsed.Round(time.Millisecond), float64(sum.total)/max(elapsed.Seconds(), 1e-9), sum.allowed, sum.blockedN, sum.failed)
	if reserve {
		fmt.Fprintf(e.stderr, "reserved: %d new, %d already booked by an earlier run\n", sum.reserved, sum.existing)
	}
	fmt.Fprintf(e.stderr, "blocked by reason: %s\n", counts(sum.blocked))
	if sum.failed > 0 {
		fmt.Fprintf(e.stderr, "not checked, by code: %s\n", counts(sum.errors))
	}
	return nil
}

// runCampaign streams every item that next returns through CheckSendBatch
// and hands each answer to emit, in order. Up to campaignWindow items are
// sent ahead of their answers; when the stream breaks (the server
// restarting, an idle timeout, the network), it is reopened and those
// items are sent again: their idempotency keys make that safe.
func runCampaign(ctx context.Context, c *client.Client, next func() (client.SendCheck, int64, error),
	emit func(client.SendBatchItem, int64) error, log io.Writer) error {
	type pending struct {
		sc   client.SendCheck
		line int64
	}
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		unacked []pending // sent, not yet answered, in order
		srcDone bool
		srcErr  error
	)
	for attempt := 0; ; attempt++ {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := c.CheckSendBatch(sctx)
		if err != nil {
			cancel()
			return err
		}
		broken := make(chan struct{})
		// The sender: what the last stream left unanswered, then the rest,
		// up to campaignPack items a message.
		go func() {
			mu.Lock()
			resend := slices.Clone(unacked)
			mu.Unlock()
			for len(resend) > 0 {
				k := min(len(resend), campaignPack)
				pack := make([]client.SendCheck, k)
				for j := range k {
					pack[j] = resend[j].sc
				}
				if stream.SendMany(pack) != nil {
					return
				}
				resend = resend[k:]
			}
			pack := make([]client.SendCheck, 0, campaignPack)
			for {
				mu.Lock()
				for len(unacked) >= campaignWindow && !isClosed(broken) {
					cond.Wait()
				}
				if isClosed(broken) {
					mu.Unlock()
					return
				}
				pack = pack[:0]
				for len(pack) < campaignPack && len(unacked) < campaignWindow && !srcDone {
					sc, line, err := next()
					if err != nil {
						srcDone = true
						if !errors.Is(err, io.EOF) {
							srcErr = err
							cancel()
						}
						break
					}
					unacked = append(unacked, pending{sc, line})
					pack = append(pack, sc)
				}
				done := srcDone
				mu.Unlock()
				if len(pack) > 0 && stream.SendMany(pack) != nil {
					return
				}
				if done {
					_ = stream.CloseSend()
					return
				}
			}
		}()
		err = func() error {
			for {
				it, err := stream.Recv()
				if err != nil {
					return err
				}
				mu.Lock()
				if len(unacked) == 0 {
					mu.Unlock()
					return errors.New("the server answered an item that was not sent")
				}
				p := unacked[0]
				unacked = unacked[1:]
				cond.Broadcast()
				mu.Unlock()
				attempt = 0 // progress: the retries count again from here
				if err := emit(it, p.line); err != nil {
					return err
				}
			}
		}()
		mu.Lock()
		close(broken)
		cond.Broadcast()
		mu.Unlock()
		cancel()
		stream.Close()
		mu.Lock()
		done, left, serr := srcDone, len(unacked), srcErr
		mu.Unlock()
		switch {
		case serr != nil:
			return serr
		case errors.Is(err, io.EOF) && done && left == 0:
			return nil
		case errors.Is(err, io.EOF):
			err = errors.New("the server ended the stream early")
		}
		code := status.Code(err)
		// Retried: the server or the network gone (Unavailable), the
		// idle timeout (DeadlineExceeded), a stream's item limit
		// (ResourceExhausted), an early end. Not: the command's own
		// errors (writing the output), which a retry would repeat.
		retry := code == codes.Unavailable || code == codes.DeadlineExceeded || code == codes.ResourceExhausted ||
			err.Error() == "the server ended the stream early"
		if !retry || attempt >= campaignRetries || ctx.Err() != nil {
			return err
		}
		fmt.Fprintf(log, "\nthe stream broke (%s); resuming with the %d unanswered items\n", code, left)
		select {
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// campaignSummary counts the answers.
type campaignSummary struct {
	total, allowed, blockedN, failed, reserved, existing int
	blocked, errors                                      map[string]int
}

func (s *campaignSummary) add(it client.SendBatchItem, line int64) campaignLine {
	s.total++
	out := campaignLine{Line: line, HCPID: it.HCPID}
	if it.Err != nil {
		s.failed++
		code := status.Code(it.Err).String()
		s.errors[code]++
		out.Error = code + ": " + status.Convert(it.Err).Message()
		return out
	}
	v := it.Verdict
	out.ActionID, out.Allowed, out.EarliestAllowd = v.ActionID, v.Allowed, v.EarliestAllowedAt
	out.ReservationID, out.Existing = v.ReservationID, v.ReservationExisting
	if v.Allowed {
		s.allowed++
		switch {
		case v.ReservationExisting:
			s.existing++
		case v.ReservationID != "":
			s.reserved++
		}
	} else {
		s.blockedN++
	}
	for _, b := range v.Blocks {
		out.Reasons = append(out.Reasons, string(b.Reason))
		s.blocked[string(b.Reason)]++
	}
	return out
}

// campaignRows reads a campaign list, one row at a time.
type campaignRows struct {
	next func() (campaignRow, int64, error)
	size int64        // the file's size (0: unknown)
	read func() int64 // bytes read so far
}

func openCampaignList(e *env, name string) (*campaignRows, func(), error) {
	var (
		in   io.Reader = e.stdin
		size int64
		cl   = func() {}
	)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in, cl = f, func() { f.Close() }
	}
	cr := &countingReader{r: in}
	br := bufio.NewReaderSize(cr, 64<<10)
	rows := &campaignRows{size: size, read: cr.n}
	var line int64
	if name == "-" || strings.HasSuffix(name, ".jsonl") || strings.HasSuffix(name, ".json") {
		rows.next = func() (campaignRow, int64, error) {
			for {
				text, err := br.ReadString('\n')
				if text == "" && err != nil {
					return campaignRow{}, line, err
				}
				line++
				if strings.TrimSpace(text) == "" {
					continue
				}
				var row campaignRow
				dec := json.NewDecoder(strings.NewReader(text))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&row); err != nil {
					return row, line, fmt.Errorf("%s line %d: %v", name, line, err)
				}
				return row, line, nil
			}
		}
		return rows, cl, nil
	}
	r := csv.NewReader(br)
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		cl()
		return nil, nil, fmt.Errorf("%s: reading the CSV header: %v", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.ToLower(h))] = i
	}
	if _, ok := col["hcp_id"]; !ok {
		cl()
		return nil, nil, usagef("%s: the CSV header must name an hcp_id column", name)
	}
	line = 1
	get := func(rec []string, name string) string {
		if i, ok := col[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	rows.next = func() (campaignRow, int64, error) {
		rec, err := r.Read()
		if err != nil {
			return campaignRow{}, line, err
		}
		line++
		row := campaignRow{HCPID: get(rec, "hcp_id"), ActionID: get(rec, "action_id"), IdempotencyKey: get(rec, "idempotency_key")}
		if s := get(rec, "planned_at"); s != "" {
			if row.PlannedAt, err = time.Parse(time.RFC3339, s); err != nil {
				return row, line, fmt.Errorf("%s line %d: planned_at %q is not an RFC 3339 time", name, line, s)
			}
		}
		return row, line, nil
	}
	return rows, cl, nil
}

type countingReader struct {
	r  io.Reader
	mu sync.Mutex
	k  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.mu.Lock()
	c.k += int64(n)
	c.mu.Unlock()
	return n, err
}

func (c *countingReader) n() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.k
}

// progress draws a progress line on w (a terminal's standard error) twice
// a second: recipients answered, the rate, and with a file of known size
// how far through it the reading is.
type progress struct {
	w    io.Writer
	what string // what n counts: "checked", "exported"
	size int64
	read func() int64
	mu   sync.Mutex
	n    int
	// detail follows the count and rate when set (countWith).
	detail string
	start  time.Time
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

func newProgress(w io.Writer, size int64, read func() int64) *progress {
	return newProgressOf(w, "checked", size, read)
}

// newProgressOf is newProgress counting what ("rows").
func newProgressOf(w io.Writer, what string, size int64, read func() int64) *progress {
	p := &progress{w: w, what: what, size: size, read: read, start: time.Now(), done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				p.draw()
			case <-p.done:
				return
			}
		}
	}()
	return p
}

func (p *progress) count(n int) {
	p.mu.Lock()
	p.n = n
	p.mu.Unlock()
}

// countWith sets the count and the detail drawn after it ("12 applied,
// 3 rejected").
func (p *progress) countWith(n int, detail string) {
	p.mu.Lock()
	p.n, p.detail = n, detail
	p.mu.Unlock()
}

func (p *progress) draw() {
	p.mu.Lock()
	n, detail := p.n, p.detail
	p.mu.Unlock()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-9)
	line := fmt.Sprintf("\r%d %s, %.0f/s", n, p.what, rate)
	if p.size > 0 {
		frac := min(float64(p.read())/float64(p.size), 1)
		const width = 30
		bar := strings.Repeat("=", int(frac*width)) + strings.Repeat(" ", width-int(frac*width))
		line = fmt.Sprintf("\r[%s] %3.0f%% read, %d %s, %.0f/s", bar, 100*frac, n, p.what, rate)
	}
	if detail != "" {
		line += ": " + detail
	}
	fmt.Fprint(p.w, line)
}

func (p *progress) stop() {
	p.once.Do(func() {
		close(p.done)
		p.wg.Wait()
		p.mu.Lock()
		n := p.n
		p.mu.Unlock()
		if n > 0 {
			p.draw()
			fmt.Fprintln(p.w)
		}
	})
}
