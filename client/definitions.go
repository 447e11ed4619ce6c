package client

import (
	"context"

	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Published is what a definitions publish achieved.
type Published struct {
	// Version is "sha256:" and the hash of the set's files.
	Version string
	// Confirmed are the live replicas that use the new set; Unconfirmed
	// those that did not confirm in time (they refuse decisions until they
	// can load it).
	Confirmed, Unconfirmed []string
}

// PublishDefinitions validates files (name to bytes: catalog.json,
// model.json, consent_policy.json and the optional ones) as one set, makes
// it the active set and waits until every live replica uses it. It needs a
// server with -admin-rpc and, with authentication, the admin role. An
// invalid set is refused whole (InvalidArgument naming the file and item).
func (c *Client) PublishDefinitions(ctx context.Context, files map[string][]byte) (*Published, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := c.defs.PublishDefinitions(ctx, &nbapb.PublishDefinitionsRequest{Files: files})
	if err != nil {
		return nil, err
	}
	return &Published{Version: resp.GetVersion(), Confirmed: resp.GetConfirmedReplicas(),
		Unconfirmed: resp.GetUnconfirmedReplicas()}, nil
}
