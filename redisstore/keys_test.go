package redisstore

import (
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestKeys(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never used
	t.Cleanup(func() { rdb.Close() })
	s := mustNew(t, rdb, WithPrefix("arbiter"))
	tests := []struct {
		suffix string
		want   string
	}{
		{suffixProfile, "arbiter:{hcp-1}:p"},
		{suffixEvents, "arbiter:{hcp-1}:ev"},
		{suffixHistory, "arbiter:{hcp-1}:h"},
		{suffixConsent, "arbiter:{hcp-1}:consent"},
		{suffixConsentLog, "arbiter:{hcp-1}:consent-log"},
		{suffixConsentOps, "arbiter:{hcp-1}:consent-ops"},
		{suffixLegacyLedger, "arbiter:{hcp-1}:consent-ledger"},
	}
	for _, tt := range tests {
		t.Run(tt.suffix, func(t *testing.T) {
			key := s.key("hcp-1", tt.suffix)
			if key != tt.want {
				t.Errorf("key(hcp-1, %q) = %q, want %q", tt.suffix, key, tt.want)
			}
			id, suffix, ok := s.splitKey(key)
			if !ok || id != "hcp-1" || suffix != tt.suffix {
				t.Errorf("splitKey(%q) = %q, %q, %v; want hcp-1, %q, true", key, id, suffix, ok, tt.suffix)
			}
		})
	}
	for _, key := range []string{"other:{hcp-1}:p", "arbiter:hcp-1:p", "arbiter:{hcp-1"} {
		if id, suffix, ok := s.splitKey(key); ok {
			t.Errorf("splitKey(%q) = %q, %q, true; want not one of the store's keys", key, id, suffix)
		}
	}
}
