// Command ledger measures what a recipient's consent ledger costs as it
// grows, against a running arbiter: -changes SetConsent calls to one
// recipient (-hcp), one at a time, alternating opt_in and opt_out on email
// promotional with capture times 1 ms apart (so every change applies and
// is appended), each call's latency recorded; and after every -block
// changes (and once before the first), a -decide-seconds closed loop of
// Decide calls by -workers goroutines over the other recipients, whose
// throughput must not depend on one recipient's ledger.
//
// The two loads alternate rather than overlap so that each is measured on
// its own: SetConsent latency is then the cost of one change at that
// ledger length, not of a change queued behind decisions, and the Decide
// rate is what the server does for others once the ledger is that long.
//
// It prints Markdown: a table per block of -block changes and a summary
// with the bars (SetConsent p50 of the last block <= 1.2 x the first's;
// Decide rps of the last block within 10% of the first's), then reads the
// recipient's ledger length (GetConsentHistory total) to confirm that every
// change was recorded. -json writes the same figures as JSON.
//
// With -server-pid and -redis-pid (processes on this machine) each block
// also gets the CPU time arbiter and Redis spent per change, from
// /proc/PID/stat; with -aof-dir (Redis's appendonlydir) the bytes the
// append-only file grew by per change.
//
//	ledger -addr 127.0.0.1:50051 -requests decide-100.bin -changes 10000 -block 500 -json ledger.json
//
// Decide requests come from -requests (bench/requests' output, the file
// ghz is given; messages for -hcp are skipped) or, without it, name no
// candidates (the whole catalog) for HCP-000002 to -hcps.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ledger:", err)
		os.Exit(1)
	}
}

type config struct {
	Addr          string  `json:"addr"`
	HCP           string  `json:"hcp"`
	Changes       int     `json:"changes"`
	Block         int     `json:"block"`
	DecideSeconds float64 `json:"decide_seconds"`
	Workers       int     `json:"workers"`
	Connections   int     `json:"connections"`
	HCPs          int     `json:"hcps"`
	Requests      string  `json:"requests,omitempty"`
}

// block is one -block of changes and the Decide window after it. Block 0
// has no changes: the Decide window before the first.
type block struct {
	Block         int     `json:"block"`
	Changes       int     `json:"changes"`
	LedgerAfter   int64   `json:"ledger_entries_after"`
	SetP50        float64 `json:"set_p50_ms"`
	SetP90        float64 `json:"set_p90_ms"`
	SetP99        float64 `json:"set_p99_ms"`
	SetMax        float64 `json:"set_max_ms"`
	SetMean       float64 `json:"set_mean_ms"`
	NotApplied    int     `json:"not_applied"`
	ServerUS      float64 `json:"server_us_per_change,omitempty"`
	RedisUS       float64 `json:"redis_us_per_change,omitempty"`
	AOFBytes      float64 `json:"aof_bytes_per_change,omitempty"`
	AOFSize       int64   `json:"aof_bytes_after,omitempty"`
	DecideCalls   int     `json:"decide_calls"`
	DecideErrors  int64   `json:"decide_errors"`
	DecideRPS     float64 `json:"decide_rps"`
	DecideP50     float64 `json:"decide_p50_ms"`
	DecideP99     float64 `json:"decide_p99_ms"`
	DecideSeconds float64 `json:"decide_seconds"`
}

type report struct {
	Config        config  `json:"config"`
	Start         string  `json:"start"`
	LedgerBefore  int64   `json:"ledger_entries_before"`
	LedgerAfter   int64   `json:"ledger_entries_after"`
	HistoryMS     float64 `json:"history_last_page_ms"`
	SetSeconds    float64 `json:"set_seconds"`
	Blocks        []block `json:"blocks"`
	SetP50Ratio   float64 `json:"set_p50_last_over_first"`
	SetP99Ratio   float64 `json:"set_p99_last_over_first"`
	DecideRatio   float64 `json:"decide_rps_last_over_first"`
	SetBarMet     bool    `json:"set_bar_met"`
	DecideBarMet  bool    `json:"decide_bar_met"`
	LedgerCounted bool    `json:"ledger_counted"`
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ledger", flag.ContinueOnError)
	var cfg config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:50051", "arbiter's gRPC address")
	fs.StringVar(&cfg.HCP, "hcp", "HCP-000001", "the recipient whose ledger grows")
	fs.IntVar(&cfg.Changes, "changes", 10000, "SetConsent calls to -hcp")
	fs.IntVar(&cfg.Block, "block", 500, "changes per block: a Decide window follows each block")
	fs.Float64Var(&cfg.DecideSeconds, "decide-seconds", 2, "length of each Decide window, seconds")
	fs.IntVar(&cfg.Workers, "workers", 8, "concurrent Decide callers (closed loop)")
	fs.IntVar(&cfg.Connections, "connections", 4, "connections the Decide callers share (at most -workers)")
	fs.IntVar(&cfg.HCPs, "hcps", 10000, "without -requests: decide for HCP-000001 to this one, -hcp excepted")
	fs.StringVar(&cfg.Requests, "requests", "", "Decide requests in ghz's binary format (bench/requests); those for -hcp are skipped")
	jsonOut := fs.String("json", "", "also write the figures as JSON to this file")
	serverPID := fs.Int("server-pid", 0, "arbiter's pid on this machine: CPU per change from /proc (0: not measured)")
	redisPID := fs.Int("redis-pid", 0, "redis-server's pid on this machine: CPU per change from /proc (0: not measured)")
	aofDir := fs.String("aof-dir", "", "Redis's append-only file directory: bytes written per change (empty: not measured)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Changes < 1 || cfg.Block < 1 || cfg.Changes%cfg.Block != 0 {
		return fmt.Errorf("-changes must be a positive multiple of -block (got %d and %d)", cfg.Changes, cfg.Block)
	}
	if cfg.Workers < 1 || cfg.Connections < 1 || cfg.DecideSeconds <= 0 {
		return fmt.Errorf("-workers, -connections and -decide-seconds must be positive")
	}
	cfg.Connections = min(cfg.Connections, cfg.Workers)
	reqs, err := decideRequests(cfg)
	if err != nil {
		return err
	}

	// One connection for the consent calls, others for the Decide callers,
	// so that a long SetConsent never shares a connection's flow control
	// with the decisions (the loads alternate anyway).
	conns := make([]*grpc.ClientConn, cfg.Connections+1)
	for i := range conns {
		if conns[i], err = grpc.NewClient(cfg.Addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	consentc := nbapb.NewConsentServiceClient(conns[0])
	deciders := make([]nbapb.DecisionServiceClient, cfg.Connections)
	for i := range deciders {
		deciders[i] = nbapb.NewDecisionServiceClient(conns[i+1])
	}

	ctx := context.Background()
	rep := report{Config: cfg, Start: time.Now().UTC().Format(time.RFC3339)}
	if rep.LedgerBefore, err = ledgerLength(ctx, consentc, cfg.HCP); err != nil {
		return fmt.Errorf("GetConsentHistory %s before: %w", cfg.HCP, err)
	}
	fmt.Fprintf(os.Stderr, "ledger: %s has %d ledger entries; %d changes in blocks of %d, Decide windows of %gs with %d workers\n",
		cfg.HCP, rep.LedgerBefore, cfg.Changes, cfg.Block, cfg.DecideSeconds, cfg.Workers)

	window := time.Duration(cfg.DecideSeconds * float64(time.Second))
	b0 := block{LedgerAfter: rep.LedgerBefore}
	decide(deciders, reqs, cfg.Workers, window, &b0)
	rep.Blocks = append(rep.Blocks, b0)

	// Capture times a day in the past (the server refuses future ones),
	// 1 ms apart and increasing: each change is later than the current
	// record for its scope, so each applies, and is appended either way.
	base := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond)
	lat := make([]time.Duration, 0, cfg.Block)
	setStart := time.Now()
	for b := 1; b <= cfg.Changes/cfg.Block; b++ {
		blk := block{Block: b, Changes: cfg.Block}
		cpu0 := cpuSeconds(*serverPID, *redisPID)
		aof0 := dirSize(*aofDir)
		lat = lat[:0]
		for k := range cfg.Block {
			i := (b-1)*cfg.Block + k
			status := nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN
			if i%2 == 1 {
				status = nbapb.ConsentStatus_CONSENT_STATUS_OPT_OUT
			}
			req := &nbapb.SetConsentRequest{HcpId: cfg.HCP, Record: &nbapb.ConsentRecord{
				Channel: nbapb.Channel_CHANNEL_EMAIL, Purpose: nbapb.Purpose_PURPOSE_PROMOTIONAL, Status: status,
				CapturedAt: timestamppb.New(base.Add(time.Duration(i) * time.Millisecond)),
				Source:     "bench", CapturedBy: "bench/ledger",
			}}
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			t := time.Now()
			resp, err := consentc.SetConsent(cctx, req)
			d := time.Since(t)
			cancel()
			if err != nil {
				return fmt.Errorf("SetConsent %d of %d: %w", i+1, cfg.Changes, err)
			}
			lat = append(lat, d)
			if !resp.GetEntry().GetApplied() {
				blk.NotApplied++
			}
			blk.LedgerAfter = resp.GetEntry().GetSeq() + 1
		}
		cpu1 := cpuSeconds(*serverPID, *redisPID)
		aof1 := dirSize(*aofDir)
		if *serverPID > 0 {
			blk.ServerUS = (cpu1[0] - cpu0[0]) / float64(cfg.Block) * 1e6
		}
		if *redisPID > 0 {
			blk.RedisUS = (cpu1[1] - cpu0[1]) / float64(cfg.Block) * 1e6
		}
		if *aofDir != "" {
			blk.AOFBytes = float64(aof1-aof0) / float64(cfg.Block)
			blk.AOFSize = aof1
		}
		blk.SetP50, blk.SetP90, blk.SetP99, blk.SetMax, blk.SetMean = summarize(lat)
		decide(deciders, reqs, cfg.Workers, window, &blk)
		rep.Blocks = append(rep.Blocks, blk)
		fmt.Fprintf(os.Stderr, "ledger: block %d: %d entries, SetConsent p50 %.3f ms p99 %.3f ms; Decide %.0f rps\n",
			b, blk.LedgerAfter, blk.SetP50, blk.SetP99, blk.DecideRPS)
	}
	rep.SetSeconds = time.Since(setStart).Seconds()

	if rep.LedgerAfter, err = ledgerLength(ctx, consentc, cfg.HCP); err != nil {
		return fmt.Errorf("GetConsentHistory %s after: %w", cfg.HCP, err)
	}
	rep.LedgerCounted = rep.LedgerAfter == rep.LedgerBefore+int64(cfg.Changes)
	// A reader of the ledger pays for its length too: time the page an
	// auditor reads last, the newest 100 entries.
	t := time.Now()
	if _, err := consentc.GetConsentHistory(ctx, &nbapb.GetConsentHistoryRequest{
		HcpId: cfg.HCP, Offset: int32(max(rep.LedgerAfter-100, 0)), Limit: 100}); err != nil {
		return fmt.Errorf("GetConsentHistory %s, last page: %w", cfg.HCP, err)
	}
	rep.HistoryMS = float64(time.Since(t)) / 1e6

	first, last := rep.Blocks[1], rep.Blocks[len(rep.Blocks)-1]
	rep.SetP50Ratio = last.SetP50 / first.SetP50
	rep.SetP99Ratio = last.SetP99 / first.SetP99
	rep.DecideRatio = last.DecideRPS / first.DecideRPS
	rep.SetBarMet = rep.SetP50Ratio <= 1.2
	rep.DecideBarMet = rep.DecideRatio >= 0.9 && rep.DecideRatio <= 1.1

	if *jsonOut != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	printReport(stdout, &rep, *serverPID > 0, *redisPID > 0, *aofDir != "")
	if !rep.LedgerCounted {
		return fmt.Errorf("%s's ledger has %d entries, want %d before + %d changes", cfg.HCP, rep.LedgerAfter, rep.LedgerBefore, cfg.Changes)
	}
	return nil
}

// decideRequests returns the Decide requests of the closed loops: those of
// -requests for recipients other than -hcp, or one per other demo HCP
// naming no candidates.
func decideRequests(cfg config) ([]*nbapb.DecideRequest, error) {
	var reqs []*nbapb.DecideRequest
	if cfg.Requests == "" {
		for i := 1; i <= cfg.HCPs; i++ {
			id := fmt.Sprintf("HCP-%06d", i)
			if id == cfg.HCP {
				continue
			}
			reqs = append(reqs, &nbapb.DecideRequest{HcpId: id, Limit: 3,
				Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}})
		}
	} else {
		data, err := os.ReadFile(cfg.Requests)
		if err != nil {
			return nil, err
		}
		for n := 1; len(data) > 0; n++ {
			size, k := protowire.ConsumeVarint(data)
			if k < 0 || uint64(len(data)-k) < size {
				return nil, fmt.Errorf("%s: message %d: bad length", cfg.Requests, n)
			}
			req := &nbapb.DecideRequest{}
			if err := proto.Unmarshal(data[k:k+int(size)], req); err != nil {
				return nil, fmt.Errorf("%s: message %d: %w", cfg.Requests, n, err)
			}
			data = data[k+int(size):]
			if req.GetHcpId() != cfg.HCP {
				reqs = append(reqs, req)
			}
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("no Decide requests for recipients other than %s", cfg.HCP)
	}
	return reqs, nil
}

// decide runs workers closed-loop Decide callers for d and records the
// throughput and latency of the calls that succeeded into b.
func decide(clients []nbapb.DecisionServiceClient, reqs []*nbapb.DecideRequest, workers int, d time.Duration, b *block) {
	var next, errs atomic.Int64
	lat := make([][]time.Duration, workers)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%len(clients)]
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				// Each call gets its own deadline, not the window's: a call
				// cut by the window's end would count as an error.
				cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
				t := time.Now()
				_, err := c.Decide(cctx, reqs[i%int64(len(reqs))])
				ccancel()
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	b.DecideCalls = len(all)
	b.DecideErrors = errs.Load()
	b.DecideSeconds = elapsed.Seconds()
	b.DecideRPS = float64(len(all)) / elapsed.Seconds()
	b.DecideP50, _, b.DecideP99, _, _ = summarize(all)
}

// summarize sorts lat and returns its p50, p90, p99, max and mean in ms.
func summarize(lat []time.Duration) (p50, p90, p99, maxMS, mean float64) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	pct := func(p float64) float64 { return ms(lat[int(p*float64(len(lat)-1))]) }
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	return pct(0.50), pct(0.90), pct(0.99), ms(lat[len(lat)-1]), ms(sum) / float64(len(lat))
}

// ledgerLength returns the number of entries in hcp's consent ledger.
func ledgerLength(ctx context.Context, c nbapb.ConsentServiceClient, hcp string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.GetConsentHistory(ctx, &nbapb.GetConsentHistoryRequest{HcpId: hcp, Limit: 1})
	if err != nil {
		return 0, err
	}
	return resp.GetTotal(), nil
}

// cpuSeconds returns the user + system CPU seconds the two processes have
// used so far (0 for a pid of 0 or one that cannot be read). /proc/PID/stat
// counts in clock ticks; Linux's USER_HZ is 100 on every architecture Go
// supports, and Go cannot ask sysconf without cgo.
func cpuSeconds(pids ...int) []float64 {
	out := make([]float64, len(pids))
	for i, pid := range pids {
		if pid <= 0 {
			continue
		}
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// The command name (field 2) may contain spaces; the fields after
		// its closing parenthesis start with field 3, so utime and stime
		// (fields 14 and 15) are the 12th and 13th of them.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		k, _ := strconv.ParseFloat(f[12], 64)
		out[i] = (u + k) / 100
	}
	return out
}

// dirSize returns the total size of the regular files in dir (Redis 7's
// appendonlydir: the base file, the incremental files and the manifest),
// 0 when dir is empty or unreadable.
func dirSize(dir string) int64 {
	if dir == "" {
		return 0
	}
	var total int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := os.Stat(filepath.Join(dir, e.Name())); err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
	}
	return total
}

func printReport(w io.Writer, r *report, server, redis, aof bool) {
	c := r.Config
	fmt.Fprintf(w, "%d SetConsent calls to %s, one at a time (email promotional, opt_in/opt_out alternating, capture times 1 ms apart, source \"bench\"), in blocks of %d; after each block (and before the first) Decide for the other recipients, %d closed-loop workers on %d connections for %gs.\n\n",
		c.Changes, c.HCP, c.Block, c.Workers, c.Connections, c.DecideSeconds)
	fmt.Fprint(w, "| block | ledger entries after | SetConsent p50 ms | p90 ms | p99 ms | max ms | mean ms | not applied |")
	sep := "|--:|--:|--:|--:|--:|--:|--:|--:|"
	if server {
		fmt.Fprint(w, " arbiter µs/change |")
		sep += "--:|"
	}
	if redis {
		fmt.Fprint(w, " redis µs/change |")
		sep += "--:|"
	}
	if aof {
		fmt.Fprint(w, " AOF bytes/change | AOF MB after |")
		sep += "--:|--:|"
	}
	fmt.Fprintln(w, " Decide rps | Decide p50 ms | Decide p99 ms | Decide errors |")
	fmt.Fprintln(w, sep+"--:|--:|--:|--:|")
	for _, b := range r.Blocks {
		if b.Block == 0 {
			fmt.Fprintf(w, "| before | %d | | | | | | |", b.LedgerAfter)
			for range btoi(server) + btoi(redis) + 2*btoi(aof) {
				fmt.Fprint(w, " |")
			}
		} else {
			fmt.Fprintf(w, "| %d | %d | %.3f | %.3f | %.3f | %.3f | %.3f | %d |", b.Block, b.LedgerAfter,
				b.SetP50, b.SetP90, b.SetP99, b.SetMax, b.SetMean, b.NotApplied)
			if server {
				fmt.Fprintf(w, " %.0f |", b.ServerUS)
			}
			if redis {
				fmt.Fprintf(w, " %.0f |", b.RedisUS)
			}
			if aof {
				fmt.Fprintf(w, " %.0f | %.1f |", b.AOFBytes, float64(b.AOFSize)/1e6)
			}
		}
		fmt.Fprintf(w, " %.0f | %.3f | %.3f | %d |\n", b.DecideRPS, b.DecideP50, b.DecideP99, b.DecideErrors)
	}
	first, last := r.Blocks[1], r.Blocks[len(r.Blocks)-1]
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Fprintf(w, "\n| | first block (changes 1–%d) | last block (changes %d–%d) | last / first |\n|---|--:|--:|--:|\n",
		c.Block, c.Changes-c.Block+1, c.Changes)
	fmt.Fprintf(w, "| SetConsent p50 ms | %.3f | %.3f | %.2f |\n", first.SetP50, last.SetP50, r.SetP50Ratio)
	fmt.Fprintf(w, "| SetConsent p99 ms | %.3f | %.3f | %.2f |\n", first.SetP99, last.SetP99, r.SetP99Ratio)
	if server {
		fmt.Fprintf(w, "| arbiter µs/change | %.0f | %.0f | %.2f |\n", first.ServerUS, last.ServerUS, last.ServerUS/first.ServerUS)
	}
	if redis {
		fmt.Fprintf(w, "| redis µs/change | %.0f | %.0f | %.2f |\n", first.RedisUS, last.RedisUS, last.RedisUS/first.RedisUS)
	}
	if aof {
		fmt.Fprintf(w, "| AOF bytes/change | %.0f | %.0f | %.2f |\n", first.AOFBytes, last.AOFBytes, last.AOFBytes/first.AOFBytes)
	}
	fmt.Fprintf(w, "| Decide rps (others), after the block | %.0f | %.0f | %.3f |\n", first.DecideRPS, last.DecideRPS, r.DecideRatio)
	fmt.Fprintf(w, "\n- bar: SetConsent p50, last block / first block <= 1.2: %.2f: %s\n", r.SetP50Ratio, verdict(r.SetBarMet))
	fmt.Fprintf(w, "- bar: Decide rps for other recipients, last block within 10%% of the first: %.3f: %s\n", r.DecideRatio, verdict(r.DecideBarMet))
	fmt.Fprintf(w, "- ledger of %s (GetConsentHistory total): %d before, %d after: %s\n", c.HCP, r.LedgerBefore, r.LedgerAfter,
		map[bool]string{true: fmt.Sprintf("all %d changes recorded", c.Changes), false: fmt.Sprintf("MISMATCH, want %d", r.LedgerBefore+int64(c.Changes))}[r.LedgerCounted])
	fmt.Fprintf(w, "- GetConsentHistory of the newest 100 entries, once at the end: %.3f ms\n", r.HistoryMS)
	fmt.Fprintf(w, "- the %d changes and their Decide windows took %.0f s\n", c.Changes, r.SetSeconds)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
