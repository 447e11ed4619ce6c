package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

type call struct {
	start, end time.Time
	err        error
}

// probeInFlight runs n callers on their own connection, each making one
// Decide after another, until the returned function is called with the
// time SIGTERM was sent. It returns the calls that were in flight then
// (started before, ended after), and how many of them failed.
func probeInFlight(addr string, n int) func(sent time.Time) (failed, total int) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return func(time.Time) (int, int) { return 0, 0 }
	}
	dc := nbapb.NewDecisionServiceClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var calls []call
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			for j := 0; ctx.Err() == nil; j++ {
				c := call{start: time.Now()}
				cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
				_, c.err = dc.Decide(cctx, &nbapb.DecideRequest{HcpId: demo.HCPID(1 + (i*97+j)%population), Limit: 3})
				ccancel()
				c.end = time.Now()
				mu.Lock()
				calls = append(calls, c)
				mu.Unlock()
				if c.err != nil && status.Code(c.err) == codes.Unavailable {
					return // the server is gone
				}
			}
		})
	}
	return func(sent time.Time) (failed, total int) {
		cancel()
		wg.Wait()
		conn.Close()
		for _, c := range calls {
			if c.start.Before(sent) && c.end.After(sent) {
				total++
				// Refused at admission (the probes and the load together
				// can pass the bound) is not an admitted call failing.
				if code := status.Code(c.err); c.err != nil && code != codes.Canceled && code != codes.ResourceExhausted {
					failed++
				}
			}
		}
		return failed, total
	}
}

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// badInput sends n malformed or mutated requests, spread over the RPCs
// that take a recipient's data, as raw bytes. Every answer must be a clean
// status: a success (a mutation can still be valid), InvalidArgument,
// NotFound or FailedPrecondition; never Internal or Unknown. The server
// must still answer afterwards.
func badInput(ctx context.Context, addr string, n int, rep *report) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	now := timestamppb.Now()
	valid := []struct {
		method string
		msg    proto.Message
	}{
		{nbapb.DecisionService_Decide_FullMethodName, &nbapb.DecideRequest{HcpId: "HCP-000042", Limit: 3, Explain: true}},
		{nbapb.DecisionService_DecideBatch_FullMethodName, &nbapb.DecideBatchRequest{HcpIds: []string{"HCP-000042", "HCP-000043"}}},
		{nbapb.DecisionService_WhyNot_FullMethodName, &nbapb.WhyNotRequest{HcpId: "HCP-000042", ActionId: "email-cardiolex-efficacy"}},
		{nbapb.SendService_CheckSend_FullMethodName, &nbapb.CheckSendRequest{HcpId: "HCP-000042", ActionId: "email-cardiolex-efficacy"}},
		{nbapb.EventService_RecordEvent_FullMethodName, &nbapb.RecordEventRequest{Event: &nbapb.Event{EventId: "bad-1",
			HcpId: "HCP-000042", Type: nbapb.EventType_EVENT_TYPE_OPENED, Channel: nbapb.Channel_CHANNEL_EMAIL, OccurredAt: now}}},
		{nbapb.ConsentService_SetConsent_FullMethodName, &nbapb.SetConsentRequest{HcpId: "HCP-000042", Record: &nbapb.ConsentRecord{
			Channel: nbapb.Channel_CHANNEL_SMS, Purpose: nbapb.Purpose_PURPOSE_SERVICE, Status: nbapb.ConsentStatus_CONSENT_STATUS_OPT_IN,
			CapturedAt: now, Source: "fault-suite"}}},
		{nbapb.ProfileService_UpsertProfile_FullMethodName, &nbapb.UpsertProfileRequest{Profile: &nbapb.Profile{HcpId: "HCP-009999",
			Market: "US", Specialty: "cardiology", Audience: nbapb.Audience_AUDIENCE_HCP}}},
		{nbapb.ProfileService_GetProfile_FullMethodName, &nbapb.GetProfileRequest{HcpId: "HCP-000042"}},
		{nbapb.ConsentService_GetConsentHistory_FullMethodName, &nbapb.GetConsentHistoryRequest{HcpId: "HCP-000042", Limit: 10}},
	}
	encoded := make([][]byte, len(valid))
	for i, v := range valid {
		if encoded[i], err = proto.Marshal(v.msg); err != nil {
			return err
		}
	}
	r := rand.New(rand.NewPCG(42, 1))
	byCode := map[codes.Code]int{}
	for i := range n {
		k := i % len(valid)
		in := mutate(r, encoded[k])
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := invokeRaw(cctx, conn, valid[k].method, in)
		cancel()
		code := status.Code(err)
		byCode[code]++
		switch code {
		case codes.OK, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition:
		default:
			if len(rep.badSamples) < 5 {
				rep.badSamples = append(rep.badSamples, fmt.Sprintf("%s answered %s: %q", valid[k].method, code, status.Convert(err).Message()))
			}
			if code == codes.Internal || code == codes.Unknown {
				rep.badInternal++
			}
		}
	}
	rep.badTried = n
	var parts []string
	for c, k := range byCode {
		parts = append(parts, fmt.Sprintf("%s=%d", c, k))
	}
	slices.Sort(parts)
	rep.badCodes = strings.Join(parts, " ")
	if rep.badInternal > 0 {
		rep.failures = append(rep.failures, fmt.Sprintf("%d bad inputs answered Internal or Unknown", rep.badInternal))
	}
	// Still serving.
	if err := invokeRaw(ctx, conn, valid[0].method, encoded[0]); err != nil {
		return fmt.Errorf("the server does not answer a valid Decide after the bad inputs: %w", err)
	}
	return nil
}

// invokeRaw sends in as the request of method, unary or server-streaming
// (DecideBatch), and returns the call's final status.
func invokeRaw(ctx context.Context, conn *grpc.ClientConn, method string, in []byte) error {
	if method != nbapb.DecisionService_DecideBatch_FullMethodName {
		var out []byte
		return conn.Invoke(ctx, method, &in, &out)
	}
	st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method)
	if err != nil {
		return err
	}
	if err := st.SendMsg(&in); err != nil {
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	for {
		var out []byte
		if err := st.RecvMsg(&out); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// mutate returns random bytes, or valid bytes with some flipped,
// truncated, duplicated or extended.
func mutate(r *rand.Rand, valid []byte) []byte {
	b := append([]byte(nil), valid...)
	switch r.IntN(6) {
	case 0:
		b = make([]byte, r.IntN(256))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	case 1:
		if len(b) > 0 {
			b = b[:r.IntN(len(b))]
		}
	case 2:
		b = append(b, b...)
	default:
		for range 1 + r.IntN(4) {
			if len(b) > 0 {
				b[r.IntN(len(b))] = byte(r.Uint32())
			}
		}
	}
	return b
}

// overload measures capacity (a closed loop), then drives Decide open
// loop at 3x that rate: the calls admitted keep their latency, the excess
// is shed with ResourceExhausted at once, and the server's memory stays
// bounded.
func overload(srv *serverProc, d time.Duration, rep *report) error {
	var conns []*grpc.ClientConn
	for range 8 {
		conn, err := grpc.NewClient(srv.listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	decide := func(ctx context.Context, i int) error {
		dc := nbapb.NewDecisionServiceClient(conns[i%len(conns)])
		_, err := dc.Decide(ctx, &nbapb.DecideRequest{HcpId: demo.HCPID(1 + i%population), Limit: 3})
		return err
	}
	// The server's own view: its handling time of Decide (the wait for an
	// admission slot included) and the decision's time, from /metrics.
	scrape := func() (histogram, histogram) {
		h1, _ := scrapeHistogram(srv.metricsURL, "grpc_server_handling_seconds", `grpc_method="Decide"`)
		h2, _ := scrapeHistogram(srv.metricsURL, "arbiter_decide_seconds", "")
		return h1, h2
	}
	handled0, decided0 := scrape()
	// Capacity: 32 callers, one call at a time each.
	var mu sync.Mutex
	var capLat []time.Duration
	var n atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i += 32 {
				t0 := time.Now()
				err := decide(ctx, i)
				if err == nil {
					mu.Lock()
					capLat = append(capLat, time.Since(t0))
					mu.Unlock()
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	cancel()
	capacity := float64(n.Load()) / d.Seconds()
	rep.capacity, rep.capP99 = capacity, pct(capLat, 0.99)
	handled1, decided1 := scrape()
	rep.capServerP99, _ = quantileSince(handled0, handled1, 0.99)
	rep.capDecideP99, _ = quantileSince(decided0, decided1, 0.99)

	// 3x, open loop: calls start on a schedule, whatever the answers.
	rate := 3 * capacity
	var okLat, shedLat []time.Duration
	var other atomic.Int64
	stopRSS := make(chan struct{})
	var maxRSS atomic.Int64
	rssDone := make(chan struct{})
	go func() {
		defer close(rssDone)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				if v := rssKiB(srv.pid()); v > maxRSS.Load() {
					maxRSS.Store(v)
				}
			}
		}
	}()
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	var sent int
	for i := 0; time.Since(start) < d; i++ {
		due := start.Add(time.Duration(i) * interval)
		if w := time.Until(due); w > 0 {
			time.Sleep(w) // the open loop's schedule
		}
		sent++
		wg.Go(func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			t0 := time.Now()
			err := decide(cctx, i)
			lat := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.OK:
				okLat = append(okLat, lat)
			case codes.ResourceExhausted:
				shedLat = append(shedLat, lat)
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	close(stopRSS)
	<-rssDone
	handled2, decided2 := scrape()
	rep.overServerP99, _ = quantileSince(handled1, handled2, 0.99)
	rep.overDecideP99, _ = quantileSince(decided1, decided2, 0.99)
	rep.overload = overloadResult{rate: rate, sent: sent, admitted: len(okLat), shed: len(shedLat), other: int(other.Load()),
		admittedP50: pct(okLat, 0.5), admittedP99: pct(okLat, 0.99), shedP99: pct(shedLat, 0.99), shedMax: pct(shedLat, 1),
		maxRSSMiB: float64(maxRSS.Load()) / 1024, seconds: time.Since(start).Seconds()}
	return nil
}

func pct(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p * float64(len(s)-1))
	return s[i]
}

// histogram is a cumulative Prometheus histogram read from /metrics: the
// count at or below each bound.
type histogram map[float64]float64

// scrapeHistogram reads the buckets of the series named by prefix (the
// metric and, in it, a label match) from the server's /metrics.
func scrapeHistogram(url, metric, match string) (histogram, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	h := histogram{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"_bucket{") || !strings.Contains(line, match) {
			continue
		}
		_, rest, ok := strings.Cut(line, `le="`)
		le, value, ok2 := strings.Cut(rest, `"} `)
		if !ok || !ok2 {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err1 == nil && err2 == nil {
			h[bound] = n
		}
	}
	return h, sc.Err()
}

// quantileSince is the q-quantile of what after observed since before
// (the upper bound of the bucket it falls in), and the count.
func quantileSince(before, after histogram, q float64) (time.Duration, float64) {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 {
		return 0, 0
	}
	total := after[bounds[len(bounds)-1]] - before[bounds[len(bounds)-1]]
	for _, b := range bounds {
		if after[b]-before[b] >= q*total {
			return time.Duration(b * float64(time.Second)), total
		}
	}
	return 0, total
}

// floodEffect measures Decide throughput (16 callers, closed loop) for d
// alone, then for d with a rapid-reset flood on another connection.
func floodEffect(addr string, d time.Duration, rep *report) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	dc := nbapb.NewDecisionServiceClient(conn)
	measure := func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; ctx.Err() == nil; i += 16 {
					if _, err := dc.Decide(ctx, &nbapb.DecideRequest{HcpId: demo.HCPID(1 + i%population), Limit: 3}); err == nil {
						n.Add(1)
					}
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / d.Seconds()
	}
	rep.floodBefore = measure()
	fctx, stop := context.WithCancel(context.Background())
	var streams, conns int64
	done := make(chan error, 1)
	go func() { var err error; streams, conns, err = rstFlood(fctx, addr); done <- err }()
	rep.floodDuring = measure()
	stop()
	if err := <-done; err != nil {
		return err
	}
	rep.floodStreams, rep.floodConns = float64(streams)/d.Seconds(), conns
	// The flood's address (also ours) may be refused for a second more:
	// what follows must not measure that.
	time.Sleep(1500 * time.Millisecond)
	return nil
}
