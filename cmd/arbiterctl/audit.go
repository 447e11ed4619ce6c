package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protojson"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// auditCheckpointCmd writes a checkpoint of the consent ledgers' chains:
// keep the file outside the store (write-once storage, another account),
// and give it to audit verify to catch ledgers cut short since.
func auditCheckpointCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit checkpoint", "-out FILE")
	conn := addConnFlags(fs, e)
	var out string
	fs.StringVar(&out, "out", "", "write the checkpoint (JSON Lines) to this `file` (required; it must not exist)")
	if err := parseFlags(fs, args, "out"); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	c, err := conn.dial()
	if err != nil {
		f.Close()
		os.Remove(out)
		return err
	}
	defer c.Close()
	var last *nbapb.CheckpointResponse
	err = c.Checkpoint(ctx, func(r *nbapb.CheckpointResponse) error {
		last = r
		return writeProtoLine(w, r)
	})
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out) // a partial checkpoint would only mislead
		return err
	}
	fmt.Fprintf(e.stdout, "checkpoint of %d consent ledgers taken at %s written to %s\n", last.GetRecipients(),
		fmtTime(last.GetTakenAt().AsTime()), out)
	return nil
}

// auditVerifyCmd verifies the consent ledgers' chains, against a
// checkpoint when given, and names what it finds.
func auditVerifyCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "audit verify", "[-checkpoint FILE]")
	conn := addConnFlags(fs, e)
	var cpFile string
	var quiet bool
	fs.StringVar(&cpFile, "checkpoint", "", "a checkpoint `file` written by audit checkpoint: also find ledgers cut short since")
	fs.BoolVar(&quiet, "quiet", false, "no progress line on standard error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var cp []*nbapb.CheckpointResponse
	if cpFile != "" {
		f, err := os.Open(cpFile)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for line := 1; sc.Scan(); line++ {
			var m nbapb.CheckpointResponse
			if err := protojson.Unmarshal(sc.Bytes(), &m); err != nil {
				f.Close()
				return fmt.Errorf("%s: line %d is not a checkpoint message", cpFile, line)
			}
			cp = append(cp, &m)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	var p *progress
	if !quiet {
		p = newProgress(e.stderr, 0, nil)
		p.what = "ledgers verified"
	}
	var findings int
	var last *nbapb.VerifyTrailResponse
	err = c.VerifyTrail(ctx, cp, func(r *nbapb.VerifyTrailResponse) error {
		last = r
		if p != nil {
			p.count(int(r.GetRecipientsChecked()))
		}
		for _, f := range r.GetFindings() {
			findings++
			where := ""
			if f.GetSeq() >= 0 {
				where = fmt.Sprintf(" (entry %d)", f.GetSeq())
			}
			who := f.GetHcpId()
			if who == "" {
				who = "(operations)"
			}
			fmt.Fprintf(e.stdout, "%s%s: %s\n", who, where, f.GetProblem())
		}
		return nil
	})
	if p != nil {
		p.stop()
	}
	if err != nil {
		return err
	}
	if !last.GetDone() {
		return errors.New("the verification ended before it was done")
	}
	with := "without a checkpoint (a ledger cut short is not seen)"
	if cpFile != "" {
		with = "against the checkpoint " + cpFile
	}
	fmt.Fprintf(e.stdout, "%d consent ledgers, %d entries verified %s: %d findings\n", last.GetRecipientsChecked(),
		last.GetEntriesChecked(), with, findings)
	if n := last.GetUnsealedEntries(); n > 0 {
		fmt.Fprintf(e.stdout, "%d entries were written before sealing began (an earlier version, or no audit key then): not verifiable\n", n)
	}
	if findings > 0 {
		return fmt.Errorf("the audit trail was tampered with: %d findings", findings)
	}
	return nil
}
