package main

import (
	"context"
	"time"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// eventStore is the store as the server's event path sees it: an event
// about a journey step also makes its recipient a member of the journey
// (the index ListDue and the journey KPIs read). The member is added
// before the event is applied, so that no applied event is missing from
// the index; a member whose event then failed is harmless (its progress
// shows nothing).
//
// A profile with a time a journey's first step waits for (an appointment)
// makes its recipient a member of that journey when it is written: the
// first step is due before anything was sent.
type eventStore struct {
	*redisstore.Store
	steps     func(actionID string) []string
	firstStep func(attrs map[string]float64) map[string]time.Time
}

// UpsertProfile indexes the journeys whose first step waits for one of the
// profile's times, then writes it (as ApplyEvent: an index entry never
// misses a written profile).
func (s eventStore) UpsertProfile(ctx context.Context, p recipient.Profile) error {
	if p.Validate() == nil {
		if err := indexFirstSteps(ctx, s.Store, s.firstStep, p); err != nil {
			return err
		}
	}
	return s.Store.UpsertProfile(ctx, p)
}

// Import indexes the items as UpsertProfile does, then imports them.
func (s eventStore) Import(ctx context.Context, items []recipient.ImportItem) error {
	for i := range items {
		if items[i].Profile.Validate() != nil {
			continue
		}
		if err := indexFirstSteps(ctx, s.Store, s.firstStep, items[i].Profile); err != nil {
			return err
		}
	}
	return s.Store.Import(ctx, items)
}

// indexFirstSteps makes p's recipient a member of the journeys whose first
// step waits for one of its times, scored by that time (or now, if later).
func indexFirstSteps(ctx context.Context, store *redisstore.Store, firstStep func(map[string]float64) map[string]time.Time, p recipient.Profile) error {
	now := time.Now()
	for journey, at := range firstStep(p.Attributes) {
		if at.Before(now) {
			at = now
		}
		if err := store.AddJourneyMember(ctx, []string{journey}, p.HCPID, at); err != nil {
			return err
		}
	}
	return nil
}

// ApplyEvent indexes the event's journeys, then applies it.
func (s eventStore) ApplyEvent(ctx context.Context, e recipient.Event) (bool, error) {
	if e.ActionID != "" && e.Type != arbiter.EventBounced && e.ValidateAt(time.Now()) == nil {
		if journeys := s.steps(e.ActionID); len(journeys) > 0 {
			if err := s.AddJourneyMember(ctx, journeys, e.HCPID, e.OccurredAt); err != nil {
				return false, err
			}
		}
	}
	return s.Store.ApplyEvent(ctx, e)
}
