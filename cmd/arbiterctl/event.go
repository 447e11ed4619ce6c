package main

import (
	"context"
	"fmt"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
)

func eventCmd(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "event", "-id ID -hcp ID -type TYPE -channel CHANNEL [-topic T] [-action A] [-decision D] [-at TIME]")
	conn := addConnFlags(fs, e)
	var ev client.Event
	fs.StringVar(&ev.ID, "id", "", "event `id`, unique per source system: a repeat changes nothing (required)")
	fs.StringVar(&ev.HCPID, "hcp", "", "HCP `id` (required)")
	enumVar(fs, &ev.Type, "type", arbiter.ParseEventType, "what happened, an event `type` (required)")
	enumVar(fs, &ev.Channel, "channel", arbiter.ParseChannel, "on which `channel` (required)")
	fs.StringVar(&ev.Topic, "topic", "", "content `topic`")
	fs.StringVar(&ev.ActionID, "action", "", "action `id`")
	fs.StringVar(&ev.DecisionID, "decision", "", "the decision `id` this outcome follows")
	fs.StringVar(&ev.MessageID, "message", "", "the sender's message `id`: a sent and a delivered event with the same one are one touch")
	fs.StringVar(&ev.ReservationID, "reservation", "", "the CheckSend reservation `id` this send used")
	enumVar(fs, &ev.Purpose, "purpose", arbiter.ParsePurpose, "why the recipient was contacted: promotional, medical or service (default: the action's)")
	timeVar(fs, &ev.OccurredAt, "at", "when it happened (default: now)")
	if err := parseFlags(fs, args, "id", "hcp", "type", "channel"); err != nil {
		return err
	}
	if ev.OccurredAt.IsZero() {
		ev.OccurredAt = time.Now()
	}

	c, err := conn.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	duplicate, err := c.RecordEvent(ctx, ev)
	if err != nil {
		return err
	}
	if duplicate {
		fmt.Fprintf(e.stdout, "event %s was already recorded: nothing changed\n", ev.ID)
	} else {
		fmt.Fprintf(e.stdout, "event %s recorded\n", ev.ID)
	}
	return nil
}
