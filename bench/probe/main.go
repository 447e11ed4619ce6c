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
//	probe -call decide-batch -batch 100 -requests decide.bin -c 4 -d 10s    # DecideBatch, 100 HCPs a call
//	probe -call checksend-batch -batch 100 -requests decide.bin -c 4 -d 10s # CheckSendBatch, 100 checks a message
//	probe -call ping -token "$(cat token)" -c 16 -d 10s                      # Ping, with a bearer token
//
// decide-batch sends DecideBatch requests of -batch consecutive HCPs of the
// requests (their candidates, limit and context are the first request's);
// checksend-batch keeps one CheckSendBatch stream per caller open and
// sends messages of -batch checks of the first request's first candidate
// (now, no reservation: a pre-send check), each message's answers read
// before the next is sent. For both, "recipients" counts the HCPs
// answered, and calls the requests or messages.
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
	Call       string  `json:"call"`
	C          int     `json:"c"`
	Calls      int     `json:"calls"`
	Recipients int64   `json:"recipients"`
	Errors     int64   `json:"errors"`
	Seconds    float64 `json:"seconds"`
	RPS        float64 `json:"rps"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
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
	batch := fs.Int("batch", 100, "HCPs per DecideBatch call, checks per CheckSendBatch message")
	token := fs.String("token", "", "a bearer token sent with every gRPC call")
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
	if *batch < 1 || *batch > 1000 {
		return fmt.Errorf("-batch: want 1 to 1000")
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if *token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer(*token)))
	}
	var recipients atomic.Int64
	for range *conns {
		cc, err := grpc.NewClient(*addr, dialOpts...)
		if err != nil {
			return err
		}
		defer cc.Close()
		ccs = append(ccs, cc)
	}
	var do func(ctx context.Context, cc *grpc.ClientConn, w, i int) error
	switch *call {
	case "decide":
		do = func(ctx context.Context, cc *grpc.ClientConn, w, i int) error {
			_, err := nbapb.NewDecisionServiceClient(cc).Decide(ctx, reqs[i%len(reqs)])
			if err == nil {
				recipients.Add(1)
			}
			return err
		}
	case "ping":
		do = func(ctx context.Context, cc *grpc.ClientConn, _, _ int) error {
			_, err := nbapb.NewDecisionServiceClient(cc).Ping(ctx, &nbapb.PingRequest{})
			return err
		}
	case "decide-batch":
		first := reqs[0]
		do = func(ctx context.Context, cc *grpc.ClientConn, w, i int) error {
			req := &nbapb.DecideBatchRequest{Limit: first.GetLimit(), Candidates: first.GetCandidates(),
				CandidateSet: first.GetCandidateSet(), Context: first.GetContext()}
			for k := range *batch {
				req.HcpIds = append(req.HcpIds, reqs[(i*(*batch)+k)%len(reqs)].GetHcpId())
			}
			stream, err := nbapb.NewDecisionServiceClient(cc).DecideBatch(ctx, req)
			if err != nil {
				return err
			}
			for {
				item, err := stream.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if item.GetError() != nil {
					return fmt.Errorf("DecideBatch item: %v", item.GetError())
				}
				recipients.Add(1)
			}
		}
	case "checksend-batch":
		if len(reqs[0].GetCandidates()) == 0 {
			return fmt.Errorf("checksend-batch: the first request names no candidate to check")
		}
		action := reqs[0].GetCandidates()[0]
		streams := make([]nbapb.SendService_CheckSendBatchClient, *c)
		var mu sync.Mutex
		do = func(ctx context.Context, cc *grpc.ClientConn, w, i int) error {
			// Each caller keeps its own stream.
			mu.Lock()
			st := streams[w]
			if st == nil {
				var err error
				st, err = nbapb.NewSendServiceClient(cc).CheckSendBatch(context.Background())
				if err != nil {
					mu.Unlock()
					return err
				}
				streams[w] = st
			}
			mu.Unlock()
			msg := &nbapb.CheckSendBatchRequest{}
			for k := range *batch {
				msg.Checks = append(msg.Checks, &nbapb.CheckSendRequest{
					HcpId: reqs[(i*(*batch)+k)%len(reqs)].GetHcpId(), ActionId: action,
					Caller: nbapb.CallerKind_CALLER_KIND_MARKETING_PLATFORM})
			}
			broken := func(err error) error {
				mu.Lock()
				streams[w] = nil // a failed stream is not used again
				mu.Unlock()
				return err
			}
			if err := st.Send(msg); err != nil {
				return broken(err)
			}
			for range *batch {
				item, err := st.Recv()
				if err != nil {
					return broken(err)
				}
				if item.GetError() != nil {
					return fmt.Errorf("CheckSendBatch item: %v", item.GetError())
				}
				recipients.Add(1)
			}
			return nil
		}
	case "health":
		do = func(ctx context.Context, cc *grpc.ClientConn, _, _ int) error {
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
		do = func(ctx context.Context, _ *grpc.ClientConn, _, i int) error {
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
		return fmt.Errorf("-call: want decide, ping, health, decide-batch, checksend-batch, http-decide or http-get, got %q", *call)
	}
	for _, cc := range ccs { // connect before the clock starts
		if err := do(context.Background(), cc, 0, 0); err != nil {
			return err
		}
	}

	recipients.Store(0)
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
				if err := do(context.Background(), cc, w, i); err != nil {
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
		Call: *call, C: *c, Calls: len(all), Recipients: recipients.Load(), Errors: errs.Load(), Seconds: elapsed.Seconds(),
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

// bearer sends a bearer token with every call (plaintext allowed: the
// benchmarks run on loopback).
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
