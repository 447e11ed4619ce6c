package server

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter/consent"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// SetConsent records one consent change.
func (s *Server) SetConsent(ctx context.Context, req *nbapb.SetConsentRequest) (*nbapb.SetConsentResponse, error) {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	if req.GetRecord() == nil {
		c.Add("record", "required")
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	entry, err := s.consents.SetConsent(ctx, req.GetHcpId(), consentRecord(req.GetRecord()), req.GetMarkComplete())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	return &nbapb.SetConsentResponse{Entry: toLedgerEntry(&entry)}, nil
}

// Unsubscribe records an unsubscribe link's opt-out: promotional contact on
// the channel (consent.Unsubscribe).
func (s *Server) Unsubscribe(ctx context.Context, req *nbapb.UnsubscribeRequest) (*nbapb.UnsubscribeResponse, error) {
	entry, err := s.setChannelConsent(ctx, req, req.GetHcpId(), consent.Unsubscribe(fromChannel(req.GetChannel()),
		fromTS(req.GetCapturedAt()), req.GetSource(), req.GetCapturedBy()))
	if err != nil {
		return nil, err
	}
	return &nbapb.UnsubscribeResponse{Entry: entry}, nil
}

// StopAllContact bars the channel for the HCP (consent.StopAllContact).
func (s *Server) StopAllContact(ctx context.Context, req *nbapb.StopAllContactRequest) (*nbapb.StopAllContactResponse, error) {
	entry, err := s.setChannelConsent(ctx, req, req.GetHcpId(), consent.StopAllContact(fromChannel(req.GetChannel()),
		fromTS(req.GetCapturedAt()), req.GetSource(), req.GetCapturedBy()))
	if err != nil {
		return nil, err
	}
	return &nbapb.StopAllContactResponse{Entry: entry}, nil
}

// setChannelConsent writes the record that an Unsubscribe or a
// StopAllContact request stands for. The store validates it as a record
// (with its own clock for captured_at); the record's fields are the
// request's own (channel, captured_at, source, captured_by), so its
// violations are named without the "record." prefix.
func (s *Server) setChannelConsent(ctx context.Context, req proto.Message, hcpID string, r consent.Record) (*nbapb.LedgerEntry, error) {
	var c checker
	c.hcpID("hcp_id", hcpID)
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	entry, err := s.consents.SetConsent(ctx, hcpID, r, false)
	if err != nil {
		return nil, toStatus(ctx, s.log, renameFields("record.", "", err))
	}
	return toLedgerEntry(&entry), nil
}

// GetConsent returns an HCP's current consent records and marker.
func (s *Server) GetConsent(ctx context.Context, req *nbapb.GetConsentRequest) (*nbapb.GetConsentResponse, error) {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	st, err := s.consents.GetConsent(ctx, req.GetHcpId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &nbapb.GetConsentResponse{Complete: st.Complete, CompleteAt: ts(st.CompleteAt)}
	for i := range st.Records {
		out.Records = append(out.Records, toConsentRecord(&st.Records[i]))
	}
	return out, nil
}

// GetConsentHistory pages through an HCP's consent ledger.
func (s *Server) GetConsentHistory(ctx context.Context, req *nbapb.GetConsentHistoryRequest) (*nbapb.GetConsentHistoryResponse, error) {
	var c checker
	c.hcpID("hcp_id", req.GetHcpId())
	if req.GetOffset() < 0 {
		c.Add("offset", "must not be negative")
	}
	limit := int(req.GetLimit())
	if limit == 0 {
		limit = defaultHistoryLimit
	}
	if limit < 0 || limit > s.limits.MaxHistory {
		c.Add("limit", fmt.Sprintf("must be between 1 and %d (0 means %d)", s.limits.MaxHistory, defaultHistoryLimit))
	}
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	entries, total, err := s.consents.ConsentHistory(ctx, req.GetHcpId(), int(req.GetOffset()), limit)
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &nbapb.GetConsentHistoryResponse{Total: total}
	for i := range entries {
		out.Entries = append(out.Entries, toLedgerEntry(&entries[i]))
	}
	return out, nil
}
