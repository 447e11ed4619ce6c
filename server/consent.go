package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/proto"

	"github.com/arbiter-nba/arbiter"
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

// LedgerRestorer exports and re-applies consent ledgers (redisstore.Store).
type LedgerRestorer interface {
	LedgerSince(ctx context.Context, from time.Time, progress *atomic.Int64, fn func(id string, es []consent.LedgerEntry) error) error
	Reapply(ctx context.Context, id string, e consent.LedgerEntry) (present bool, err error)
}

const exportLedgerBatch = 500

// ExportLedger streams the ledger entries recorded since a time.
func (s *Server) ExportLedger(req *nbapb.ExportLedgerRequest, stream grpc.ServerStreamingServer[nbapb.ExportLedgerResponse]) error {
	ctx := stream.Context()
	lr, ok := s.consents.(LedgerRestorer)
	if !ok {
		return status.Error(codes.Unimplemented, "this server's store cannot export its ledger")
	}
	if t := req.GetRecordedFrom(); t == nil || t.CheckValid() != nil {
		return toStatus(ctx, s.log, arbiter.Invalid("recorded_from", "is required: a valid time"))
	}
	var scanned atomic.Int64
	out := &nbapb.ExportLedgerResponse{}
	flush := func() error {
		out.RecipientsScanned = scanned.Load()
		err := stream.Send(out)
		out = &nbapb.ExportLedgerResponse{}
		return err
	}
	err := lr.LedgerSince(ctx, req.GetRecordedFrom().AsTime(), &scanned, func(id string, es []consent.LedgerEntry) error {
		for i := range es {
			out.Entries = append(out.Entries, &nbapb.ExportedEntry{HcpId: id, Entry: toLedgerEntry(&es[i])})
			if len(out.Entries) >= exportLedgerBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	return nil
}

// ReapplyLedger re-applies exported ledger entries after a restore.
func (s *Server) ReapplyLedger(ctx context.Context, req *nbapb.ReapplyLedgerRequest) (*nbapb.ReapplyLedgerResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	lr, ok := s.consents.(LedgerRestorer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server's store cannot re-apply a ledger")
	}
	var inv arbiter.InvalidError
	switch n := len(req.GetEntries()); {
	case n == 0:
		inv.Add("entries", "at least one is required")
	case n > 1000:
		inv.Add("entries", "at most 1000 per call")
	}
	for i, x := range req.GetEntries() {
		if x.GetHcpId() == "" {
			inv.Add(fmt.Sprintf("entries[%d].hcp_id", i), "is required")
		}
		if x.GetEntry() == nil || x.GetEntry().GetRecordedAt() == nil {
			inv.Add(fmt.Sprintf("entries[%d].entry", i), "is required, with its recorded_at")
		}
	}
	if err := inv.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	out := &nbapb.ReapplyLedgerResponse{}
	for i, x := range req.GetEntries() {
		pe := x.GetEntry()
		e := consent.LedgerEntry{Seq: pe.GetSeq(), RecordedAt: fromTS(pe.GetRecordedAt()), Applied: pe.GetApplied(),
			MarkedComplete: pe.GetMarkedComplete(), Principal: pe.GetPrincipal(), Erased: pe.GetErased()}
		if pe.GetRecord() != nil {
			e.Record = consentRecord(pe.GetRecord())
		}
		present, err := lr.Reapply(ctx, x.GetHcpId(), e)
		if err != nil {
			// Entries before it were re-applied: the answer says how far.
			return nil, toStatus(ctx, s.log, prefixFields(fmt.Sprintf("entries[%d].", i), err))
		}
		if present {
			out.AlreadyPresent++
		} else {
			out.Reapplied++
		}
	}
	return out, nil
}
