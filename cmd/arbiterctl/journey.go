package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"strconv"
	"time"

	"github.com/arbiter-nba/arbiter/client"
)

func journeyProgressCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "journey progress", "-recipient ID")
	conn := addConnFlags(fs, e)
	var id string
	var at time.Time
	fs.StringVar(&id, "recipient", "", "recipient `id`: an HCP or a patient (required)")
	timeVar(fs, &at, "at", "as of this `time` (RFC 3339; default now)")
	if err := parseFlags(fs, args, "recipient"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ps, persona, err := c.JourneyProgress(ctx, id, at)
	if err != nil {
		return err
	}
	if persona != "" {
		fmt.Fprintf(e.stdout, "persona: %s\n", persona)
	}
	t := newTable(e.stdout, "JOURNEY", "STATUS", "STEP", "DUE", "WHERE THEY STAND")
	for _, p := range ps {
		step := ""
		if p.Step > 0 {
			step = fmt.Sprintf("%d %s", p.Step, p.StepID)
		}
		t.row(p.JourneyID, p.Status, step, fmtTime(p.DueAt), p.Description)
	}
	return t.flush()
}

func journeyDueCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "journey due", "-journey ID [-step ID] [-before TIME]")
	conn := addConnFlags(fs, e)
	var journey, step string
	var before time.Time
	fs.StringVar(&journey, "journey", "", "journey `id` (required)")
	fs.StringVar(&step, "step", "", "only this step `id`")
	timeVar(fs, &before, "before", "due at or before this `time` (RFC 3339; default now)")
	if err := parseFlags(fs, args, "journey"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	// CSV on stdout, for a sender to act on; progress on stderr.
	w := csv.NewWriter(e.stdout)
	if err := w.Write([]string{"recipient_id", "step_id", "step", "due_at"}); err != nil {
		return err
	}
	n := 0
	start := time.Now()
	err = c.ListDue(ctx, journey, step, before, func(d client.Due) error {
		n++
		if n%1000 == 0 {
			fmt.Fprintf(e.stderr, "\r%d due so far (%s)", n, time.Since(start).Round(time.Second))
		}
		return w.Write([]string{d.RecipientID, d.StepID, strconv.Itoa(d.Step), d.DueAt.UTC().Format(time.RFC3339)})
	})
	w.Flush()
	if n >= 1000 {
		fmt.Fprintln(e.stderr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%d recipients due in %s, in %s\n", n, journey, time.Since(start).Round(time.Millisecond))
	return w.Error()
}

func journeyMoveCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "journey move", "-recipient ID -journey ID (-step ID | -exit)")
	conn := addConnFlags(fs, e)
	var id, journey, step string
	var exit bool
	fs.StringVar(&id, "recipient", "", "recipient `id` (required)")
	fs.StringVar(&journey, "journey", "", "journey `id` (required)")
	fs.StringVar(&step, "step", "", "move to this step `id`: it is due at once")
	fs.BoolVar(&exit, "exit", false, "move them out of the journey")
	if err := parseFlags(fs, args, "recipient", "journey"); err != nil {
		return err
	}
	if (step == "") == !exit {
		return usagef("give -step or -exit")
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := c.MoveInJourney(ctx, id, journey, step)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s in %s: %s\n", id, journey, p.Description)
	return nil
}

func journeyPauseCmd(paused bool) func(ctx context.Context, e *env, args []string) error {
	name := map[bool]string{true: "pause", false: "resume"}[paused]
	return func(ctx context.Context, e *env, args []string) error {
		fs := newFlagSet(e, "journey "+name, "-journey ID")
		conn := addConnFlags(fs, e)
		var journey string
		fs.StringVar(&journey, "journey", "", "journey `id` (required)")
		if err := parseFlags(fs, args, "journey"); err != nil {
			return err
		}
		c, err := conn.dial()
		if err != nil {
			return err
		}
		defer c.Close()
		if err := c.PauseJourney(ctx, journey, paused); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "journey %s: %sd (every server within its definitions poll)\n", journey, name)
		return nil
	}
}

func journeyStatsCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "journey stats", "-journey ID")
	conn := addConnFlags(fs, e)
	var journey string
	var at time.Time
	fs.StringVar(&journey, "journey", "", "journey `id` (required)")
	timeVar(fs, &at, "at", "as of this `time` (RFC 3339; default now)")
	if err := parseFlags(fs, args, "journey"); err != nil {
		return err
	}
	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(e.stderr, "reading the members of %s...\n", journey)
	s, err := c.JourneyStats(ctx, journey, at)
	if err != nil {
		return err
	}
	pct := func(v float64) string { return fmt.Sprintf("%.1f%%", 100*v) }
	fmt.Fprintf(e.stdout, "members %d, entered %d: active %d, completed %d (%s), converted to the goal %d (%s), exited %d, expired %d\n",
		s.Members, s.Entered, s.Active, s.Completed, pct(s.CompletionRate), s.Converted, pct(s.ConversionRate), s.Exited, s.Expired)
	t := newTable(e.stdout, "STEP", "AT IT", "DROPPED OFF")
	for _, st := range s.Steps {
		t.row(st.StepID, strconv.FormatInt(st.AtStep, 10), strconv.FormatInt(st.Dropped, 10))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "engagement after a field interaction: median %s, p90 %s, over %d interactions\n",
		s.EngagementAfterFieldP50.Round(time.Minute), s.EngagementAfterFieldP90.Round(time.Minute), s.FieldInteractions)
	return nil
}
