package main

import (
	"bufio"
	"context"
	"encoding/json"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/recipient"
)

func demoDataCmd(_ context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "demo-data", "[-n N] [-now TIME] > hcps.jsonl")
	var (
		n   int
		now time.Time
	)
	fs.IntVar(&n, "n", demo.Size, "how many HCPs")
	timeVar(fs, &now, "now", "the instant the population's dates are relative to (default: today 00:00 UTC)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if n < 0 {
		return usagef("-n must not be negative")
	}
	if now.IsZero() {
		now = time.Now().UTC().Truncate(24 * time.Hour)
	}

	// One HCP at a time (demo.Population(n, now) is the same items, held
	// all at once).
	w := bufio.NewWriter(e.stdout)
	enc := json.NewEncoder(w)
	for i := 1; i <= n; i++ {
		if err := enc.Encode(importItemFromDemo(demo.HCP(i, now))); err != nil {
			return err
		}
	}
	return w.Flush()
}

// importItemFromDemo converts a demo HCP to what the API can carry. The
// API has no counters: the demo engagement history (it.Counters) stays
// behind, so HCPs imported this way start with none.
func importItemFromDemo(it recipient.ImportItem) client.ImportItem {
	p := it.Profile
	out := client.ImportItem{
		Profile: client.Profile{
			HCPID:      p.HCPID,
			Specialty:  p.Specialty,
			Market:     p.Market,
			Audience:   p.Audience,
			Segment:    p.Segment,
			TimeZone:   p.TimeZone,
			Attributes: p.Attributes,
			UpdatedAt:  p.UpdatedAt,
		},
		ConsentComplete: it.ConsentComplete,
		CapturedBy:      it.CapturedBy,
	}
	for ch, ref := range p.Addresses {
		if ref == "" {
			continue
		}
		if out.Profile.Addresses == nil {
			out.Profile.Addresses = make(map[arbiter.Channel]string)
		}
		out.Profile.Addresses[arbiter.Channel(ch)] = ref
	}
	for _, r := range it.Consent {
		status := client.ConsentStatus(r.Status.String()) // same names
		if !status.Valid() {
			status = ""
		}
		out.Consents = append(out.Consents, client.ConsentRecord{
			Channel:    r.Channel,
			Purpose:    r.Purpose,
			Topic:      r.Topic,
			AddressRef: r.Address,
			Status:     status,
			CapturedAt: r.CapturedAt,
			ExpiresAt:  r.ExpiresAt,
			Source:     r.Source,
			CapturedBy: r.CapturedBy,
		})
	}
	return out
}
