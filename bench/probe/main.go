// Command probe is a small closed-loop gRPC client for cross-checking ghz:
// c goroutines, each sending one call at a time for a fixed duration, with
// the generated Go types instead of ghz's dynamic messages, so that the
// client's own encoding costs as little as the server's. It prints one JSON
// line: calls, errors, seconds, rps and latency percentiles in milliseconds
// (the calls that failed are counted in errors and left out of the rest).
//
//	probe -addr 127.0.0.1:50051 -call decide -c 1 -d 10s [-hcps 10000] [-candidates 50]
//	probe -addr 127.0.0.1:50051 -call decide -c 1 -d 10s -requests decide.bin
//	probe -addr 127.0.0.1:50051 -call health -c 1 -d 10s
//	probe -url http://127.0.0.1:8080 -call http-decide -c 16 -d 10s   # POST /v1/recipients/{id}:decide, JSON
//	probe -url http://127.0.0.1:8081/ -call http-get -c 16 -d 10s     # GET the URL (a trivial handler)
//
// The HTTP calls go over HTTP/1.1 with keep-alive (as an Apex callout or a
// browser's fetch does), -c connections at most; the JSON body is the
// Decide request protojson writes, with the proto's field names.
//
// With -requests, Decide sends the messages of that file (bench/requests'
// output, the very file ghz is given), call i the (i mod n)-th. Without it,
// it builds the requests bench/requests builds by default: the first
// -candidates actions of the demo catalog, limit 3, a rep tool calling,
// hcp_id round-robin over HCP-000001 to -hcps.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

type result struct {
	Call    string  `json:"call"`
	C       int     `json:"c"`
	Calls   int     `json:"calls"`
	Errors  int64   `json:"errors"`
	Seconds float64 `json:"seconds"`
	RPS     float64 `json:"rps"`
	P50     float64 `json:"p50_ms"`
	P90     float64 `json:"p90_ms"`
	P99     float64 `json:"p99_ms"`
}

func run(args []string) error {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:50051", "server address")
	call := fs.String("call", "decide", "decide (nba.v1.DecisionService/Decide), health (grpc.health.v1.Health/Check), http-decide (POST -url/v1/recipients/{id}:decide) or http-get (GET -url)")
	baseURL := fs.String("url", "http://127.0.0.1:8080", "the HTTP base URL (http-decide) or URL (http-get)")
	c := fs.Int("c", 1, "concurrent callers")
	conns := fs.Int("connections", 1, "connections, shared round-robin by the callers")
	d := fs.Duration("d", 10*time.Second, "duration")
	hcps := fs.Int("hcps", demo.Size, "HCPs to spread Decide calls over")
	candidates := fs.Int("candidates", 50, "candidates per Decide: the first n demo catalog actions")
	reqFile := fs.String("requests", "", "Decide requests in ghz's binary format (bench/requests); overrides -hcps and -candidates")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *c < 1 || *conns < 1 || *hcps < 1 {
		return fmt.Errorf("-c, -connections and -hcps must be at least 1")
	}
	actions := catalog.Demo().Actions
	if *candidates < 0 || *candidates > len(actions) {
		return fmt.Errorf("-candidates: the demo catalog has %d actions", len(actions))
	}
	ids := make([]string, *candidates)
	for i, a := range actions[:*candidates] {
		ids[i] = a.ID
	}
	reqs := make([]*nbapb.DecideRequest, *hcps)
	for i := range reqs {
		reqs[i] = &nbapb.DecideRequest{HcpId: demo.HCPID(i + 1), Limit: 3, Candidates: ids,
			Context: &nbapb.DecisionContext{Caller: nbapb.CallerKind_CALLER_KIND_REP_TOOL}}
	}
	if *reqFile != "" {
		var err error
		if reqs, err = readRequests(*reqFile); err != nil {
			return err
		}
	}

	var ccs []*grpc.ClientConn
	if strings.HasPrefix(*call, "http-") {
		*conns = 1 // the HTTP client pools its own connections
	}
	for range *conns {
		cc, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		ccs = append(ccs, cc)
	}
	var do func(ctx context.Context, cc *grpc.ClientConn, i int) error
	switch *call {
	case "decide":
		do = func(ctx context.Context, cc *grpc.ClientConn, i int) error {
			_, err := nbapb.NewDecisionServiceClient(cc).Decide(ctx, reqs[i%len(reqs)])
			return err
		}
	case "health":
		do = func(ctx context.Context, cc *grpc.ClientConn, _ int) error {
			_, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}
	case "http-decide", "http-get":
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c, MaxConnsPerHost: *c}, Timeout: 10 * time.Second}
		bodies := make([][]byte, len(reqs))
		for i, r := range reqs {
			id := r.GetHcpId()
			r = proto.CloneOf(r)
			r.HcpId = "" // in the path
			b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
			if err != nil {
				return err
			}
			bodies[i] = b
			reqs[i] = &nbapb.DecideRequest{HcpId: id}
		}
		do = func(ctx context.Context, _ *grpc.ClientConn, i int) error {
			var req *http.Request
			var err error
			if *call == "http-get" {
				req, err = http.NewRequestWithContext(ctx, "GET", *baseURL, nil)
			} else {
				k := i % len(reqs)
				req, err = http.NewRequestWithContext(ctx, "POST", *baseURL+"/v1/recipients/"+reqs[k].GetHcpId()+":decide",
					bytes.NewReader(bodies[k]))
				if req != nil {
					req.Header.Set("Content-Type", "application/json")
				}
			}
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("HTTP %d", resp.StatusCode)
			}
			return err
		}
	default:
		return fmt.Errorf("-call: want decide, health, http-decide or http-get, got %q", *call)
	}
	for _, cc := range ccs { // connect before the clock starts
		if err := do(context.Background(), cc, 0); err != nil {
			return err
		}
	}

	var next, errs atomic.Int64
	lat := make([][]time.Duration, *c)
	ctx, cancel := context.WithTimeout(context.Background(), *d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc := ccs[w%len(ccs)]
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				t := time.Now()
				if err := do(context.Background(), cc, i); err != nil {
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
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[int(p*float64(len(all)-1))]) / 1e6
	}
	return json.NewEncoder(os.Stdout).Encode(result{
		Call: *call, C: *c, Calls: len(all), Errors: errs.Load(), Seconds: elapsed.Seconds(),
		RPS: float64(len(all)) / elapsed.Seconds(),
		P50: pct(0.50), P90: pct(0.90), P99: pct(0.99),
	})
}

// readRequests reads length-delimited DecideRequests (ghz's binary format).
func readRequests(path string) ([]*nbapb.DecideRequest, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reqs []*nbapb.DecideRequest
	for len(data) > 0 {
		size, n := protowire.ConsumeVarint(data)
		if n < 0 || uint64(len(data)-n) < size {
			return nil, fmt.Errorf("%s: message %d: bad length", path, len(reqs)+1)
		}
		req := &nbapb.DecideRequest{}
		if err := proto.Unmarshal(data[n:n+int(size)], req); err != nil {
			return nil, fmt.Errorf("%s: message %d: %w", path, len(reqs)+1, err)
		}
		reqs = append(reqs, req)
		data = data[n+int(size):]
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("%s: no requests", path)
	}
	return reqs, nil
}
