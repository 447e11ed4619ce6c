package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/ordered"
)

// batchLine is one HCP's answer in batch's JSON Lines output.
type batchLine struct {
	HCPID string `json:"hcp_id"`
	// Decision is the decision id; Action and Channel the top
	// recommendation, empty when nothing may be sent.
	Decision string `json:"decision_id,omitempty"`
	Action   string `json:"action,omitempty"`
	Channel  string `json:"channel,omitempty"`
	Error    string `json:"error,omitempty"`
}

func batchCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "batch", "(-ids FILE | -demo N) [-size N] [-parallel N] [-unary] [-set NAME | -candidates a,b] [-limit N] [-caller KIND] [-channels email] [-at TIME] [-quiet]")
	conn := addConnFlags(fs, e)
	var (
		idsFile        string
		demoN          int
		size, parallel int
		quiet, unary   bool
		opts           client.DecideOptions
	)
	opts.Caller = arbiter.CallerMarketingPlatform
	fs.StringVar(&idsFile, "ids", "", "`file` of HCP ids, one per line; - for standard input")
	fs.IntVar(&demoN, "demo", 0, "decide for the demo HCPs HCP-000001 to this `number` instead of -ids")
	fs.IntVar(&size, "size", client.MaxBatch, "HCPs per DecideBatch call, 1 to 1000")
	fs.IntVar(&parallel, "parallel", 4, "DecideBatch calls in flight")
	fs.IntVar(&opts.Limit, "limit", 1, "recommendations per HCP, 1 to 50")
	fs.Var(listValue{&opts.Candidates}, "candidates", "action `ids` to consider, comma-separated (default: the whole catalog)")
	fs.StringVar(&opts.CandidateSet, "set", "", "a candidate set of the catalog, e.g. hcp-email (instead of -candidates)")
	enumVar(fs, &opts.Caller, "caller", arbiter.ParseCallerKind, "`kind` of caller (default marketing_platform)")
	enumListVar(fs, &opts.Channels, "channels", arbiter.ParseChannel, "only these `channels` (default: all)")
	timeVar(fs, &opts.At, "at", "when the actions would happen: now or ahead, at most 5 minutes past (default: the server's clock)")
	fs.BoolVar(&quiet, "quiet", false, "print only the summary, not a JSON line per HCP")
	fs.BoolVar(&unary, "unary", false, "send one Decide per HCP instead, -parallel at a time (to compare)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case (idsFile == "") == (demoN == 0):
		return usagef("give either -ids or -demo")
	case demoN < 0 || demoN > 10000000:
		return usagef("-demo: want 1 to 10000000 HCPs, got %d", demoN)
	case size < 1 || size > client.MaxBatch:
		return usagef("-size: want 1 to %d, got %d", client.MaxBatch, size)
	case parallel < 1 || parallel > 64:
		return usagef("-parallel: want 1 to 64, got %d", parallel)
	}
	ids, err := batchIDs(e, idsFile, demoN)
	if err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if unary {
		size = 1 // one HCP per unit of work, -parallel of them in flight
	}
	// Units of work (a DecideBatch call, or one Decide) run -parallel at a
	// time, at most 2 x -parallel ahead of the one being printed, and are
	// printed in order as they complete, then dropped: memory stays flat
	// however long the list. The first failure, in the list's order, stops
	// the rest.
	start := time.Now()
	units := (len(ids) + size - 1) / size
	workers := min(parallel, units)
	type unit struct {
		items []client.BatchItem
		err   error
	}
	work := make([]unit, units)
	chunk := func(k int) []string { return ids[k*size : min((k+1)*size, len(ids))] }
	call := func(ctx context.Context, k int) {
		u := &work[k]
		if !unary {
			u.items, u.err = c.DecideBatch(ctx, chunk(k), opts)
			return
		}
		id := chunk(k)[0]
		d, err := c.Decide(ctx, id, opts)
		if err == nil || status.Code(err) == codes.NotFound {
			u.items = []client.BatchItem{{HCPID: id, Decision: d, Err: err}}
		} else {
			u.err = err
		}
	}

	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var decided, failed, nothing int
	byChannel := map[string]int{}
	byReason := map[string]int{}
	emit := func(k int) error {
		u := &work[k]
		for _, it := range u.items {
			line := batchLine{HCPID: it.HCPID}
			switch {
			case it.Err != nil:
				failed++
				line.Error = status.Convert(it.Err).Code().String()
			default:
				decided++
				line.Decision = it.Decision.ID
				if len(it.Decision.Recommendations) == 0 {
					nothing++
				} else {
					r := it.Decision.Recommendations[0]
					line.Action, line.Channel = r.ActionID, fmtName(r.Channel)
					byChannel[line.Channel]++
				}
				for _, s := range it.Decision.Suppressed {
					byReason[string(s.Reason)]++
				}
			}
			if !quiet {
				if err := enc.Encode(line); err != nil {
					return err
				}
			}
		}
		if u.err != nil {
			return fmt.Errorf("HCPs %d to %d: %w", k*size+1, min((k+1)*size, len(ids)), u.err)
		}
		u.items = nil
		return nil
	}
	if err := ordered.Run(ctx, units, workers, 2*parallel, call, emit); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := w.Flush(); err != nil {
		return err
	}
	how := fmt.Sprintf("%d DecideBatch calls of up to %d, %d in flight", units, size, workers)
	if unary {
		how = fmt.Sprintf("one Decide each, %d in flight", workers)
	}
	fmt.Fprintf(e.stderr, "%d HCPs in %s (%.0f per second; %s): %d decided (%d with nothing to send), %d not decided\n",
		len(ids), elapsed.Round(time.Millisecond), float64(len(ids))/elapsed.Seconds(), how, decided, nothing, failed)
	fmt.Fprintf(e.stderr, "top recommendation by channel: %s\nsuppressed by reason: %s\n", counts(byChannel), counts(byReason))
	return nil
}

// batchIDs reads the ids of -ids, or names the first n demo HCPs.
func batchIDs(e *env, file string, n int) ([]string, error) {
	if n > 0 {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = demo.HCPID(i + 1)
		}
		return ids, nil
	}
	var r io.Reader = e.stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var ids []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if id := strings.TrimSpace(sc.Text()); id != "" {
			ids = append(ids, id)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, usagef("-ids %s: no HCP id", file)
	}
	return ids, nil
}

// counts formats a tally as "a 3, b 1", largest first.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
