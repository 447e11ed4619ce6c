package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
)

// UpsertProfile creates or replaces an HCP's descriptive profile; counters
// and consent are kept.
func (s *Server) UpsertProfile(ctx context.Context, req *nbapb.UpsertProfileRequest) (*nbapb.UpsertProfileResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.profiles.UpsertProfile(ctx, profile(req.GetProfile())); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.UpsertProfileResponse{}, nil
}

// GetProfile returns an HCP's profile and decayed counters.
func (s *Server) GetProfile(ctx context.Context, req *nbapb.GetProfileRequest) (*nbapb.GetProfileResponse, error) {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	p, counters, err := s.profiles.GetProfile(ctx, req.GetHcpId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.GetProfileResponse{Profile: toProfile(&p), Counters: toCounters(&counters)}, nil
}

// ImportProfiles reads a CRM feed and writes it in batches. A batch is
// validated whole before anything in it is written; an invalid item ends
// the stream with InvalidArgument naming it ("items[1042].profile.market").
// The batches before its batch were written; re-sending the whole feed is
// safe, as imports merge (profiles are replaced, consent is merged by
// capture time and ledgered).
func (s *Server) ImportProfiles(stream nbapb.ProfileService_ImportProfilesServer) error {
	ctx := stream.Context()
	var imported int64
	batch := make([]recipient.ImportItem, 0, s.importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.profiles.Import(ctx, batch); err != nil {
			return renumber(err, imported)
		}
		imported += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := checkStrings(req); err != nil {
			return toStatus(ctx, s.log, prefixFields(fmt.Sprintf("items[%d].", imported+int64(len(batch))), err))
		}
		batch = append(batch, importItem(req))
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return toStatus(ctx, s.log, err)
			}
		}
	}
	if err := flush(); err != nil {
		return toStatus(ctx, s.log, err)
	}
	return stream.SendAndClose(&nbapb.ImportProfilesResponse{Imported: imported})
}

// renumber shifts "items[i]" field names of a batch's validation error to
// the item's position in the whole stream.
func renumber(err error, offset int64) error {
	var inv *arbiter.InvalidError
	if !errors.As(err, &inv) || offset == 0 {
		return err
	}
	out := &arbiter.InvalidError{}
	for _, v := range inv.Violations {
		var i int64
		var rest string
		if n, _ := fmt.Sscanf(v.Field, "items[%d]%s", &i, &rest); n >= 1 {
			v.Field = fmt.Sprintf("items[%d]%s", i+offset, rest)
		}
		out.Violations = append(out.Violations, v)
	}
	return out
}
