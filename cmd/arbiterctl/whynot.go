package main

import (
	"context"
	"fmt"
	"time"
)

func whyNotCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "whynot", "-hcp ID -action ID [-at TIME]")
	conn := addConnFlags(fs, e)
	var id, action string
	var at time.Time
	var asJSON bool
	fs.StringVar(&id, "hcp", "", "recipient `id`: an HCP or a patient (required)")
	fs.StringVar(&action, "action", "", "action `id` of the catalog (required)")
	timeVar(fs, &at, "at", "at this `time` (RFC 3339; default now; a past time: as the server knew it then, from the decision log)")
	fs.BoolVar(&asJSON, "json", false, "print the answer as JSON")
	if err := parseFlags(fs, args, "hcp", "action"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := c.WhyNot(ctx, id, action, at)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, a)
	}
	if a.AsOfDecisionID != "" {
		fmt.Fprintf(e.stdout, "as the server knew it then: the recipient as of decision %s, consent as the ledger stood at %s\n",
			a.AsOfDecisionID, fmtTime(a.At))
	}
	if a.Allowed {
		fmt.Fprintf(e.stdout, "%s may go to %s at %s: no gate blocks it\n", action, id, fmtTime(a.At))
		return nil
	}
	fmt.Fprintf(e.stdout, "%s may not go to %s at %s:\n", action, id, fmtTime(a.At))
	t := newTable(e.stdout, "REASON", "CLEARS", "WHY")
	for _, b := range a.Blocks {
		clears := "not by itself"
		if !b.ClearsAt.IsZero() {
			clears = fmtTime(b.ClearsAt)
		}
		t.row(string(b.Reason), clears, b.Detail)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !a.ClearsAt.IsZero() {
		fmt.Fprintf(e.stdout, "every block clears by %s\n", fmtTime(a.ClearsAt))
	}
	return nil
}
