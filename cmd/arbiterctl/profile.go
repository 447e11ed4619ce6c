package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/arbiter-nba/arbiter/client"
)

func profileGetCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "profile get", "-hcp ID")
	conn := addConnFlags(fs, e)
	var hcpID string
	fs.StringVar(&hcpID, "hcp", "", "HCP `id` (required)")
	if err := parseFlags(fs, args, "hcp"); err != nil {
		return err
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	p, counters, err := c.GetProfile(ctx, hcpID)
	if err != nil {
		return err
	}
	return writeJSON(e.stdout, struct {
		Profile  *client.Profile  `json:"profile"`
		Counters *client.Counters `json:"counters"`
	}{p, counters})
}

func profileUpsertCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "profile upsert", "-file profile.json")
	conn := addConnFlags(fs, e)
	var file string
	fs.StringVar(&file, "file", "", "JSON `file` holding one profile, or the output of 'profile get'; - for stdin (required)")
	if err := parseFlags(fs, args, "file"); err != nil {
		return err
	}
	b, err := readInput(e, file)
	if err != nil {
		return err
	}
	p, err := decodeProfile(b)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.UpsertProfile(ctx, p); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "profile %s upserted\n", p.HCPID)
	return nil
}

// decodeProfile reads a client.Profile, bare or wrapped as 'profile get'
// prints it ({"profile": {...}, "counters": {...}}; the counters are
// ignored: they follow from events, not from upserts).
func decodeProfile(b []byte) (client.Profile, error) {
	var wrapped struct {
		Profile *client.Profile `json:"profile"`
	}
	if err := json.Unmarshal(b, &wrapped); err != nil {
		return client.Profile{}, err
	}
	if wrapped.Profile != nil {
		return *wrapped.Profile, nil
	}
	var p client.Profile
	err := json.Unmarshal(b, &p)
	return p, err
}

// openInput opens a named file, or stdin for "-".
func openInput(e *env, name string) (io.ReadCloser, error) {
	if name == "-" {
		return io.NopCloser(e.stdin), nil
	}
	return os.Open(name)
}

func readInput(e *env, name string) ([]byte, error) {
	f, err := openInput(e, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
