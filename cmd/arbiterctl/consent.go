package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

func consentSetCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "consent set", "-hcp ID -channel CHANNEL [-purpose PURPOSE] -status STATUS -source SYSTEM [-topic T] [-address REF] [-captured-at TIME] [-expires-at TIME] [-by ID] [-complete]")
	conn := addConnFlags(fs, e)
	var (
		hcpID    string
		r        client.ConsentRecord
		complete bool
	)
	fs.StringVar(&hcpID, "hcp", "", "HCP `id` (required)")
	enumVar(fs, &r.Channel, "channel", arbiter.ParseChannel, "`channel` (required)")
	enumVar(fs, &r.Purpose, "purpose", arbiter.ParsePurpose, "`purpose` (none for barred or cleared)")
	fs.Var(statusValue{&r.Status}, "status", "what the HCP said, a `status` (required): opt_in, opt_out, pending, barred, cleared (lifts a bar)")
	fs.StringVar(&r.Source, "source", "", "source `system`, e.g. veeva, preference-centre (required)")
	fs.StringVar(&r.Topic, "topic", "", "product or `topic` the consent is limited to")
	fs.StringVar(&r.AddressRef, "address", "", "address `reference` the consent is limited to (never the address itself)")
	timeVar(fs, &r.CapturedAt, "captured-at", "when the HCP gave or withdrew consent (default: now)")
	timeVar(fs, &r.ExpiresAt, "expires-at", "first instant an opt-in no longer counts")
	fs.StringVar(&r.CapturedBy, "by", "", "who records it: a user or system `id`, never a name")
	fs.StringVar(&r.NoticeVersion, "notice-version", "", "the `version` of the notice or terms the recipient agreed to, e.g. privacy-2026-03")
	fs.BoolVar(&complete, "complete", false, "assert that the HCP's consent data is now complete")
	if err := parseFlags(fs, args, "hcp", "channel", "status", "source"); err != nil {
		return err
	}
	if r.CapturedAt.IsZero() {
		r.CapturedAt = time.Now()
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	entry, err := c.SetConsent(ctx, hcpID, r, complete)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "ledger entry %d recorded at %s\n", entry.Seq, fmtTime(entry.RecordedAt))
	if entry.Applied {
		fmt.Fprintln(e.stdout, "applied: it is now the current record for its scope")
	} else {
		fmt.Fprintln(e.stdout, "not applied: a more recent record for its scope is current")
	}
	if entry.MarkedComplete {
		fmt.Fprintln(e.stdout, "consent data marked complete")
	}
	return nil
}

func consentGetCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "consent get", "-hcp ID [-json]")
	conn := addConnFlags(fs, e)
	var (
		hcpID  string
		asJSON bool
	)
	fs.StringVar(&hcpID, "hcp", "", "HCP `id` (required)")
	fs.BoolVar(&asJSON, "json", false, "print as JSON")
	if err := parseFlags(fs, args, "hcp"); err != nil {
		return err
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.GetConsent(ctx, hcpID)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, st)
	}
	if st.Complete {
		fmt.Fprintf(e.stdout, "complete: yes, since %s\n\n", fmtTime(st.CompleteAt))
	} else {
		fmt.Fprint(e.stdout, "complete: no (consent not proven complete: nothing may be sent)\n\n")
	}
	if len(st.Records) == 0 {
		fmt.Fprintln(e.stdout, "no records")
		return nil
	}
	return printRecords(e.stdout, st.Records)
}

func printRecords(w io.Writer, rs []client.ConsentRecord) error {
	t := newTable(w, "CHANNEL", "PURPOSE", "TOPIC", "ADDRESS", "STATUS", "CAPTURED", "EXPIRES", "SOURCE", "BY")
	for _, r := range rs {
		t.row(fmtName(r.Channel), fmtName(r.Purpose), r.Topic, r.AddressRef, string(r.Status),
			fmtTime(r.CapturedAt), fmtTime(r.ExpiresAt), r.Source, r.CapturedBy)
	}
	return t.flush()
}

func consentHistoryCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "consent history", "-hcp ID [-offset N] [-limit N] [-json]")
	conn := addConnFlags(fs, e)
	var (
		hcpID         string
		offset, limit int
		asJSON        bool
	)
	fs.StringVar(&hcpID, "hcp", "", "HCP `id` (required)")
	fs.IntVar(&offset, "offset", 0, "entries to skip, oldest first")
	fs.IntVar(&limit, "limit", 100, "entries to show, 1 to 1000")
	fs.BoolVar(&asJSON, "json", false, "print as JSON")
	if err := parseFlags(fs, args, "hcp"); err != nil {
		return err
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	entries, total, err := c.ConsentHistory(ctx, hcpID, offset, limit)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(e.stdout, struct {
			Entries []client.LedgerEntry `json:"entries"`
			Total   int64                `json:"total"`
		}{entries, total})
	}
	if len(entries) == 0 {
		fmt.Fprintf(e.stdout, "no entries from offset %d (%d in the ledger)\n", offset, total)
		return nil
	}
	t := newTable(e.stdout, "SEQ", "RECORDED", "CHANNEL", "PURPOSE", "TOPIC", "ADDRESS", "STATUS",
		"CAPTURED", "EXPIRES", "SOURCE", "BY", "APPLIED", "COMPLETE")
	for _, en := range entries {
		r := en.Record
		t.row(strconv.FormatInt(en.Seq, 10), fmtTime(en.RecordedAt), fmtName(r.Channel), fmtName(r.Purpose),
			r.Topic, r.AddressRef, string(r.Status), fmtTime(r.CapturedAt), fmtTime(r.ExpiresAt),
			r.Source, r.CapturedBy, yesNo(en.Applied), yesNo(en.MarkedComplete))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "\nentries %d to %d of %d\n", offset+1, offset+len(entries), total)
	return nil
}
