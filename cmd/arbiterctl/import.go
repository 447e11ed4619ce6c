package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/arbiter-nba/arbiter/client"
)

func importCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "import", "-file hcps.jsonl")
	var (
		addr, file string
		timeout    time.Duration
	)
	addrVar(fs, e, &addr)
	fs.DurationVar(&timeout, "timeout", 0, "give up on the whole import after this long (0: never)")
	fs.StringVar(&file, "file", "", "JSON Lines `file`, one ImportItem per line (as demo-data writes), - for stdin (required)")
	if err := parseFlags(fs, args, "file"); err != nil {
		return err
	}
	in, err := openInput(e, file)
	if err != nil {
		return err
	}
	defer in.Close()

	c, err := client.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	// Cancelling the stream, rather than closing it, is how a bad line stops
	// the import: the server then writes nothing more.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	im, err := c.Import(ctx)
	if err != nil {
		return err
	}

	sent, err := sendLines(im, bufio.NewReader(in), file)
	if err != nil {
		cancel()
		_, _ = im.Close()
		if sent > 0 {
			fmt.Fprintf(e.stderr, "import stopped after %d items sent; items the server had written stay written\n", sent)
		}
		return err
	}
	imported, err := im.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "imported %d of %d\n", imported, sent)
	return nil
}

// sendLines sends every non-blank line of r as an ImportItem and returns
// how many were sent.
func sendLines(im *client.Importer, r *bufio.Reader, name string) (sent int64, err error) {
	for line := 1; ; line++ {
		b, rerr := r.ReadBytes('\n')
		if len(bytes.TrimSpace(b)) > 0 {
			var item client.ImportItem
			if err := json.Unmarshal(b, &item); err != nil {
				return sent, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			if err := im.Send(item); err != nil {
				return sent, err
			}
			sent++
		}
		switch {
		case errors.Is(rerr, io.EOF):
			return sent, nil
		case rerr != nil:
			return sent, fmt.Errorf("%s: %w", name, rerr)
		}
	}
}
