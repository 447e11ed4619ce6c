package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Durability is what one Redis master says of its persistence.
type Durability struct {
	Addr string
	// AppendOnly and FsyncPolicy are its appendonly and appendfsync
	// settings ("yes", "everysec"...); Unknown says CONFIG GET was refused
	// (managed services often disable CONFIG).
	AppendOnly, FsyncPolicy string
	Unknown                 bool
}

// Durable reports whether an acknowledged write survives a restart of this
// master: AOF on, fsynced every write or every second (a second of writes
// at most is lost when the host, not only the process, fails).
func (d Durability) Durable() bool {
	return d.AppendOnly == "yes" && (d.FsyncPolicy == "always" || d.FsyncPolicy == "everysec")
}

// CheckDurability asks every master (one on a single Redis) for its
// persistence settings. A master that refuses CONFIG is reported Unknown,
// not an error: the caller warns.
func (s *Store) CheckDurability(ctx context.Context) ([]Durability, error) {
	var mu sync.Mutex
	var out []Durability
	check := func(ctx context.Context, c *redis.Client) error {
		d := Durability{Addr: c.Options().Addr}
		vals, err := c.ConfigGet(ctx, "append*").Result()
		switch {
		case err != nil && isRefused(err):
			d.Unknown = true
		case err != nil:
			return storageErr("check durability", err)
		default:
			d.AppendOnly, d.FsyncPolicy = vals["appendonly"], vals["appendfsync"]
		}
		mu.Lock()
		out = append(out, d)
		mu.Unlock()
		return nil
	}
	var err error
	switch c := s.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, check)
	case *redis.Client:
		err = check(ctx, c)
	default:
		return nil, fmt.Errorf("redisstore: check durability: unsupported client %T", s.rdb)
	}
	return out, err
}

// isRefused reports a command the server does not allow (renamed or
// disabled CONFIG, an ACL without it).
func isRefused(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "unknown command") || strings.HasPrefix(msg, "NOPERM") || strings.Contains(msg, "ERR unknown")
}
