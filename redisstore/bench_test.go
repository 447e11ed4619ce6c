package redisstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	"github.com/arbiter-nba/arbiter/recipient"
)

// BenchmarkLoad measures the decision hot path: one pipelined round trip
// (the read plan) and the decoding of a realistic profile (all channels'
// counters, a few topics and attributes) and consent hash. The HCP cache
// (package hcpcache) has benchmarks of its own.
//
//	go test -run '^$' -bench BenchmarkLoad -benchmem ./redisstore/
func BenchmarkLoad(b *testing.B) {
	s, rdb, _ := newStore(b)
	ctx := context.Background()
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		b.Fatal(err)
	}
	recs := []consent.Record{
		optIn(arbiter.Email, arbiter.Promotional, t0),
		optIn(arbiter.Email, arbiter.Medical, t0),
		optIn(arbiter.RepVisit, arbiter.Promotional, t0),
		{Channel: arbiter.SMS, Status: consent.Barred, CapturedAt: t0, Source: "veeva"},
	}
	if _, err := s.SetConsentMany(ctx, "hcp-1", recs, true); err != nil {
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
	if err := rdb.HSet(ctx, s.key("hcp-1", suffixProfile), fields...).Err(); err != nil {
		b.Fatal(err)
	}
	at := t0.Add(day)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Load(ctx, "hcp-1", at); err != nil {
			b.Fatal(err)
		}
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
