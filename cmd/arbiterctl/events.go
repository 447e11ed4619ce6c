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

// The columns of an events file (CSV header names, JSON Lines keys), as
// the API's Event fields are named: the first five are required.
var eventColumns = []string{"event_id", "hcp_id", "type", "channel", "occurred_at",
	"action_id", "topic", "decision_id", "message_id", "purpose", "reservation_id"}

const requiredEventColumns = 5

// eventsBatchBytes bounds a batch's events' text, well below the
// server's 1 MiB message limit (an event's encoding adds a few bytes to
// its strings).
const eventsBatchBytes = 768 << 10

// eventsRetries is how often a batch is sent again after the server or
// the network failed (Unavailable, ResourceExhausted, DeadlineExceeded):
// safe, since an event is applied once per event_id.
const eventsRetries = 5

func eventsImportCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "events import", "-file FILE [-format csv|jsonl] [-batch 500] [-concurrency 4] [-errors errors.csv]")
	conn := addConnFlags(fs, e)
	var (
		file, format, errorsFile string
		batch, concurrency       int
	)
	fs.StringVar(&file, "file", "", "the events: a `file` of CSV (a header naming event_id, hcp_id, type, channel, occurred_at and optionally "+
		"action_id, topic, decision_id, message_id, purpose, reservation_id) or JSON Lines (objects with those keys); - for standard input (required)")
	fs.StringVar(&format, "format", "", "csv or jsonl (default: jsonl for .jsonl, .json and standard input, else csv)")
	fs.IntVar(&batch, "batch", 500, "events per RecordEvents call, 1 to 1000")
	fs.IntVar(&concurrency, "concurrency", 4, "calls in flight at once")
	fs.StringVar(&errorsFile, "errors", "", "write every rejected row to this CSV `file` (line,event_id,field,status,description); "+
		"without it the first 10 are printed")
	if err := parseFlags(fs, args, "file"); err != nil {
		return err
	}
	switch {
	case batch < 1 || batch > client.MaxEventsPerCall:
		return usagef("-batch: want 1 to %d, got %d", client.MaxEventsPerCall, batch)
	case concurrency < 1 || concurrency > 64:
		return usagef("-concurrency: want 1 to 64, got %d", concurrency)
	}
	if format == "" {
		format = "csv"
		if file == "-" || strings.HasSuffix(file, ".jsonl") || strings.HasSuffix(file, ".json") {
			format = "jsonl"
		}
	}
	if format != "csv" && format != "jsonl" {
		return usagef("-format: want csv or jsonl, got %q", format)
	}
	src, err := openEventRows(e, file, format)
	if err != nil {
		return err
	}
	defer src.close()
	report, err := newErrorReport(e.stderr, errorsFile)
	if err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		report.close()
		return err
	}
	defer c.Close()

	prog := newProgressOf(e.stderr, "rows", src.size, src.read)
	start := time.Now()
	sum, runErr := importEvents(ctx, c, src, batch, concurrency, report, prog)
	prog.stop()
	elapsed := time.Since(start)
	if err := report.close(); err != nil && runErr == nil {
		runErr = err
	}
	fmt.Fprintf(e.stdout, "%d rows in %s (%.0f rows/s): %d applied, %d duplicates, %d rejected (%d by the server, %d unreadable and not sent)\n",
		sum.rows, elapsed.Round(time.Millisecond), float64(sum.rows)/max(elapsed.Seconds(), 1e-9), sum.applied, sum.duplicates,
		sum.rejected+sum.unreadable, sum.rejected, sum.unreadable)
	if sum.retried > 0 {
		fmt.Fprintf(e.stdout, "%d calls were sent again after a failure: events their first attempt applied count as duplicates\n", sum.retried)
	}
	if errorsFile != "" && sum.rejected+sum.unreadable > 0 {
		fmt.Fprintf(e.stdout, "rejected rows: %s\n", errorsFile)
	}
	if runErr != nil {
		return fmt.Errorf("stopped after line %d (every row up to it was answered; sending the whole file again is safe: "+
			"events already applied come back as duplicates): %w", sum.lastLine, runErr)
	}
	return nil
}

// eventsSummary counts the rows answered, in the file's order.
type eventsSummary struct {
	rows, applied, duplicates, rejected, unreadable, retried int
	lastLine                                                 int64 // the last line answered
}

func (s *eventsSummary) detail() string {
	return fmt.Sprintf("%d applied, %d duplicates, %d rejected", s.applied, s.duplicates, s.rejected+s.unreadable)
}

// eventRow is one row of the file: an event to send, or why it cannot be.
type eventRow struct {
	line int64
	ev   client.Event
	bad  []rowProblem // not sent when set
}

type rowProblem struct{ field, description string }

// eventBatch is rows of the file in order, the readable ones sent as one
// RecordEvents call.
type eventBatch struct {
	seq     int
	rows    []eventRow
	results []client.EventResult // one per readable row, in order
	retried int
	err     error
}

// importEvents reads src in batches, sends them on concurrency calls at
// once, and hands each batch's answers, in the file's order, to the
// report and the summary. It stops at the first batch that could not be
// sent (after retries), or that src could not be read past.
func importEvents(ctx context.Context, c *client.Client, src *eventRows, size, concurrency int, report *errorReport, prog *progress) (*eventsSummary, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	todo := make(chan *eventBatch, concurrency)
	done := make(chan *eventBatch, concurrency)
	var readErr error
	go func() { // the reader
		defer close(todo)
		for seq := 0; ; seq++ {
			b := &eventBatch{seq: seq}
			n, bytes := 0, 0
			for n < size && bytes < eventsBatchBytes {
				row, err := src.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					readErr = err
					break
				}
				b.rows = append(b.rows, row)
				if row.bad == nil {
					n++
					bytes += eventBytes(&row.ev)
				}
			}
			if len(b.rows) > 0 {
				select {
				case todo <- b:
				case <-ctx.Done():
					return
				}
			}
			if n < size && bytes < eventsBatchBytes {
				return // the end of the file, or an error reading it
			}
		}
	}()
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() { // a sender
			defer wg.Done()
			for b := range todo {
				sendEventBatch(ctx, c, b)
				select {
				case done <- b:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()

	sum := &eventsSummary{}
	waiting := map[int]*eventBatch{}
	next := 0
	var err error
	for b := range done {
		if err != nil {
			continue // draining, after the first failure
		}
		waiting[b.seq] = b
		for b := waiting[next]; b != nil; b = waiting[next] {
			delete(waiting, next)
			next++
			if b.err != nil {
				err = b.err
				cancel()
				break
			}
			if werr := answerBatch(b, sum, report); werr != nil {
				err = werr
				cancel()
				break
			}
			prog.countWith(sum.rows, sum.detail())
		}
	}
	if err == nil && ctx.Err() == nil {
		err = readErr
	}
	if err == nil {
		err = ctx.Err()
	}
	return sum, err
}

// eventBytes is about what an event costs of a request's size.
func eventBytes(e *client.Event) int {
	return 48 + len(e.ID) + len(e.HCPID) + len(e.ActionID) + len(e.Topic) + len(e.DecisionID) + len(e.MessageID) + len(e.ReservationID)
}

// sendEventBatch sends b's readable rows, again after a failure of the
// server's or the network's, and sets b.results or b.err.
func sendEventBatch(ctx context.Context, c *client.Client, b *eventBatch) {
	var events []client.Event
	for i := range b.rows {
		if b.rows[i].bad == nil {
			events = append(events, b.rows[i].ev)
		}
	}
	if len(events) == 0 {
		return
	}
	for attempt := 0; ; attempt++ {
		b.results, b.err = c.RecordEvents(ctx, events)
		code := status.Code(b.err)
		if b.err == nil || attempt >= eventsRetries || ctx.Err() != nil ||
			code != codes.Unavailable && code != codes.ResourceExhausted && code != codes.DeadlineExceeded {
			return
		}
		b.retried++
		select {
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		case <-ctx.Done():
			return
		}
	}
}

// answerBatch counts b's answers and reports its rejected rows.
func answerBatch(b *eventBatch, sum *eventsSummary, report *errorReport) error {
	sum.retried += b.retried
	k := 0
	for i := range b.rows {
		row := &b.rows[i]
		sum.rows++
		sum.lastLine = row.line
		if row.bad != nil {
			sum.unreadable++
			for _, p := range row.bad {
				if err := report.add(row.line, row.ev.ID, p.field, "not sent", p.description); err != nil {
					return err
				}
			}
			continue
		}
		r := b.results[k]
		k++
		switch r.Outcome {
		case client.EventApplied:
			sum.applied++
		case client.EventDuplicate:
			sum.duplicates++
		default:
			sum.rejected++
			if len(r.Violations) == 0 {
				r.Violations = []client.FieldViolation{{Description: "rejected"}}
			}
			for _, v := range r.Violations {
				// The column's name: the path without "events[i].".
				field := v.Field
				if _, rest, ok := strings.Cut(field, "]."); ok && strings.HasPrefix(field, "events[") {
					field = rest
				}
				if err := report.add(row.line, row.ev.ID, field, r.Code.String(), v.Description); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// errorReport writes the rejected rows: to a CSV file, or the first few
// to w.
type errorReport struct {
	w     io.Writer
	f     *os.File
	csv   *csv.Writer
	shown int
	more  int
}

const errorsShown = 10

func newErrorReport(w io.Writer, name string) (*errorReport, error) {
	r := &errorReport{w: w}
	if name == "" {
		return r, nil
	}
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	r.f, r.csv = f, csv.NewWriter(bufio.NewWriter(f))
	return r, r.csv.Write([]string{"line", "event_id", "field", "status", "description"})
}

func (r *errorReport) add(line int64, eventID, field, st, description string) error {
	if r.csv != nil {
		return r.csv.Write([]string{fmt.Sprint(line), eventID, field, st, description})
	}
	if r.shown == errorsShown {
		r.more++
		return nil
	}
	r.shown++
	if field == "" {
		field = "-"
	}
	fmt.Fprintf(r.w, "\rline %d: %s: %s (%s)\n", line, field, description, st)
	return nil
}

func (r *errorReport) close() error {
	if r.csv == nil {
		if r.more > 0 {
			fmt.Fprintf(r.w, "... and %d more rejected (-errors FILE writes every one)\n", r.more)
		}
		return nil
	}
	r.csv.Flush()
	err := r.csv.Error()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.csv = nil
	return err
}

// eventRows reads an events file, one row at a time.
type eventRows struct {
	next  func() (eventRow, error)
	size  int64        // the file's size (0: unknown)
	read  func() int64 // bytes read so far
	close func()
}

func openEventRows(e *env, name, format string) (*eventRows, error) {
	var (
		in   io.Reader = e.stdin
		size int64
		cl   = func() {}
	)
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
		in, cl = f, func() { f.Close() }
	}
	cr := &countingReader{r: in}
	br := bufio.NewReaderSize(cr, 64<<10)
	rows := &eventRows{size: size, read: cr.n, close: cl}
	if format == "jsonl" {
		var line int64
		rows.next = func() (eventRow, error) {
			for {
				text, err := br.ReadString('\n')
				if text == "" && err != nil {
					return eventRow{}, err
				}
				line++
				if strings.TrimSpace(text) == "" {
					continue
				}
				return jsonEventRow(line, text), nil
			}
		}
		return rows, nil
	}
	r := csv.NewReader(br)
	header, err := r.Read()
	if err != nil {
		cl()
		return nil, fmt.Errorf("%s: reading the CSV header: %v", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.ToLower(strings.TrimPrefix(h, "\ufeff")))
		if !slices.Contains(eventColumns, h) {
			cl()
			return nil, usagef("%s: the CSV header names %q, which is not a column of an event (%s)", name, h, strings.Join(eventColumns, ", "))
		}
		if _, dup := col[h]; dup {
			cl()
			return nil, usagef("%s: the CSV header names %q twice", name, h)
		}
		col[h] = i
	}
	for _, h := range eventColumns[:requiredEventColumns] {
		if _, ok := col[h]; !ok {
			cl()
			return nil, usagef("%s: the CSV header must name the columns %s", name, strings.Join(eventColumns[:requiredEventColumns], ", "))
		}
	}
	rows.next = func() (eventRow, error) {
		rec, err := r.Read()
		var perr *csv.ParseError
		switch {
		case errors.As(err, &perr):
			// A row the CSV reader cannot split (a stray quote, a missing
			// field): reported, and the reading goes on at the next row.
			return eventRow{line: int64(perr.StartLine), bad: []rowProblem{{"", perr.Err.Error()}}}, nil
		case err != nil:
			return eventRow{}, err
		}
		line, _ := r.FieldPos(0)
		return parseEventRow(int64(line), func(name string) (string, bool) {
			i, ok := col[name]
			if !ok {
				return "", false
			}
			return strings.TrimSpace(rec[i]), true
		}), nil
	}
	return rows, nil
}

// jsonEventRow reads one JSON Lines row: an object whose keys are the
// columns, each a string.
func jsonEventRow(line int64, text string) eventRow {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return eventRow{line: line, bad: []rowProblem{{"", "not a JSON object: " + err.Error()}}}
	}
	vals := map[string]string{}
	var bad []rowProblem
	for k, raw := range obj {
		if !slices.Contains(eventColumns, k) {
			bad = append(bad, rowProblem{k, "not a field of an event"})
			continue
		}
		var v string
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &v); err != nil {
				bad = append(bad, rowProblem{k, "must be a JSON string"})
				continue
			}
		}
		vals[k] = strings.TrimSpace(v)
	}
	row := parseEventRow(line, func(name string) (string, bool) { v, ok := vals[name]; return v, ok })
	if bad != nil {
		slices.SortFunc(bad, func(a, b rowProblem) int { return strings.Compare(a.field, b.field) })
		for _, p := range row.bad { // a field reported already is not also "required"
			if !slices.ContainsFunc(bad, func(q rowProblem) bool { return q.field == p.field }) {
				bad = append(bad, p)
			}
		}
		row.bad = bad
	}
	return row
}

// parseEventRow makes the event of one row from its columns' values: the
// required ones present, the enums known (by name: "opened", or the
// API's "EVENT_TYPE_OPENED"), the time RFC 3339. Everything else is the
// server's to check.
func parseEventRow(line int64, get func(string) (string, bool)) eventRow {
	row := eventRow{line: line}
	v := func(name string) string { s, _ := get(name); return s }
	ev := &row.ev
	ev.ID, ev.HCPID, ev.ActionID, ev.Topic = v("event_id"), v("hcp_id"), v("action_id"), v("topic")
	ev.DecisionID, ev.MessageID, ev.ReservationID = v("decision_id"), v("message_id"), v("reservation_id")
	for _, name := range eventColumns[:requiredEventColumns] {
		if v(name) == "" {
			row.bad = append(row.bad, rowProblem{name, "required"})
		}
	}
	if s := v("type"); s != "" {
		t, ok := arbiter.ParseEventType(enumName(s, "event_type_"))
		if !ok {
			row.bad = append(row.bad, rowProblem{"type", fmt.Sprintf("unknown event type %q", s)})
		}
		ev.Type = t
	}
	if s := v("channel"); s != "" {
		ch, ok := arbiter.ParseChannel(enumName(s, "channel_"))
		if !ok {
			row.bad = append(row.bad, rowProblem{"channel", fmt.Sprintf("unknown channel %q", s)})
		}
		ev.Channel = ch
	}
	if s := v("purpose"); s != "" {
		pu, ok := arbiter.ParsePurpose(enumName(s, "purpose_"))
		if !ok {
			row.bad = append(row.bad, rowProblem{"purpose", fmt.Sprintf("unknown purpose %q", s)})
		}
		ev.Purpose = pu
	}
	if s := v("occurred_at"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			row.bad = append(row.bad, rowProblem{"occurred_at", "not an RFC 3339 time (2026-11-26T09:30:00Z)"})
		}
		ev.OccurredAt = t
	}
	return row
}

// enumName is the domain's name of an enum value given by name, in any
// case, with or without the API's prefix ("EVENT_TYPE_OPENED": "opened").
func enumName(s, prefix string) string {
	s = strings.ToLower(s)
	return strings.TrimPrefix(s, prefix)
}
