package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter/client"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// The decision log from the shell: read a receipt, list a recipient's,
// replay one, export them all as JSON Lines, and the compliance inquiry
// (audit why).

// jsonLine writes receipts (and other API messages) as they are stored,
// with the proto's field names, one per line.
var jsonLine = protojson.MarshalOptions{UseProtoNames: true}

func decisionsGetCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decisions get", "-id DECISION_ID [-json]")
	conn := addConnFlags(fs, e)
	var id string
	var asJSON bool
	fs.StringVar(&id, "id", "", "the decision `id` (required)")
	fs.BoolVar(&asJSON, "json", false, "print the receipt and its evidence as JSON")
	if err := parseFlags(fs, args, "id"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	got, err := c.GetDecision(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		return writeProto(e.stdout, got)
	}
	printReceipt(e.stdout, got.GetReceipt())
	printEvidence(e.stdout, got.GetEvidence())
	return nil
}

func decisionsListCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decisions list", "-hcp ID -from TIME -to TIME [-limit N] [-json]")
	conn := addConnFlags(fs, e)
	var id string
	var from, to time.Time
	var limit int
	var asJSON bool
	fs.StringVar(&id, "hcp", "", "recipient `id` (required)")
	timeVar(fs, &from, "from", "decisions at or after this `time` (RFC 3339; required)")
	timeVar(fs, &to, "to", "decisions before this `time` (RFC 3339; default now)")
	fs.IntVar(&limit, "limit", 100, "at most this many receipts (1 to 1000)")
	fs.BoolVar(&asJSON, "json", false, "print each receipt as a JSON line")
	if err := parseFlags(fs, args, "hcp", "from"); err != nil {
		return err
	}
	if to.IsZero() {
		to = time.Now()
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	recs, more, err := c.ListDecisions(ctx, id, from, to, limit)
	if err != nil {
		return err
	}
	if asJSON {
		for _, r := range recs {
			if err := writeProtoLine(e.stdout, r); err != nil {
				return err
			}
		}
	} else {
		t := newTable(e.stdout, "TIME", "KIND", "DECISION", "CALLER", "OUTCOME")
		for _, r := range recs {
			t.row(fmtTime(r.GetDecisionTime().AsTime()), kindName(r.GetKind()), r.GetDecisionId(), orDash(r.GetPrincipal()), outcome(r))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if more {
		fmt.Fprintf(e.stderr, "more receipts in the range than -limit %d\n", limit)
	}
	return nil
}

func decisionsReplayCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decisions replay", "-id DECISION_ID [-json]")
	conn := addConnFlags(fs, e)
	var id string
	var asJSON bool
	fs.StringVar(&id, "id", "", "the decision `id` (required)")
	fs.BoolVar(&asJSON, "json", false, "print the replay as JSON")
	if err := parseFlags(fs, args, "id"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	rp, err := c.ReplayDecision(ctx, id)
	if err != nil {
		return err
	}
	if asJSON {
		return writeProto(e.stdout, rp)
	}
	switch {
	case rp.GetNotReplayable() != "":
		return fmt.Errorf("decision %s cannot be replayed exactly: %s", id, rp.GetNotReplayable())
	case rp.GetIdentical():
		fmt.Fprintf(e.stdout, "decision %s replays identically: recomputed from its receipt's inputs and definitions set %s\n",
			id, rp.GetDecided().GetDefinitionsVersion()+rp.GetChecked().GetDefinitionsVersion())
		return nil
	}
	fmt.Fprintf(e.stdout, "decision %s does NOT replay identically:\n", id)
	for _, d := range rp.GetDifferences() {
		fmt.Fprintf(e.stdout, "  %s\n", d)
	}
	return fmt.Errorf("the replay differs from the logged decision")
}

func decisionsExportCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "decisions export", "-from TIME [-to TIME] [-out FILE] [-follow [-settle D] [-every D]]")
	conn := addConnFlags(fs, e)
	var from, to time.Time
	var out string
	var follow, quiet bool
	var settle, every time.Duration
	timeVar(fs, &from, "from", "receipts of decisions at or after this `time` (RFC 3339; required)")
	timeVar(fs, &to, "to", "receipts of decisions before this `time` (RFC 3339; default now, less -settle with -follow)")
	fs.StringVar(&out, "out", "-", "write JSON Lines to this `file` (appended to; - for standard output)")
	fs.BoolVar(&follow, "follow", false, "keep exporting: after the range, every -every, the receipts since the last export's end")
	fs.DurationVar(&settle, "settle", 30*time.Second, "with -follow, leave the last `duration` to the next round: receipts are written shortly after their decisions")
	fs.DurationVar(&every, "every", time.Minute, "with -follow, export this often")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on standard error")
	if err := parseFlags(fs, args, "from"); err != nil {
		return err
	}
	w := e.stdout
	if out != "-" {
		f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	defer bw.Flush()
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	var total int64
	round := func(from, to time.Time) error {
		var p *progress
		if !quiet {
			p = newProgress(e.stderr, 0, nil)
			p.what = "exported"
			defer p.stop()
		}
		var last *nbapb.ExportDecisionsResponse
		err := c.ExportDecisions(ctx, from, to, func(r *nbapb.ExportDecisionsResponse) error {
			for _, rc := range r.GetReceipts() {
				if err := writeProtoLine(bw, rc); err != nil {
					return err
				}
			}
			last = r
			if p != nil {
				p.count(int(total + r.GetReceiptsSent()))
			}
			return nil
		})
		if p != nil {
			p.stop()
		}
		if err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		total += last.GetReceiptsSent()
		fmt.Fprintf(e.stderr, "exported %d receipts of %s to %s (%d recipients' logs read)\n", last.GetReceiptsSent(),
			fmtTime(from), fmtTime(to), last.GetRecipientsScanned())
		return nil
	}
	if !follow {
		if to.IsZero() {
			to = time.Now()
		}
		return round(from, to)
	}
	for {
		end := time.Now().Add(-settle)
		if !to.IsZero() && to.Before(end) {
			end = to
		}
		if end.After(from) {
			if err := round(from, end); err != nil {
				return err
			}
			from = end
		}
		if !to.IsZero() && !from.Before(to) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // interrupted between rounds: what was exported stands
		case <-time.After(every):
		}
	}
}

// auditWhyCmd is the compliance inquiry: every decision and check for a
// recipient on a day, and for each action recommended or allowed, the
// consent record and the content approval that allowed it.
func auditWhyCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit why", "-hcp ID -day YYYY-MM-DD [-tz ZONE] [-json]")
	conn := addConnFlags(fs, e)
	var id, day, tz string
	var asJSON bool
	fs.StringVar(&id, "hcp", "", "recipient `id` (required)")
	fs.StringVar(&day, "day", "", "the `day`, YYYY-MM-DD (required)")
	fs.StringVar(&tz, "tz", "UTC", "the day's time `zone` (IANA name)")
	fs.BoolVar(&asJSON, "json", false, "print each decision and its evidence as a JSON line")
	if err := parseFlags(fs, args, "hcp", "day"); err != nil {
		return err
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return usagef("-tz: unknown time zone %q", tz)
	}
	start, err := time.ParseInLocation(time.DateOnly, day, loc)
	if err != nil {
		return usagef("-day: want YYYY-MM-DD, got %q", day)
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return auditWhy(ctx, e.stdout, c, id, start, start.AddDate(0, 0, 1), asJSON)
}

func auditWhy(ctx context.Context, w io.Writer, c *client.Client, id string, from, to time.Time, asJSON bool) error {
	recs, more, err := c.ListDecisions(ctx, id, from, to, 1000)
	if err != nil {
		return err
	}
	if !asJSON {
		fmt.Fprintf(w, "%s, %s to %s: %d decisions and checks\n", id, fmtTime(from), fmtTime(to), len(recs))
	}
	for _, r := range recs {
		got, err := c.GetDecision(ctx, r.GetDecisionId())
		if err != nil {
			return fmt.Errorf("decision %s: %w", r.GetDecisionId(), err)
		}
		if asJSON {
			if err := writeProtoLine(w, got); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintln(w)
		printReceipt(w, got.GetReceipt())
		printEvidence(w, got.GetEvidence())
	}
	if more {
		return fmt.Errorf("more than 1000 decisions that day: narrow the inquiry with arbiterctl decisions list")
	}
	return nil
}

func printReceipt(w io.Writer, r *nbapb.DecisionReceipt) {
	fmt.Fprintf(w, "%s  %s  %s\n", fmtTime(r.GetDecisionTime().AsTime()), kindName(r.GetKind()), r.GetDecisionId())
	fmt.Fprintf(w, "  asked by %s; definitions %s; server build %s\n", orDash(r.GetPrincipal()), r.GetDefinitionsVersion(), r.GetBuild())
	if in := r.GetInputs(); in != nil {
		fmt.Fprintf(w, "  consent as read: %d records, ledger version %d, complete %v\n", len(in.GetConsent()), in.GetConsentVersion(), in.GetConsentComplete())
	}
	if d := r.GetDecided(); d != nil {
		for _, rec := range d.GetRecommendations() {
			fmt.Fprintf(w, "  #%d %s  score %.4g\n", rec.GetRank(), rec.GetActionId(), rec.GetScore())
			if rec.GetReason() != "" {
				fmt.Fprintf(w, "     %s\n", rec.GetReason())
			}
		}
		fmt.Fprintf(w, "  %d candidates held back\n", len(d.GetSuppressed()))
	}
	if ch := r.GetChecked(); ch != nil {
		verdict := "ALLOWED"
		if !ch.GetAllowed() {
			verdict = "BLOCKED"
		}
		fmt.Fprintf(w, "  %s %s at %s", verdict, ch.GetActionId(), fmtTime(ch.GetPlannedAt().AsTime()))
		if ch.GetReservationId() != "" {
			fmt.Fprintf(w, ", reservation %s", ch.GetReservationId())
		}
		fmt.Fprintln(w)
		for _, b := range ch.GetBlocks() {
			fmt.Fprintf(w, "     %s: %s\n", strings.TrimPrefix(b.GetReason().String(), "SUPPRESSION_REASON_"), b.GetDetail())
		}
	}
}

func printEvidence(w io.Writer, evs []*nbapb.ActionEvidence) {
	for _, ev := range evs {
		fmt.Fprintf(w, "  why %s was allowed:\n", ev.GetActionId())
		if ev.GetUnavailable() != "" {
			fmt.Fprintf(w, "     evidence unavailable: %s\n", ev.GetUnavailable())
			continue
		}
		switch r := ev.GetConsentRecord(); {
		case r != nil:
			seq := "not found in the ledger"
			if ev.GetConsentLedgerSeq() >= 0 {
				seq = fmt.Sprintf("consent ledger entry %d", ev.GetConsentLedgerSeq())
			}
			notice := ""
			if r.GetNoticeVersion() != "" {
				notice = ", notice " + r.GetNoticeVersion()
			}
			fmt.Fprintf(w, "     consent: %s %s captured %s from %s%s (%s)\n", strings.TrimPrefix(r.GetStatus().String(), "CONSENT_STATUS_"),
				strings.TrimPrefix(r.GetChannel().String(), "CHANNEL_"), fmtTime(r.GetCapturedAt().AsTime()), r.GetSource(), notice, seq)
		case ev.GetByDefault():
			fmt.Fprintln(w, "     consent: the market's opt-out default (no record says otherwise)")
		}
		if ev.GetApprovalId() != "" || ev.GetApprovalStatus() != "" {
			fmt.Fprintf(w, "     content approval: %s %s, valid %s to %s\n", orDash(ev.GetApprovalId()), ev.GetApprovalStatus(),
				orDash(fmtTS(ev.GetApprovalValidFrom())), orDash(fmtTS(ev.GetApprovalValidUntil())))
		}
	}
}

func fmtTS(t interface{ AsTime() time.Time }) string {
	if t == nil {
		return ""
	}
	return fmtTime(t.AsTime())
}

func kindName(k nbapb.ReceiptKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "RECEIPT_KIND_"))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// outcome is a receipt's answer in a few words.
func outcome(r *nbapb.DecisionReceipt) string {
	if ch := r.GetChecked(); ch != nil {
		if ch.GetAllowed() {
			return "allowed " + ch.GetActionId()
		}
		return fmt.Sprintf("blocked %s (%d reasons)", ch.GetActionId(), len(ch.GetBlocks()))
	}
	var top []string
	for _, rec := range r.GetDecided().GetRecommendations() {
		top = append(top, rec.GetActionId())
	}
	if len(top) == 0 {
		return "nothing recommended"
	}
	return strings.Join(top, ", ")
}

func writeProto(w io.Writer, m proto.Message) error {
	data, err := protojson.MarshalOptions{UseProtoNames: true, Multiline: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(data))
	return err
}

// writeProtoLine writes m as one JSON line.
func writeProtoLine(w io.Writer, m proto.Message) error {
	data, err := jsonLine.Marshal(m)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	_, err = w.Write(data)
	return err
}
