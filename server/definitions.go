package server

import (
	"context"
	"errors"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/definitions"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// DefinitionsStore publishes definitions sets and reads the active one
// (cmd/arbiter's definitionsAdmin, over redisstore).
type DefinitionsStore interface {
	// Publish stores set, makes it active and waits for the live replicas;
	// it returns the replicas that confirmed and those that did not.
	Publish(ctx context.Context, set *definitions.Set) (confirmed, unconfirmed []string, err error)
	// Active returns the active set.
	Active(ctx context.Context) (*definitions.Set, error)
}

// WithDefinitionsAdmin serves DefinitionsService with d. Off by default:
// it changes what every replica decides with; with WithAuthenticator only
// the roles its RPCs declare (admin, and the auditor for reading) may call
// it.
func WithDefinitionsAdmin(d DefinitionsStore) Option { return func(s *Server) { s.defs = d } }

// PublishDefinitions validates the files as one set and publishes it.
func (s *Server) PublishDefinitions(ctx context.Context, req *nbapb.PublishDefinitionsRequest) (*nbapb.PublishDefinitionsResponse, error) {
	set, err := definitions.Parse(req.GetFiles())
	if err != nil {
		var e *definitions.Error
		if errors.As(err, &e) {
			inv := &arbiter.InvalidError{}
			for _, p := range e.Problems {
				inv.Add("files", p)
			}
			return nil, toStatus(ctx, s.log, inv)
		}
		return nil, toStatus(ctx, s.log, err)
	}
	confirmed, unconfirmed, err := s.defs.Publish(ctx, set)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.PublishDefinitionsResponse{Version: set.Version, ConfirmedReplicas: confirmed,
		UnconfirmedReplicas: unconfirmed}, nil
}

// GetActiveDefinitions returns the active set's version and files.
func (s *Server) GetActiveDefinitions(ctx context.Context, _ *nbapb.GetActiveDefinitionsRequest) (*nbapb.GetActiveDefinitionsResponse, error) {
	set, err := s.defs.Active(ctx)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.GetActiveDefinitionsResponse{Version: set.Version, Files: set.Files()}, nil
}
