package main

import (
	"context"
	"time"

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
		if err := s.AddJourneyMembers(ctx, firstStepMembers(s.firstStep, nil, p, time.Now())); err != nil {
			return err
		}
	}
	return s.Store.UpsertProfile(ctx, p)
}

// Import indexes the items as UpsertProfile does, in one pipeline, then
// imports them.
func (s eventStore) Import(ctx context.Context, items []recipient.ImportItem) error {
	var ms []redisstore.JourneyMember
	now := time.Now()
	for i := range items {
		if items[i].Profile.Validate() == nil {
			ms = firstStepMembers(s.firstStep, ms, items[i].Profile, now)
		}
	}
	if err := s.AddJourneyMembers(ctx, ms); err != nil {
		return err
	}
	return s.Store.Import(ctx, items)
}

// firstStepMembers appends to ms p's memberships of the journeys whose
// first step waits for one of its times, scored by that time (or now, if
// later).
func firstStepMembers(firstStep func(map[string]float64) map[string]time.Time, ms []redisstore.JourneyMember, p recipient.Profile, now time.Time) []redisstore.JourneyMember {
	for journey, at := range firstStep(p.Attributes) {
		if at.Before(now) {
			at = now
		}
		ms = append(ms, redisstore.JourneyMember{Journey: journey, ID: p.HCPID, At: at})
	}
	return ms
}

// ApplyEvent indexes the event's journeys, then applies it.
func (s eventStore) ApplyEvent(ctx context.Context, e recipient.Event) (bool, error) {
	if err := s.AddJourneyMembers(ctx, s.eventMembers(nil, e, time.Now())); err != nil {
		return false, err
	}
	return s.Store.ApplyEvent(ctx, e)
}

// ApplyEvents indexes every event's journeys as ApplyEvent does, in one
// pipeline, then applies the events (in one more).
func (s eventStore) ApplyEvents(ctx context.Context, es []recipient.Event) ([]recipient.EventOutcome, error) {
	var ms []redisstore.JourneyMember
	now := time.Now()
	for _, e := range es {
		ms = s.eventMembers(ms, e, now)
	}
	if err := s.AddJourneyMembers(ctx, ms); err != nil {
		return nil, err
	}
	return s.Store.ApplyEvents(ctx, es)
}

// eventMembers appends to ms the memberships a valid event about a
// journey step makes (a bounce reached no one, a dismissed suggestion was
// not done): its recipient, in each journey the event's action is a step
// of, as of the event's time.
func (s eventStore) eventMembers(ms []redisstore.JourneyMember, e recipient.Event, now time.Time) []redisstore.JourneyMember {
	if e.ActionID == "" || e.Type.Undone() || e.ValidateAt(now) != nil {
		return ms
	}
	for _, j := range s.steps(e.ActionID) {
		ms = append(ms, redisstore.JourneyMember{Journey: j, ID: e.HCPID, At: e.OccurredAt})
	}
	return ms
}
