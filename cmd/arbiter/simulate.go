package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/server"
)

// A dry run of a policy change (arbiter definitions simulate): the
// decisions logged in a time range are made again, from their receipts'
// inputs, under a candidate definitions set, and compared with what was
// decided. It needs no traffic and writes nothing: it reads the receipts
// and runs the engine in this process. What is compared is what was
// logged; a receipt whose decision the candidate set cannot make (a
// candidate action it no longer has) is counted apart.

// SimulationReport is what a dry run found.
type SimulationReport struct {
	Definitions string    `json:"definitions"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Decisions   int       `json:"decisions"`
	Checks      int       `json:"checks"`
	// NotRerun are receipts the candidate set could not decide again, by
	// why.
	NotRerun map[string]int `json:"not_rerun,omitempty"`
	// Changed is how many decisions' recommendations changed at all, and
	// TopChanged how many recipients' top action changed (in any of
	// their decisions).
	Changed    int `json:"changed"`
	TopChanged int `json:"top_changed"`
	// Gained and Lost are recommendations, by action id and by channel.
	Gained          map[string]int `json:"gained"`
	Lost            map[string]int `json:"lost"`
	GainedByChannel map[string]int `json:"gained_by_channel"`
	LostByChannel   map[string]int `json:"lost_by_channel"`
	// Suppressions by reason, before and after.
	SuppressedBefore map[string]int `json:"suppressed_before"`
	SuppressedAfter  map[string]int `json:"suppressed_after"`
	// Pre-send checks that would now be blocked, or now allowed, by action.
	NowBlocked map[string]int `json:"now_blocked,omitempty"`
	NowAllowed map[string]int `json:"now_allowed,omitempty"`
	// LostIn and GainedIn name the decisions, by action (with -list).
	LostIn   map[string][]string `json:"lost_in,omitempty"`
	GainedIn map[string][]string `json:"gained_in,omitempty"`
}

type stateLoader struct{}

func (stateLoader) Load(context.Context, string, time.Time) (*recipient.State, error) {
	return nil, errors.New("a dry run loads nothing")
}

// Simulate runs the dry run of the definitions in cfg.DefinitionsDir over
// the receipts of [from, to) in the configured Redis.
func Simulate(ctx context.Context, cfg Config, from, to time.Time, list bool, out, progress io.Writer) (*SimulationReport, error) {
	set, err := definitions.Load(cfg.DefinitionsDir)
	if err != nil {
		return nil, err
	}
	e, err := decision.New(stateLoader{}, set.Model, set.Catalog, set.Policy, decision.WithDefinitionsVersion(set.Version),
		decision.WithContactPolicy(set.Contact), decision.WithRules(set.Rules))
	if err != nil {
		return nil, err
	}
	rep := &SimulationReport{Definitions: set.Version, From: from, To: to, NotRerun: map[string]int{},
		Gained: map[string]int{}, Lost: map[string]int{}, GainedByChannel: map[string]int{}, LostByChannel: map[string]int{},
		SuppressedBefore: map[string]int{}, SuppressedAfter: map[string]int{}, NowBlocked: map[string]int{}, NowAllowed: map[string]int{}}
	if list {
		rep.LostIn, rep.GainedIn = map[string][]string{}, map[string][]string{}
	}
	topChanged := map[string]bool{}
	var scanned, made atomic.Int64 // read by the progress line
	done := make(chan struct{})
	var drawing sync.WaitGroup
	stopProgress := sync.OnceFunc(func() { close(done); drawing.Wait() })
	defer stopProgress()
	if progress != nil {
		drawing.Add(1)
		go func() {
			defer drawing.Done()
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					fmt.Fprintf(progress, "\r%d recipients' logs read, %d decisions and checks made again", scanned.Load(), made.Load())
				}
			}
		}()
	}
	err = withStore(cfg, func(store *redisstore.Store) error {
		// The receipts name actions by index in their own set's catalog.
		catalogs := map[string]*catalog.Catalog{}
		catalogFor := func(version string) *catalog.Catalog {
			c, ok := catalogs[version]
			if !ok {
				if set, err := store.LoadDefinitions(ctx, version); err == nil {
					c = set.Catalog
				}
				catalogs[version] = c
			}
			return c
		}
		return store.ScanReceipts(ctx, from, to, &scanned, func(hcpID string, recs [][]byte) error {
			for _, data := range recs {
				p, err := server.DecodeReceipt(data, catalogFor)
				if err != nil {
					rep.NotRerun["the receipt does not decode"]++
					continue
				}
				rc, err := server.ReceiptOf(p)
				if err != nil {
					rep.NotRerun["the receipt has no request"]++
					continue
				}
				res, sres, err := e.Rerun(ctx, rc)
				var inv *arbiter.InvalidError
				switch {
				case errors.As(err, &inv):
					rep.NotRerun["its request names what the candidate set does not have"]++
					continue
				case err != nil:
					rep.NotRerun["it cannot be made again: "+err.Error()]++
					continue
				}
				made.Add(1)
				if sres != nil {
					rep.Checks++
					was, now := p.GetChecked().GetAllowed(), sres.Allowed
					switch {
					case was && !now:
						rep.NowBlocked[sres.Action.ID]++
					case !was && now:
						rep.NowAllowed[sres.Action.ID]++
					}
					continue
				}
				rep.Decisions++
				compareDecision(rep, hcpID, p.GetDecided(), server.DecideAnswer(res), topChanged)
			}
			return nil
		})
	})
	stopProgress()
	if progress != nil {
		fmt.Fprintf(progress, "\r%d recipients' logs read, %d decisions and %d checks made again\n", scanned.Load(), rep.Decisions, rep.Checks)
	}
	if err != nil {
		return nil, err
	}
	rep.TopChanged = len(topChanged)
	if out != nil {
		writeReport(out, rep)
	}
	return rep, nil
}

func compareDecision(rep *SimulationReport, hcpID string, was, now *nbapb.DecideResponse, topChanged map[string]bool) {
	before, after := map[string]*nbapb.Recommendation{}, map[string]*nbapb.Recommendation{}
	for _, r := range was.GetRecommendations() {
		before[r.GetActionId()] = r
	}
	for _, r := range now.GetRecommendations() {
		after[r.GetActionId()] = r
	}
	changed := false
	for id, r := range before {
		if after[id] == nil {
			changed = true
			rep.Lost[id]++
			rep.LostByChannel[channelName(r.GetChannel())]++
			if rep.LostIn != nil {
				rep.LostIn[id] = append(rep.LostIn[id], was.GetDecisionId())
			}
		}
	}
	for id, r := range after {
		if before[id] == nil {
			changed = true
			rep.Gained[id]++
			rep.GainedByChannel[channelName(r.GetChannel())]++
			if rep.GainedIn != nil {
				rep.GainedIn[id] = append(rep.GainedIn[id], was.GetDecisionId())
			}
		}
	}
	if changed {
		rep.Changed++
	}
	top := func(d *nbapb.DecideResponse) string {
		if rs := d.GetRecommendations(); len(rs) > 0 {
			return rs[0].GetActionId()
		}
		return ""
	}
	if top(was) != top(now) {
		topChanged[hcpID] = true
	}
	for _, s := range was.GetSuppressed() {
		rep.SuppressedBefore[reasonName(s.GetReason())]++
	}
	for _, s := range now.GetSuppressed() {
		rep.SuppressedAfter[reasonName(s.GetReason())]++
	}
}

func channelName(c nbapb.Channel) string {
	return strings.ToLower(strings.TrimPrefix(c.String(), "CHANNEL_"))
}

func reasonName(r nbapb.SuppressionReason) string {
	return strings.TrimPrefix(r.String(), "SUPPRESSION_REASON_")
}

func writeReport(w io.Writer, rep *SimulationReport) {
	fmt.Fprintf(w, "Dry run of %s over the decisions logged from %s to %s\n", rep.Definitions,
		rep.From.UTC().Format(time.RFC3339), rep.To.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "  %d decisions and %d pre-send checks made again; %d decisions would change, %d recipients' top action would change\n",
		rep.Decisions, rep.Checks, rep.Changed, rep.TopChanged)
	for why, n := range rep.NotRerun {
		fmt.Fprintf(w, "  %d receipts not made again: %s\n", n, why)
	}
	section := func(title string, m map[string]int) {
		if len(m) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		keys := slices.Collect(maps.Keys(m))
		slices.SortFunc(keys, func(a, b string) int {
			if m[a] != m[b] {
				return m[b] - m[a]
			}
			return strings.Compare(a, b)
		})
		for _, k := range keys {
			fmt.Fprintf(w, "  %-40s %d\n", k, m[k])
		}
	}
	section("Recommendations lost, by action:", rep.Lost)
	section("Recommendations gained, by action:", rep.Gained)
	section("Recommendations lost, by channel:", rep.LostByChannel)
	section("Recommendations gained, by channel:", rep.GainedByChannel)
	section("Suppressions before, by reason:", rep.SuppressedBefore)
	section("Suppressions after, by reason:", rep.SuppressedAfter)
	section("Pre-send checks now blocked, by action:", rep.NowBlocked)
	section("Pre-send checks now allowed, by action:", rep.NowAllowed)
	for _, l := range []struct {
		title string
		m     map[string][]string
	}{{"lost", rep.LostIn}, {"gained", rep.GainedIn}} {
		for _, id := range slices.Sorted(maps.Keys(l.m)) {
			fmt.Fprintf(w, "\nDecisions that %s %s:\n", l.title, id)
			for _, d := range l.m[id] {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
}

// writeReportJSON writes the report as JSON.
func writeReportJSON(w io.Writer, rep *SimulationReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// parseWindow parses FROM..TO (RFC 3339 times; TO may be empty: now).
func parseWindow(s string, now time.Time) (from, to time.Time, err error) {
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		return from, to, fmt.Errorf("receipts: want FROM..TO (RFC 3339 times), got %q", s)
	}
	if from, err = time.Parse(time.RFC3339, a); err != nil {
		return from, to, fmt.Errorf("receipts: FROM %q is not an RFC 3339 time", a)
	}
	to = now
	if b != "" {
		if to, err = time.Parse(time.RFC3339, b); err != nil {
			return from, to, fmt.Errorf("receipts: TO %q is not an RFC 3339 time", b)
		}
	}
	if !to.After(from) {
		return from, to, errors.New("receipts: TO must be after FROM")
	}
	return from, to, nil
}
