package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/decision"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// UpsertProfile creates or replaces an HCP's descriptive profile; counters
// and consent are kept.
func (s *Server) UpsertProfile(ctx context.Context, req *nbapb.UpsertProfileRequest) (*nbapb.UpsertProfileResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	var c checker
	c.addresses("profile.addresses", req.GetProfile().GetAddresses())
	if err := c.Err(); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	if err := s.profiles.UpsertProfile(ctx, profile(req.GetProfile())); err != nil {
		return nil, toStatus(ctx, s.log, addressPaths(prefixFields("profile.", err), req.GetProfile().GetAddresses()))
	}
	return &nbapb.UpsertProfileResponse{}, nil
}

// GetProfile returns an HCP's profile, decayed counters and dynamic persona.
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
	out := &nbapb.GetProfileResponse{Profile: toProfile(&p), Counters: toCounters(&counters)}
	if s.journeyer != nil {
		// The dynamic persona, as a decision now would work it out.
		res, err := s.journeyer.Journeys(ctx, decision.Request{HCPID: req.GetHcpId()})
		if err != nil {
			return nil, toStatus(ctx, s.log, err)
		}
		out.Persona = res.Persona
	}
	return out, nil
}

// ImportProfiles reads a CRM feed and writes it in batches. Each item is
// validated as it arrives, before anything of its batch is written; an
// invalid item ends the stream with InvalidArgument naming it
// ("items[1042].profile.market"). The import is not all-or-nothing: the
// batches before the stopping point were written, and every error that
// ends the stream says how many items were (importStopped). Re-sending the
// whole feed is safe, as imports merge (profiles are replaced, consent is
// merged by capture time and ledgered). An HCP that appears twice is
// written twice, in order: its batch is flushed before the second one.
func (s *Server) ImportProfiles(stream nbapb.ProfileService_ImportProfilesServer) error {
	ctx := stream.Context()
	var imported int64
	batch := make([]recipient.ImportItem, 0, s.importBatch)
	inBatch := make(map[string]bool, s.importBatch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.profiles.Import(ctx, batch); err != nil {
			// The store numbers the batch's items from 0.
			return shiftItems(err, imported)
		}
		imported += int64(len(batch))
		batch = batch[:0]
		clear(inBatch)
		return nil
	}
	// A reader goroutine, so that the loop can end an idle stream (no item
	// for the stream idle timeout, as CheckSendBatch) and stop at the next
	// item on shutdown; returning ends its Recv.
	type received struct {
		req *nbapb.ImportProfilesRequest
		err error
	}
	items := make(chan received)
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case items <- received{req, err}:
			case <-readCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	// The idle time runs only while the stream waits for an item, not
	// while an item (or a batch's write) is being handled.
	idle := time.NewTimer(s.sendIdle)
	defer idle.Stop()
	for {
		idle.Reset(s.sendIdle)
		var req *nbapb.ImportProfilesRequest
		select {
		case r := <-items:
			idle.Stop()
			if errors.Is(r.err, io.EOF) {
				return s.finishImport(ctx, stream, flush, &imported)
			}
			if r.err != nil {
				return r.err
			}
			req = r.req
		case <-idle.C:
			if err := flush(); err != nil {
				return s.importStopped(ctx, err, imported)
			}
			return s.importStopped(ctx, status.Errorf(codes.DeadlineExceeded,
				"no item arrived for %s: the stream is closed; send the rest again on a new stream", s.sendIdle), imported)
		case <-s.stopper.stop:
			if err := flush(); err != nil {
				return s.importStopped(ctx, err, imported)
			}
			return s.importStopped(ctx, errShuttingDown, imported)
		}
		item, err := checkImportItem(req, time.Now())
		if err != nil {
			prefix := fmt.Sprintf("items[%d].", imported+int64(len(batch)))
			return s.importStopped(ctx, prefixFields(prefix, err), imported)
		}
		if inBatch[item.Profile.HCPID] || len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return s.importStopped(ctx, err, imported)
			}
		}
		batch = append(batch, item)
		inBatch[item.Profile.HCPID] = true
	}
}

// checkImportItem validates one import item and converts it; violations
// are named relative to the item ("profile.addresses[1].address_ref").
func checkImportItem(req *nbapb.ImportProfilesRequest, now time.Time) (recipient.ImportItem, error) {
	if err := checkStrings(req); err != nil {
		return recipient.ImportItem{}, err
	}
	var c checker
	c.addresses("profile.addresses", req.GetProfile().GetAddresses())
	if err := c.Err(); err != nil {
		return recipient.ImportItem{}, err
	}
	item := importItem(req)
	if err := item.ValidateAt(now); err != nil {
		return recipient.ImportItem{}, addressPaths(err, req.GetProfile().GetAddresses())
	}
	return item, nil
}

// finishImport writes the last batch and answers the import.
func (s *Server) finishImport(ctx context.Context, stream nbapb.ProfileService_ImportProfilesServer, flush func() error, imported *int64) error {
	if err := flush(); err != nil {
		return s.importStopped(ctx, err, *imported)
	}
	return stream.SendAndClose(&nbapb.ImportProfilesResponse{Imported: *imported})
}

// importStopped is the status that ends an import early: err's, with the
// number of items written before it in the message and in an ErrorInfo
// detail (reason IMPORT_STOPPED, metadata "imported"), so that a feed can
// tell what to send again.
func (s *Server) importStopped(ctx context.Context, err error, imported int64) error {
	st := status.Convert(toStatus(ctx, s.log, err))
	n := strconv.FormatInt(imported, 10)
	out := status.New(st.Code(), st.Message()+" (import stopped; "+n+" items before it were written)")
	details := append(st.Details(), &errdetails.ErrorInfo{Reason: "IMPORT_STOPPED", Domain: "arbiter",
		Metadata: map[string]string{"imported": n}})
	var protos []protoadapt.MessageV1
	for _, d := range details {
		if m, ok := d.(protoadapt.MessageV1); ok {
			protos = append(protos, m)
		}
	}
	if withDetails, derr := out.WithDetails(protos...); derr == nil {
		out = withDetails
	}
	return out.Err()
}

// shiftItems adds offset to the item indexes of a validation error's
// "items[i]" paths and descriptions ("duplicates items[j]"): the store
// numbers a batch's items from 0, the stream from its first item.
func shiftItems(err error, offset int64) error {
	var inv *arbiter.InvalidError
	if offset == 0 || !errors.As(err, &inv) {
		return err
	}
	out := &arbiter.InvalidError{}
	for _, v := range inv.Violations {
		out.Add(itemsRe.ReplaceAllStringFunc(v.Field, shift(offset)), itemsRe.ReplaceAllStringFunc(v.Description, shift(offset)))
	}
	return out
}

var itemsRe = regexp.MustCompile(`items\[(\d+)\]`)

func shift(offset int64) func(string) string {
	return func(m string) string {
		i, err := strconv.ParseInt(m[len("items["):len(m)-1], 10, 64)
		if err != nil {
			return m
		}
		return "items[" + strconv.FormatInt(i+offset, 10) + "]"
	}
}

// Eraser erases recipients (redisstore.Store).
type Eraser interface {
	Erase(ctx context.Context, id string) (redisstore.ErasureResult, error)
}

// EraseRecipient erases a recipient, keeping the proof of their
// withdrawals (redisstore/erase.go).
func (s *Server) EraseRecipient(ctx context.Context, req *nbapb.EraseRecipientRequest) (*nbapb.EraseRecipientResponse, error) {
	if err := checkStrings(req); err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	er, ok := s.profiles.(Eraser)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this server's store cannot erase")
	}
	res, err := er.Erase(ctx, req.GetHcpId())
	if err != nil {
		return nil, toStatus(ctx, s.log, err)
	}
	s.log.InfoContext(ctx, "recipient erased", "keys_deleted", res.KeysDeleted, "receipts_deleted", res.ReceiptsDeleted,
		"ledger_entries_kept", res.LedgerEntries, "withdrawals_kept", res.WithdrawalsKept)
	return &nbapb.EraseRecipientResponse{KeysDeleted: int32(res.KeysDeleted), ReceiptsDeleted: res.ReceiptsDeleted,
		LedgerEntriesKept: int32(res.LedgerEntries), WithdrawalsKept: int32(res.WithdrawalsKept), JourneysLeft: int32(res.JourneysLeft)}, nil
}
