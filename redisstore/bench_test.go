package redisstore

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// BenchmarkLoad measures the decision hot path: one pipelined round trip
// (the read plan) and the decoding of a realistic recipient: a profile with
// every channel's counters, a few topics and attributes, a consent hash, a
// touch ledger of a dozen touches and the twenty most recent events (what
// rules read). "plain" sends each load's pipeline itself; "auto-pipeline"
// goes through the auto-pipelining workers, as the server does. The HCP
// cache (package hcpcache) has benchmarks of its own.
//
//	go test -run '^$' -bench BenchmarkLoad -benchmem ./redisstore/
func BenchmarkLoad(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts []Option
	}{{"plain", nil}, {"auto-pipeline", []Option{WithAutoPipeline(1, 128, 3*time.Second)}}} {
		b.Run(bc.name, func(b *testing.B) {
			s, rdb, _ := newStore(b, bc.opts...)
			b.Cleanup(s.Close)
			seedLoadBench(b, s, rdb, "hcp-1")
			ctx := context.Background()
			at := t0.Add(day)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := s.Load(ctx, "hcp-1", at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// seedLoadBench writes BenchmarkLoad's recipient.
func seedLoadBench(b *testing.B, s *Store, rdb redis.UniversalClient, id string) {
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile(id)); err != nil {
		b.Fatal(err)
	}
	recs := []consent.Record{
		optIn(arbiter.Email, arbiter.Promotional, t0),
		optIn(arbiter.Email, arbiter.Medical, t0),
		optIn(arbiter.RepVisit, arbiter.Promotional, t0),
		{Channel: arbiter.SMS, Status: consent.Barred, CapturedAt: t0, Source: "veeva"},
	}
	if _, err := s.SetConsentMany(ctx, id, recs, true); err != nil {
		b.Fatal(err)
	}
	var fields []any
	for _, ch := range arbiter.Channels() {
		fields = append(fields, "e:"+ch.String(), "1.5", "s:"+ch.String(), "3", "lc:"+ch.String(), ms(t0))
	}
	for _, topic := range []string{"efficacy", "safety", "dosing", "trial"} {
		fields = append(fields, "t:"+topic, "2")
	}
	fields = append(fields, fCounterTime, ms(t0))
	if err := rdb.HSet(ctx, s.key(id, suffixProfile), fields...).Err(); err != nil {
		b.Fatal(err)
	}
	ledger := []any{"h|0|1|12"}
	for i := range 12 {
		t := contact.Touch{At: t0.Add(-time.Duration(i) * 2 * day), State: contact.Sent, Channel: arbiter.Email,
			Purpose: arbiter.Promotional, ReservationID: "res-" + strconv.Itoa(i), MessageID: "msg-" + strconv.Itoa(i),
			ActionID: "email-glucanor-efficacy", Topic: "efficacy"}
		ledger = append(ledger, encodeTouch(&t))
	}
	var history []any
	for i := range historyLen {
		e := recipient.Event{Type: arbiter.EventOpened, Channel: arbiter.Email, ActionID: "email-glucanor-safety",
			Topic: "safety", Purpose: arbiter.Promotional}
		history = append(history, historyEntry(e, t0.Add(-time.Duration(i)*time.Hour).UnixMilli(), "rep-"+strconv.Itoa(i)))
	}
	if err := rdb.RPush(ctx, s.key(id, suffixTouches), ledger...).Err(); err != nil {
		b.Fatal(err)
	}
	if err := rdb.RPush(ctx, s.key(id, suffixHistory), history...).Err(); err != nil {
		b.Fatal(err)
	}
	st, err := s.Load(ctx, id, t0.Add(day))
	if err != nil || len(st.Touches.Touches) != 12 || st.Touches.Unreadable || len(st.Recent) != DefaultRecentEvents.Count ||
		len(st.Consent.Records) != len(recs) || len(st.Counters.Topics) != 4 {
		b.Fatalf("seeded recipient loads as %+v, %v", st, err)
	}
}

// BenchmarkImport10k imports 10,000 HCPs, each with two consent records and
// the completeness marker, into the local redis-server; one op is the whole
// import.
//
//	go test -run '^$' -bench BenchmarkImport10k -benchtime 5x ./redisstore/
func BenchmarkImport10k(b *testing.B) {
	redistest.Require(b)
	const n = 10000
	items := make([]recipient.ImportItem, n)
	for i := range items {
		p := hcpProfile("hcp-" + strconv.Itoa(i))
		items[i] = recipient.ImportItem{
			Profile: p,
			Consent: []consent.Record{
				optIn(arbiter.Email, arbiter.Promotional, t0.Add(-day)),
				optIn(arbiter.RepVisit, arbiter.Medical, t0.Add(-day)),
			},
			ConsentComplete: true,
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s, _, _ := newStore(b) // a fresh prefix: every op imports new HCPs
		b.StartTimer()
		if err := s.Import(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}
