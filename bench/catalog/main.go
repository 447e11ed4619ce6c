// Command catalog writes the large deterministic action catalog of the
// end-to-end benchmark: -n actions (default 1000) in the catalog JSON
// format of package catalog, so that a Decide can name up to 1000
// candidates (server.DefaultLimits().MaxCandidates).
//
// Action i (0-based) gets its attributes from i by fixed strides, so any
// prefix of the catalog (the first 10, 100 or 1000 actions, which is what
// bench/requests names as candidates) has the same mix as the whole:
//
//   - channels: email, portal, webinar, sms, push, rep visit, remote
//     visit, MSL meeting, direct mail (visits carry no content);
//   - topics: brand x kind of the demo population (cardiolex_efficacy, ...),
//     so the demo HCPs' topic counters and specialties match;
//   - purposes: promotional, medical, service; audience hcp;
//   - specialties: the brand's, or none (any) for one action in seven;
//   - MLR approval of content: ~85% approved (US and EU, or one of them),
//     ~7% pending, ~5% approved but expired, ~3% withdrawn or rejected.
//
// The same -n always gives the same bytes. The output is checked with
// catalog.Parse before it is written.
//
//	catalog -n 1000 -o bench-catalog.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/arbiter-nba/arbiter/catalog"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "catalog:", err)
		os.Exit(1)
	}
}

type approval struct {
	Status     string   `json:"status"`
	ID         string   `json:"id"`
	ValidFrom  string   `json:"valid_from,omitempty"`
	ValidUntil string   `json:"valid_until,omitempty"`
	Markets    []string `json:"markets,omitempty"`
}

type action struct {
	ID          string    `json:"id"`
	Channel     string    `json:"channel"`
	ContentID   string    `json:"content_id,omitempty"`
	Topic       string    `json:"topic"`
	Purpose     string    `json:"purpose"`
	Audience    string    `json:"audience"`
	Specialties []string  `json:"specialties,omitempty"`
	Value       float64   `json:"value"`
	Approval    *approval `json:"approval,omitempty"`
}

type file struct {
	Version string            `json:"version"`
	MinGap  map[string]string `json:"min_gap"`
	Actions []action          `json:"actions"`
	// CandidateSets: "first-N" is the first N actions, the candidates of
	// bench/requests -candidates N (with -candidate-set).
	CandidateSets map[string][]string `json:"candidate_sets,omitempty"`
}

var (
	// channels and their business value; content-less channels are visits.
	channels = []struct {
		name    string
		value   float64
		content bool
	}{
		{"email", 1.0, true}, {"portal", 0.6, true}, {"webinar", 2.5, true},
		{"email", 1.2, true}, {"sms", 0.8, true}, {"rep_visit", 6.0, false},
		{"portal", 0.7, true}, {"remote_visit", 3.5, false}, {"push", 0.4, true},
		{"msl_meeting", 5.0, false}, {"direct_mail", 1.5, true}, {"webinar", 2.0, true},
	}
	brands = []struct {
		name        string
		specialties []string
	}{
		{"cardiolex", []string{"cardiology"}},
		{"oncovia", []string{"oncology"}},
		{"glucanor", []string{"endocrinology", "general_practice"}},
		{"respiral", []string{"pulmonology"}},
	}
	kinds    = []string{"efficacy", "safety", "trial_summary", "dosing", "patient_support"}
	purposes = []string{"promotional", "promotional", "medical", "service", "promotional", "medical"}
)

func run(args []string) error {
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	n := fs.Int("n", 1000, "actions to write")
	out := fs.String("o", "", "output file (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("-o is required")
	}
	if *n < 1 || *n > 99999 {
		return fmt.Errorf("-n: want 1 to 99999, got %d", *n)
	}
	f := file{
		Version: fmt.Sprintf("bench-%d", *n),
		MinGap: map[string]string{
			"email": "48h", "sms": "72h", "push": "24h", "rep_visit": "168h",
			"remote_visit": "72h", "msl_meeting": "336h", "direct_mail": "720h",
		},
	}
	for i := range *n {
		f.Actions = append(f.Actions, generate(i))
	}
	f.CandidateSets = map[string][]string{}
	for _, size := range []int{10, 50, 100, 1000} {
		if size <= *n {
			ids := make([]string, size)
			for i := range ids {
				ids[i] = f.Actions[i].ID
			}
			f.CandidateSets[fmt.Sprintf("first-%d", size)] = ids
		}
	}
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	c, err := catalog.Parse(data)
	if err != nil {
		return fmt.Errorf("generated catalog does not validate: %w", err)
	}
	if len(c.Actions) != *n {
		return fmt.Errorf("generated %d actions, parsed %d", *n, len(c.Actions))
	}
	return os.WriteFile(*out, data, 0o644)
}

// generate returns action i. Strides are coprime with each other's list
// lengths so the attributes combine rather than repeat in lockstep.
func generate(i int) action {
	ch := channels[i%len(channels)]
	b := brands[(i/len(channels)+i)%len(brands)]
	kind := kinds[(i*3+i/7)%len(kinds)]
	purpose := purposes[(i*5+i/11)%len(purposes)]
	// A short id keeps 1000-candidate requests small: "a0042-email".
	a := action{
		ID:       fmt.Sprintf("a%04d-%s", i, ch.name),
		Channel:  ch.name,
		Topic:    b.name + "_" + kind,
		Purpose:  purpose,
		Audience: "hcp",
		// Values vary a little per action so that rankings are not ties.
		Value: ch.value * (0.75 + float64((i*37)%50)/100),
	}
	if i%7 != 3 {
		a.Specialties = b.specialties
	}
	if !ch.content {
		return a
	}
	a.ContentID = fmt.Sprintf("BENCH-%04d", i)
	ap := &approval{ID: fmt.Sprintf("MLR-B%04d", i), ValidFrom: "2026-01-01T00:00:00Z", ValidUntil: "2099-12-31T00:00:00Z"}
	switch r := (i * 53) % 100; {
	case r < 7:
		ap = &approval{Status: "pending", ID: ap.ID}
	case r < 12: // approved, but the approval has run out
		ap.Status, ap.ValidFrom, ap.ValidUntil = "approved", "2024-01-01T00:00:00Z", "2025-06-30T00:00:00Z"
		ap.Markets = []string{"US", "EU"}
	case r < 14:
		ap = &approval{Status: "withdrawn", ID: ap.ID}
	case r < 15:
		ap = &approval{Status: "rejected", ID: ap.ID}
	case r < 25:
		ap.Status, ap.Markets = "approved", []string{"US"}
	case r < 32:
		ap.Status, ap.Markets = "approved", []string{"EU"}
	default:
		ap.Status, ap.Markets = "approved", []string{"US", "EU"}
	}
	a.Approval = ap
	return a
}
