package redisstore

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/arbiter-nba/arbiter"
)

// replyErr is an error reply from a Redis server, as go-redis returns it.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestStorageErr(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error // the sentinel wrapped, nil for none
	}{
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, arbiter.ErrUnavailable},
		{"deadline", context.DeadlineExceeded, arbiter.ErrUnavailable},
		{"cancelled", context.Canceled, arbiter.ErrUnavailable},
		{"pool timeout", redis.ErrPoolTimeout, arbiter.ErrUnavailable},
		{"closed client", redis.ErrClosed, arbiter.ErrUnavailable},
		{"loading", replyErr("LOADING Redis is loading the dataset in memory"), arbiter.ErrUnavailable},
		{"busy script", replyErr("BUSY Redis is busy running a script"), arbiter.ErrUnavailable},
		{"replica", replyErr("READONLY You can't write against a read only replica."), arbiter.ErrUnavailable},
		{"master down", replyErr("MASTERDOWN Link with MASTER is down"), arbiter.ErrUnavailable},
		{"cluster down", replyErr("CLUSTERDOWN The cluster is down"), arbiter.ErrUnavailable},
		{"try again", replyErr("TRYAGAIN Multiple keys request during rehashing of slot"), arbiter.ErrUnavailable},
		{"out of memory", replyErr("OOM command not allowed when used memory > 'maxmemory'."), arbiter.ErrUnavailable},
		{"no replicas", replyErr("NOREPLICAS Not enough good replicas to write."), arbiter.ErrUnavailable},
		{"awaits migration", replyErr(replyNotMigrated + " the consent ledger is in an earlier format"), arbiter.ErrUnavailable},
		{"awaits migration, in a script", replyErr("ERR user_script:57: " + replyNotMigrated + " the consent ledger is in an earlier format"), arbiter.ErrUnavailable},
		{"wrong type", replyErr("WRONGTYPE Operation against a key holding the wrong kind of value"), arbiter.ErrCorrupt},
		{"wrong type in a script", replyErr("ERR user_script:12: WRONGTYPE Operation against a key"), arbiter.ErrCorrupt},
		{"corrupt value", replyErr(replyCorrupt + " current consent value does not decode"), arbiter.ErrCorrupt},
		{"corrupt value, in a script", replyErr("ERR user_script:70: " + replyCorrupt + " current consent value does not decode"), arbiter.ErrCorrupt},
		{"other reply", replyErr("ERR unknown command"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := storageErr("get", tt.err)
			if !errors.Is(err, tt.err) {
				t.Errorf("storageErr() = %v, want the Redis error still wrapped", err)
			}
			for _, sentinel := range []error{arbiter.ErrUnavailable, arbiter.ErrCorrupt} {
				if got, want := errors.Is(err, sentinel), sentinel == tt.want; got != want {
					t.Errorf("errors.Is(%v, %v) = %v, want %v", err, sentinel, got, want)
				}
			}
			if got, want := err.Error(), "redisstore: get: "; !strings.HasPrefix(got, want) {
				t.Errorf("storageErr() = %q, want the prefix %q", got, want)
			}
		})
	}
}
