package redisstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	_ "embed"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// The operations trail: who changed what the decisions follow, besides
// consent (whose ledger is per recipient: chain.go). One list,
// "<prefix>:trail", of entries
//
//	<seq>|<unix ms>|<operation>|<subject>|<detail>|<principal>|<MAC>
//
// the operations being definitions.activate (subject: the set's version),
// journey.pause and journey.resume (the journey), journey.move (the
// journey; detail: the recipient and the step, or "exit"). Free fields are
// escaped as the consent ledger's principal. The MAC chains the entries
// as the consent ledger's do, with the same key:
//
//	MAC_i = HMAC-SHA256(key, "trail" 0 MAC_{i-1} 0 entry_i without its MAC)[:16]
//
// An entry is appended after the operation took effect; if the append
// fails, the caller is told that the operation was made but not recorded.
// Without a chain key, entries are appended unsealed.

// Trail operations.
const (
	OpActivateDefinitions = "definitions.activate"
	OpPauseJourney        = "journey.pause"
	OpResumeJourney       = "journey.resume"
	OpMoveInJourney       = "journey.move"
)

var (
	//go:embed append_trail.lua
	appendTrailSrc    string
	appendTrailScript = redis.NewScript(appendTrailSrc)
)

func (s *Store) trailKey() string { return s.prefix + ":trail" }

func trailMAC(key []byte, prev, entry string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("trail\x00"))
	m.Write([]byte(prev))
	m.Write([]byte{0})
	m.Write([]byte(entry))
	return macEncoding.EncodeToString(m.Sum(nil)[:16])
}

// splitTrailEntry returns an entry without its MAC, and the MAC.
func splitTrailEntry(e string) (body, mac string) {
	i := strings.LastIndexByte(e, '|')
	if i < 0 {
		return e, ""
	}
	return e[:i+1], e[i+1:]
}

// AppendTrail records an operation in the trail.
func (s *Store) AppendTrail(ctx context.Context, op, subject, detail string) error {
	key := s.chainKey.Load()
	tk := s.trailKey()
	for range sealAttempts {
		pipe := s.rdb.Pipeline()
		n := pipe.LLen(ctx, tk)
		last := pipe.LIndex(ctx, tk, -1)
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return storageErr("operations trail", err)
		}
		_, prev := splitTrailEntry(last.Val())
		body := strconv.FormatInt(n.Val(), 10) + "|" + strconv.FormatInt(s.now().UnixMilli(), 10) + "|" + op + "|" +
			principalEscaper.Replace(subject) + "|" + principalEscaper.Replace(detail) + "|" +
			principalEscaper.Replace(principalOf(ctx)) + "|"
		mac := ""
		if key != nil {
			mac = trailMAC(*key, prev, body)
		}
		res, err := appendTrailScript.Run(ctx, s.rdb, []string{tk}, n.Val(), body+mac).Int()
		if err != nil {
			return storageErr("operations trail", err)
		}
		if res == 1 {
			return nil
		}
	}
	return fmt.Errorf("redisstore: operations trail: it kept changing: %w", arbiter.ErrUnavailable)
}

// trailRecorded wraps an error of recording an operation made: what is
// true is that it was made.
func trailRecorded(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("redisstore: %s was made, but the operations trail could not record it: %w", op, err)
}

// TrailEntry is one entry of the operations trail.
type TrailEntry struct {
	Seq                                 int64
	AtMs                                int64
	Op, Subject, Detail, Principal, MAC string
}

// verifyTrail checks the operations trail, and against a checkpoint head
// (cp, when inCheckpoint), and returns its first finding.
func (s *Store) verifyTrail(ctx context.Context, key []byte, cp ChainHead, inCheckpoint bool) (Finding, bool, int, error) {
	log, err := s.rdb.LRange(ctx, s.trailKey(), 0, -1).Result()
	if err != nil {
		return Finding{}, false, 0, storageErr("verify", err)
	}
	bad := func(seq int64, format string, args ...any) (Finding, bool, int, error) {
		return Finding{HCPID: "", Seq: seq, Problem: "the operations trail: " + fmt.Sprintf(format, args...)}, true, len(log), nil
	}
	prev := ""
	for i, e := range log {
		body, mac := splitTrailEntry(e)
		seqText, _, _ := strings.Cut(body, "|")
		if seqText != strconv.Itoa(i) {
			return bad(int64(i), "entry %d holds sequence number %s: an entry was removed, added or moved", i, seqText)
		}
		if mac == "" {
			return bad(int64(i), "entry %d is not sealed: written without the audit key, or added", i)
		}
		if !hmac.Equal([]byte(mac), []byte(trailMAC(key, prev, body))) {
			return bad(int64(i), "entry %d does not verify: it was edited, added, moved, or sealed with another key", i)
		}
		prev = mac
	}
	if inCheckpoint {
		switch n := int64(len(log)); {
		case n < cp.Length:
			return bad(n, "it has %d entries, the checkpoint saw %d: entries from %d on were removed", n, cp.Length, n)
		case cp.Length > 0:
			if _, mac := splitTrailEntry(log[cp.Length-1]); mac != cp.Head {
				return bad(cp.Length-1, "entry %d differs from the one the checkpoint saw", cp.Length-1)
			}
		}
	}
	return Finding{}, false, len(log), nil
}

// trailHead is the trail's length and last MAC.
func (s *Store) trailHead(ctx context.Context) (ChainHead, error) {
	pipe := s.rdb.Pipeline()
	n := pipe.LLen(ctx, s.trailKey())
	last := pipe.LIndex(ctx, s.trailKey(), -1)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return ChainHead{}, storageErr("chain heads", err)
	}
	_, mac := splitTrailEntry(last.Val())
	return ChainHead{Length: n.Val(), Head: mac}, nil
}
