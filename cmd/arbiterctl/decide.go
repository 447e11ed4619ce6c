package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

func decideCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decide", "-hcp ID [-limit N] [-candidates a,b] [-caller KIND] [-channels email,sms] [-at TIME] [-explain] [-json]")
	conn := addConnFlags(fs, e)
	var (
		hcpID  string
		opts   client.DecideOptions
		asJSON bool
	)
	fs.StringVar(&hcpID, "hcp", "", "recipient `id`: an HCP (HCP-000042) or a patient (PAT-000042) (required)")
	fs.IntVar(&opts.Limit, "limit", 3, "how many recommendations, 1 to 50")
	fs.Var(listValue{&opts.Candidates}, "candidates", "action `ids` to consider, comma-separated (default: the whole catalog)")
	fs.StringVar(&opts.CandidateSet, "set", "", "a candidate set of the catalog to consider, e.g. hcp-email (instead of -candidates)")
	enumVar(fs, &opts.Caller, "caller", arbiter.ParseCallerKind, "`kind` of caller")
	enumListVar(fs, &opts.Channels, "channels", arbiter.ParseChannel, "only these `channels` (default: all)")
	timeVar(fs, &opts.At, "at", "when the action would happen: now or ahead, at most 5 minutes past (default: the server's clock; for the past, use whynot -at)")
	fs.BoolVar(&opts.Explain, "explain", false, "ask for reasons, feature contributions and suppression details")
	fs.BoolVar(&asJSON, "json", false, "print the decision as JSON")
	if err := parseFlags(fs, args, "hcp"); err != nil {
		return err
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	d, err := c.Decide(ctx, hcpID, opts)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, d)
	}
	return printDecision(e.stdout, d)
}

func printDecision(w io.Writer, d *client.Decision) error {
	persona := ""
	if d.Persona != "" {
		persona = ", persona " + d.Persona
	}
	fmt.Fprintf(w, "decision %s at %s (model %s, catalog %s%s)\n\n",
		d.ID, fmtTime(d.At), d.ModelVersion, d.CatalogVersion, persona)
	if len(d.Recommendations) == 0 {
		fmt.Fprintln(w, "no recommendation")
	} else {
		t := newTable(w, "RANK", "ACTION", "CHANNEL", "SCORE", "REASON")
		for _, r := range d.Recommendations {
			t.row(strconv.Itoa(r.Rank), r.ActionID, fmtName(r.Channel),
				strconv.FormatFloat(r.Score, 'f', 4, 64), r.Reason)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	// Candidates outside the channels asked for are counted, not listed:
	// the caller excluded them.
	var listed []client.Suppression
	notRequested := 0
	for _, s := range d.Suppressed {
		if s.Reason == client.SuppressionChannelNotRequested {
			notRequested++
		} else {
			listed = append(listed, s)
		}
	}
	if len(listed) > 0 {
		fmt.Fprintln(w)
		t := newTable(w, "SUPPRESSED", "REASON", "CLEARS", "DETAIL")
		for _, s := range listed {
			clears := ""
			if !s.ClearsAt.IsZero() {
				clears = fmtTime(s.ClearsAt)
			}
			t.row(s.ActionID, string(s.Reason), clears, s.Detail)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if notRequested > 0 {
		fmt.Fprintf(w, "\n%d more suppressed on channels not requested (-json lists them)\n", notRequested)
	}
	return nil
}
