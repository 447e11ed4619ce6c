package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/arbiter-nba/arbiter"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/redisstore"
)

// The audit trail's checks (AuditService): the consent ledgers' chains of
// MACs, verified with the key only the servers hold, and checkpoints of
// them kept outside the store (redisstore/chain.go).

// AuditTrail reads the sealed ledgers (redisstore.Store).
type AuditTrail interface {
	ChainHeads(ctx context.Context, fn func(hcpID string, h redisstore.ChainHead) error) error
	VerifyLedgers(ctx context.Context, key []byte, checkpoint map[string]redisstore.ChainHead, recipients, entries, unsealed *atomic.Int64,
		fn func(*redisstore.Finding) error) error
}

// WithAuditTrail serves the AuditService over trail, with the chain key.
func WithAuditTrail(trail AuditTrail, key []byte) Option {
	return func(s *Server) { s.trail, s.trailKey = trail, key }
}

const headsPerMessage = 500

// checkpointMAC covers a checkpoint's time and heads, in order.
type checkpointMAC struct{ h hash.Hash }

func newCheckpointMAC(key []byte, takenAt time.Time) *checkpointMAC {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "checkpoint\x00%d\x00", takenAt.UnixNano())
	return &checkpointMAC{m}
}

func (c *checkpointMAC) add(h *nbapb.ChainHead) {
	fmt.Fprintf(c.h, "%s|%d|%s\n", h.GetHcpId(), h.GetLength(), h.GetHead())
}

func (c *checkpointMAC) sum() string { return base64.RawURLEncoding.EncodeToString(c.h.Sum(nil)) }

// Checkpoint streams every ledger's head, then the checkpoint's MAC.
func (s *Server) Checkpoint(_ *nbapb.CheckpointRequest, stream grpc.ServerStreamingServer[nbapb.CheckpointResponse]) error {
	ctx := stream.Context()
	takenAt := time.Now().UTC()
	mac := newCheckpointMAC(s.trailKey, takenAt)
	var n int64
	batch := &nbapb.CheckpointResponse{}
	err := s.trail.ChainHeads(ctx, func(id string, h redisstore.ChainHead) error {
		ch := &nbapb.ChainHead{HcpId: id, Length: h.Length, Head: h.Head}
		mac.add(ch)
		n++
		batch.Heads = append(batch.Heads, ch)
		if len(batch.Heads) >= headsPerMessage {
			if err := stream.Send(batch); err != nil {
				return err
			}
			batch = &nbapb.CheckpointResponse{}
		}
		return nil
	})
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	batch.TakenAt, batch.Recipients, batch.Mac = ts(takenAt), n, mac.sum()
	return stream.Send(batch)
}

// VerifyTrail reads a checkpoint, if any, then verifies every ledger.
func (s *Server) VerifyTrail(stream grpc.BidiStreamingServer[nbapb.VerifyTrailRequest, nbapb.VerifyTrailResponse]) error {
	ctx := stream.Context()
	var checkpoint map[string]redisstore.ChainHead
	var heads []*nbapb.ChainHead
	var takenAt *nbapb.VerifyTrailRequest
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		heads = append(heads, req.GetHeads()...)
		if req.GetMac() != "" {
			takenAt = req
		}
		if len(heads) > 50_000_000 {
			return toStatus(ctx, s.log, arbiter.Invalid("heads", "a checkpoint of more than 50,000,000 ledgers"))
		}
	}
	if len(heads) > 0 || takenAt != nil {
		if takenAt == nil || takenAt.GetTakenAt() == nil {
			return toStatus(ctx, s.log, arbiter.Invalid("mac", "the checkpoint ends without its time and MAC: it is cut short"))
		}
		mac := newCheckpointMAC(s.trailKey, takenAt.GetTakenAt().AsTime())
		checkpoint = make(map[string]redisstore.ChainHead, len(heads))
		for _, h := range heads {
			mac.add(h)
			checkpoint[h.GetHcpId()] = redisstore.ChainHead{Length: h.GetLength(), Head: h.GetHead()}
		}
		if !hmac.Equal([]byte(mac.sum()), []byte(takenAt.GetMac())) {
			return toStatus(ctx, s.log, arbiter.Invalid("mac", "the checkpoint does not verify: it was changed, or taken with another audit key"))
		}
	}
	var recipients, entries, unsealed atomic.Int64
	out := &nbapb.VerifyTrailResponse{}
	last := time.Now()
	send := func(done bool) error {
		out.RecipientsChecked, out.EntriesChecked, out.UnsealedEntries, out.Done = recipients.Load(), entries.Load(), unsealed.Load(), done
		err := stream.Send(out)
		out, last = &nbapb.VerifyTrailResponse{}, time.Now()
		return err
	}
	err := s.trail.VerifyLedgers(ctx, s.trailKey, checkpoint, &recipients, &entries, &unsealed, func(f *redisstore.Finding) error {
		if f != nil {
			out.Findings = append(out.Findings, &nbapb.TrailFinding{HcpId: f.HCPID, Seq: f.Seq, Problem: f.Problem})
		}
		if len(out.Findings) >= 100 || time.Since(last) > time.Second {
			return send(false)
		}
		return nil
	})
	if err != nil {
		return toStatus(ctx, s.log, err)
	}
	return send(true)
}
