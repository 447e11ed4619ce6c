package redisstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/recipient"
)

const (
	// importBatch is how many items are written per profile pipeline.
	importBatch = 512
	// importWorkers is how many consent writes run at once. The consent
	// store takes one round trip per HCP; running them side by side keeps
	// Redis busy instead of waiting on the network.
	importWorkers = 32
)

// Import writes a bulk feed of HCPs (a CRM export, demo data): for each
// item, its consent records, then its profile, and its counters when given
// (stamped at the clock's now, replacing the stored counters; without them
// the stored counters are kept), then its past touches, added to the touch
// ledger unless already there. An HCP already present is replaced as by
// UpsertProfile (the territory index following it); its consent records
// are merged and ledgered by the consent store.
//
// Every item is validated before anything is written: one invalid item and
// nothing is, and the *arbiter.InvalidError names the item
// ("items[3].profile.market"). An HCP may appear only once per call.
//
// Atomicity per item: the consent store and the profile are written by two
// scripts that cannot share one transaction (SetConsentMany runs its own
// script and returns its ledger entries). So the order is what
// keeps an item whole: an item's consent is written first and its profile
// only once that has succeeded. An HCP whose import stopped in between has
// consent but no profile, so it is not found by Load and ApplyEvent: no
// decision is ever made for a profile without its consent. An HCP already
// present keeps its old profile with its new consent until the import is
// retried, which is safe in that direction (consent is never older than the
// profile that uses it). Re-running an import is idempotent for profiles;
// consent records are merged again (the ledger records the repeat).
//
// Throughput: items go in batches of 512; the consent writes of a batch run
// on 32 goroutines, then the batch's profiles go in one pipeline of EVALSHA
// calls. On a Redis failure Import stops after the current batch and returns
// an error naming the first item of it that failed: earlier batches are
// written, the failed batch in part (each item whole or without a profile);
// retrying the whole import is safe.
func (s *Store) Import(ctx context.Context, items []recipient.ImportItem) error {
	now := s.now()
	if err := recipient.ValidateImport(items, now); err != nil {
		return fmt.Errorf("redisstore: import: %w", err)
	}
	if len(items) == 0 {
		return nil
	}
	// Load the script once, so that the pipelines can use EVALSHA.
	if err := putProfileScript.Load(ctx, s.rdb).Err(); err != nil {
		return storageErr("import", err)
	}
	errs := make([]error, importBatch)
	for start := 0; start < len(items); start += importBatch {
		batch := items[start:min(start+importBatch, len(items))]
		errs = errs[:len(batch)]
		clear(errs)
		s.importConsent(ctx, batch, errs)
		s.importProfiles(ctx, batch, errs, now)
		s.importTouches(ctx, batch, errs, now)
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("redisstore: import: items[%d]: %w", start+i, err)
			}
		}
	}
	return nil
}

// importConsent writes the consent of every item of batch, concurrently, and
// sets errs[i] for the items that failed.
func (s *Store) importConsent(ctx context.Context, batch []recipient.ImportItem, errs []error) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(importWorkers, len(batch)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = s.importOneConsent(ctx, &batch[i])
			}
		}()
	}
	for i := range batch {
		next <- i
	}
	close(next)
	wg.Wait()
}

func (s *Store) importOneConsent(ctx context.Context, it *recipient.ImportItem) error {
	if len(it.Consent) == 0 && !it.ConsentComplete {
		return nil
	}
	recs := it.Consent
	if it.CapturedBy != "" {
		recs = make([]consent.Record, len(it.Consent))
		for i, r := range it.Consent {
			if r.CapturedBy == "" {
				r.CapturedBy = it.CapturedBy
			}
			recs[i] = r
		}
	}
	_, err := s.SetConsentMany(ctx, it.Profile.HCPID, recs, it.ConsentComplete)
	return err
}

// importProfiles writes, in one pipeline, the profiles of the items of batch
// whose consent was written (errs[i] == nil), and sets errs[i] for those
// that fail.
func (s *Store) importProfiles(ctx context.Context, batch []recipient.ImportItem, errs []error, now time.Time) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	args := make([][]any, len(batch))
	for i := range batch {
		if errs[i] != nil {
			continue
		}
		it := &batch[i]
		mode := "0"
		if it.Counters != nil {
			mode = "1"
		}
		prof := it.Profile
		prof.UpdatedBy = principalOf(ctx)
		a := profileArgs(make([]any, 0, 32), mode, prof, now)
		if it.Counters != nil {
			a = counterArgs(a, it.Counters, now.UnixMilli())
		}
		args[i] = a
		cmds[i] = putProfileScript.EvalSha(ctx, pipe, []string{s.key(it.Profile.HCPID, suffixProfile)}, a...)
	}
	if pipe.Len() == 0 {
		return
	}
	// The territory index is written around the profiles (territories.go).
	ws := make([]territoryWrite, 0, len(batch))
	for i, c := range cmds {
		if c != nil {
			ws = append(ws, territoryWrite{id: batch[i].Profile.HCPID, new: batch[i].Profile.Territories})
		}
	}
	if err := s.enterTerritories(ctx, ws); err != nil {
		for i, c := range cmds {
			if c != nil {
				errs[i] = fmt.Errorf("territory index: %w", classify(err))
			}
		}
		return
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below

	// The script cache can be flushed between Load and Exec (a restart, a
	// failover): send the source for the commands that missed it.
	var retry redis.Pipeliner
	for i, c := range cmds {
		if c != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			if retry == nil {
				retry = s.rdb.Pipeline()
			}
			cmds[i] = putProfileScript.Eval(ctx, retry, []string{s.key(batch[i].Profile.HCPID, suffixProfile)}, args[i]...)
		}
	}
	if retry != nil {
		_, _ = retry.Exec(ctx)
	}
	ws = ws[:0]
	for i, c := range cmds {
		if c != nil && c.Err() != nil {
			errs[i] = fmt.Errorf("profile: %w", classify(c.Err()))
		} else if c != nil {
			old, _ := c.Val().(string)
			ws = append(ws, territoryWrite{id: batch[i].Profile.HCPID, old: old, new: batch[i].Profile.Territories})
		}
	}
	if err := s.settleTerritories(ctx, ws); err != nil {
		for i, c := range cmds {
			if c != nil && errs[i] == nil {
				errs[i] = fmt.Errorf("territory index: %w", classify(err))
			}
		}
	}
}
