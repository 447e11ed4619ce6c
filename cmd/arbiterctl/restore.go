package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// consentExportCmd writes the consent ledger entries recorded since a
// time, as JSON Lines: kept outside the store, they are what a restore
// from an older backup must re-apply (consent reapply).
func consentExportCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "consent export", "-from TIME -out FILE")
	conn := addConnFlags(fs, e)
	var from time.Time
	var out string
	timeVar(fs, &from, "from", "entries recorded at or after this `time` (RFC 3339; required): the last backup's, or earlier")
	fs.StringVar(&out, "out", "", "write the entries (JSON Lines) to this `file` (required; appended to)")
	if err := parseFlags(fs, args, "from", "out"); err != nil {
		return err
	}
	f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	p := newProgress(e.stderr, 0, nil)
	p.what = "entries exported"
	n := 0
	err = c.ExportLedger(ctx, from, func(r *nbapb.ExportLedgerResponse) error {
		for _, x := range r.GetEntries() {
			if err := writeProtoLine(w, x); err != nil {
				return err
			}
			n++
		}
		p.count(n)
		return nil
	})
	p.stop()
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d consent ledger entries recorded since %s written to %s\n", n, fmtTime(from), out)
	return nil
}

// consentReapplyCmd re-applies exported ledger entries after a restore.
func consentReapplyCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "consent reapply", "-file FILE")
	conn := addConnFlags(fs, e)
	var file string
	fs.StringVar(&file, "file", "", "the entries, as consent export wrote them (required)")
	if err := parseFlags(fs, args, "file"); err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	p := newProgress(e.stderr, 0, nil)
	p.what = "entries re-applied or found"
	defer p.stop()
	var batch []*nbapb.ExportedEntry
	var reapplied, present int64
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		r, err := c.ReapplyLedger(ctx, batch)
		if err != nil {
			return err
		}
		reapplied, present = reapplied+r.GetReapplied(), present+r.GetAlreadyPresent()
		p.count(int(reapplied + present))
		batch = batch[:0]
		return nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		var x nbapb.ExportedEntry
		if err := protojson.Unmarshal(sc.Bytes(), &x); err != nil {
			return fmt.Errorf("%s: line %d is not an exported ledger entry", file, line)
		}
		batch = append(batch, &x)
		if len(batch) == 1000 {
			if err := send(); err != nil {
				return fmt.Errorf("after %d entries: %w", reapplied+present, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := send(); err != nil {
		return fmt.Errorf("after %d entries: %w", reapplied+present, err)
	}
	p.stop()
	fmt.Fprintf(e.stdout, "%d entries written again, %d the ledger still held\n", reapplied, present)
	return nil
}
