package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/consent"
)

// Erasure (GDPR Article 17, and the state privacy laws' right to delete).
//
// Erase removes what Arbiter holds about a recipient, but the proof that
// their withdrawals were honoured:
//
//   - deleted: the profile (attributes, addresses, territories), its
//     counters, journey moves and reps' dismissals, the event ids and
//     history, the touch ledger, the decision receipts, the consent
//     writes' idempotency keys, and the recipient's place in every
//     journey's members index and every territory's set;
//   - kept, minimal and pseudonymous: the consent ledger, each entry
//     reduced to what proves what consent was given or withdrawn and when
//     (position, times, channel, purpose, status, expiry), its topic,
//     address reference, source, who captured it, principal and notice
//     version replaced by their digest, so that the chain of MACs still
//     verifies (chain.go); and, as current consent, the withdrawals only
//     (opt-outs and bars, at channel level, which is never less
//     restrictive), without the completeness marker: nothing is allowed
//     until new consent is loaded in full, and a recipient loaded again
//     (the same CRM id) is still opted out where they withdrew.
//
// The recipient id stays as the ledger's key: it is the CRM's pseudonymous
// id, and a withdrawal must be found again under it. The operations trail
// (trail.go) keeps it too, in the journey moves operators made: a record
// of who did what, kept as the ledger is. Exports made after
// the erasure hold nothing of the recipient (the receipts are gone);
// exports made before are the exporter's to delete.

// ErasureResult says what Erase removed and kept.
type ErasureResult struct {
	KeysDeleted     int
	ReceiptsDeleted int64
	LedgerEntries   int
	WithdrawalsKept int
	JourneysLeft    int
}

// erasedField marks a recipient's current consent as erased:
// "<unix ms>|<the ledger's length then>".
const erasedField = "_erased"

// Erase erases recipient id (see above). It is idempotent.
func (s *Store) Erase(ctx context.Context, id string) (ErasureResult, error) {
	var res ErasureResult
	if err := validID(id); err != nil {
		return res, err
	}
	if s.previousReaders {
		return res, &arbiter.PreconditionError{Subject: "hcp_id", Description: "erasure writes a marker the previous " +
			"release cannot read, and it still serves this Redis (the server runs with -rolling-upgrade): erase once every replica runs this release"}
	}
	now := s.now()
	ledger := s.key(id, suffixConsentLog)
	cur := s.key(id, suffixConsent)
	deleted := []string{s.key(id, suffixProfile), s.key(id, suffixEvents), s.key(id, suffixHistory), s.key(id, suffixTouches),
		s.key(id, suffixConsentOps), s.key(id, suffixLegacyLedger)}
	receipts := s.key(id, suffixReceipts)
	// The ledger is rewritten in place, entry by entry, under WATCH: a
	// consent write in between makes the transaction fail, and it is done
	// again. An erased entry keeps its MAC, so a sealed write that read
	// the ledger before still chains on.
	for range sealAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			if n, err := tx.Exists(ctx, s.key(id, suffixLegacyLedger)).Result(); err != nil {
				return err
			} else if n > 0 {
				return &arbiter.PreconditionError{Subject: "hcp_id",
					Description: "the recipient's consent ledger is in an earlier format: run arbiter migrate first, so that no withdrawal is lost"}
			}
			log, err := tx.LRange(ctx, ledger, 0, -1).Result()
			if err != nil {
				return err
			}
			current, err := tx.HGetAll(ctx, cur).Result()
			if err != nil {
				return err
			}
			nReceipts, err := tx.ZCard(ctx, receipts).Result()
			if err != nil {
				return err
			}
			res.ReceiptsDeleted, res.LedgerEntries = nReceipts, len(log)
			withdrawn := map[string]string{} // channel-level scope -> value
			erased := make([]string, len(log))
			for i, raw := range log {
				e, err := decodeLedger(raw)
				if err != nil {
					return fmt.Errorf("redisstore: erase: entry %d: %w", i, err)
				}
				if erased[i], _ = eraseEntry(raw); erased[i] == "" {
					return fmt.Errorf("redisstore: erase: entry %d: %w", i, corrupt("ledger entry does not decode"))
				}
				if !e.Applied || !e.Record.Channel.Valid() {
					continue
				}
				keepWithdrawal(withdrawn, e.Record)
			}
			// And every withdrawal in force, ledgered or not (written by
			// an earlier version, or restored): none may be lost.
			for f, v := range current {
				if f == completeField || f == versionField || f == erasedField {
					continue
				}
				if r, err := decodeRecord(f, v); err == nil {
					keepWithdrawal(withdrawn, r)
				} else if ch, _, ok := strings.Cut(f, "|"); ok {
					// Undecodable: it may be a withdrawal; keep the
					// channel barred rather than lose it.
					if c, ok := arbiter.ParseChannel(ch); ok {
						keepWithdrawal(withdrawn, consent.Record{Channel: c, Status: consent.Barred, CapturedAt: s.now()})
					}
				}
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Del(ctx, append(deleted, receipts, cur)...)
				for i, e := range erased {
					if e != log[i] {
						p.LSet(ctx, ledger, int64(i), e)
					}
				}
				// When, and the ledger's length then: the entries before it
				// are the erased ones (verify reads it).
				args := []any{erasedField, strconv.FormatInt(now.UnixMilli(), 10) + "|" + strconv.Itoa(len(log)), versionField, len(log)}
				for f, v := range withdrawn {
					args = append(args, f, v)
				}
				p.HSet(ctx, cur, args...)
				return nil
			})
			res.WithdrawalsKept = len(withdrawn)
			return err
		}, ledger, cur, receipts)
		if errors.Is(err, redis.TxFailedErr) {
			continue // a write came in between: read again
		}
		if err != nil {
			var inv *arbiter.InvalidError
			var pre *arbiter.PreconditionError
			if errors.As(err, &inv) || errors.As(err, &pre) || errors.Is(err, arbiter.ErrCorrupt) {
				return res, err
			}
			return res, storageErr("erase", err)
		}
		res.KeysDeleted = len(deleted) + 1
		n, err := s.leaveJourneys(ctx, id)
		res.JourneysLeft = n
		if err != nil {
			return res, err
		}
		return res, s.leaveTerritories(ctx, id)
	}
	return res, fmt.Errorf("redisstore: erase: the recipient's consent kept changing: %w", arbiter.ErrUnavailable)
}

// keepWithdrawal keeps r in withdrawn, at channel level, if it is an
// opt-out or a bar, and the latest for its scope.
func keepWithdrawal(withdrawn map[string]string, r consent.Record) {
	if r.Status != consent.OptOut && r.Status != consent.Barred {
		return
	}
	r.Topic, r.Address, r.Source, r.CapturedBy, r.NoticeVersion = "", "", erasedSource, "", ""
	field := consentField(&r)
	if old, ok := withdrawn[field]; !ok || laterValue(consentValue(&r), old) {
		withdrawn[field] = consentValue(&r)
	}
}

// laterValue reports whether consent value a was captured after b (both
// "<captured ms>|...").
func laterValue(a, b string) bool {
	am, _, _ := strings.Cut(a, "|")
	bm, _, _ := strings.Cut(b, "|")
	x, _ := strconv.ParseInt(am, 10, 64)
	y, _ := strconv.ParseInt(bm, 10, 64)
	return x > y
}

// leaveTerritories removes id from every territory's set (territories.go).
func (s *Store) leaveTerritories(ctx context.Context, id string) error {
	match := globEscape(s.prefix) + ":terr:{*}"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 100).Iterator()
		for it.Next(ctx) {
			if err := c.ZRem(ctx, it.Val(), id).Err(); err != nil {
				return err
			}
		}
		return it.Err()
	}
	if err := forEachNode(ctx, s.rdb, scan); err != nil {
		return storageErr("erase: territories", err)
	}
	return nil
}

// leaveJourneys removes id from every journey's members index.
func (s *Store) leaveJourneys(ctx context.Context, id string) (int, error) {
	match := s.prefix + ":journey:*:members"
	n := 0
	scan := func(ctx context.Context, c redis.Cmdable) error {
		it := c.Scan(ctx, 0, match, 100).Iterator()
		for it.Next(ctx) {
			k, err := c.ZRem(ctx, it.Val(), id).Result()
			if err != nil {
				return err
			}
			n += int(k)
		}
		return it.Err()
	}
	if err := forEachNode(ctx, s.rdb, scan); err != nil {
		return n, storageErr("erase: journeys", err)
	}
	return n, nil
}
