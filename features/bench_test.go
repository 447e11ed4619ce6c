package features

import (
	"context"
	"strconv"
	"testing"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/internal/redistest"
)

// BenchmarkLoad measures the decision hot path: one pipelined round trip
// and the decoding of a realistic profile (all channels' counters, a few
// topics and attributes) and consent hash.
//
//	go test -run '^$' -bench BenchmarkLoad -benchmem ./features/
func BenchmarkLoad(b *testing.B) { benchmarkLoad(b, false) }

// BenchmarkLoadCached is a cache hit: the barrier's PING round trip (one
// caller, so one PING per load) and decoding, no hash read.
func BenchmarkLoadCached(b *testing.B) { benchmarkLoad(b, true) }

// BenchmarkLoadCacheMiss is a miss with the cache on: 1000 HCPs taken in
// turn through a cache of 64 entries, so nearly every load reads Redis.
// It should cost what BenchmarkLoad does: a miss does not wait for the
// barrier.
func BenchmarkLoadCacheMiss(b *testing.B) {
	s, _, _ := newStore(b)
	ctx := context.Background()
	if err := s.EnableCache(ctx, CacheOptions{MaxHCPs: 1}); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1000
	items := make([]ImportItem, n)
	ids := make([]string, n)
	for i := range items {
		ids[i] = "hcp-" + strconv.Itoa(i)
		items[i] = ImportItem{Profile: hcpProfile(ids[i]), Consent: []consent.Record{optIn(arbiter.Email, arbiter.Promotional, t0)}, ConsentComplete: true}
	}
	if err := s.Import(ctx, items); err != nil {
		b.Fatal(err)
	}
	at := t0.Add(day)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Load(ctx, ids[i%n], at); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func benchmarkLoad(b *testing.B, cached bool) {
	s, rdb, _ := newStore(b)
	ctx := context.Background()
	if cached {
		if err := s.EnableCache(ctx, CacheOptions{MaxHCPs: 100}); err != nil {
			b.Fatal(err)
		}
		defer s.Close()
	}
	if err := s.UpsertProfile(ctx, hcpProfile("hcp-1")); err != nil {
		b.Fatal(err)
	}
	recs := []consent.Record{
		optIn(arbiter.Email, arbiter.Promotional, t0),
		optIn(arbiter.Email, arbiter.Medical, t0),
		optIn(arbiter.RepVisit, arbiter.Promotional, t0),
		{Channel: arbiter.SMS, Status: consent.Barred, CapturedAt: t0, Source: "veeva"},
	}
	if _, err := s.consent.SetMany(ctx, "hcp-1", recs, true); err != nil {
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
	if err := rdb.HSet(ctx, s.profileKey("hcp-1"), fields...).Err(); err != nil {
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
//	go test -run '^$' -bench BenchmarkImport10k -benchtime 5x ./features/
func BenchmarkImport10k(b *testing.B) {
	redistest.Require(b)
	const n = 10000
	items := make([]ImportItem, n)
	for i := range items {
		p := hcpProfile("hcp-" + strconv.Itoa(i))
		items[i] = ImportItem{
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
