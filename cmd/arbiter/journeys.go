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
type eventStore struct {
	*redisstore.Store
	steps func(actionID string) []string
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
