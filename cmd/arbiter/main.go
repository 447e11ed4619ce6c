// Command arbiter is the next-best-action decision server.
//
//	arbiter [flags]        serve gRPC (embedded demo store unless -redis-addr)
//	arbiter seed [flags]   load the demo population into the Redis at -redis-addr
//
// See Config for flags and environment variables.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
)

// redisLogger adapts go-redis's internal logger to slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "arbiter:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs connection trouble through a package-level logger;
	// send it to our structured log instead of bare stderr lines.
	redis.SetLogger(redisLogger{newLogger(os.Getenv("ARBITER_LOG_LEVEL"))})
	if len(args) > 0 && args[0] == "seed" {
		cfg, err := parseConfig("arbiter seed", args[1:], os.Getenv)
		if err != nil {
			return err
		}
		return Seed(ctx, cfg, newLogger(cfg.LogLevel))
	}
	cfg, err := parseConfig("arbiter", args, os.Getenv)
	if err != nil {
		return err
	}
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, newLogger(cfg.LogLevel))
	}
	m := NewMain(cfg, newLogger(cfg.LogLevel))
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.logger.Info("shutting down")
	return m.Close()
}
