// Command arbiter is the next-best-action decision server. Its
// subcommands are in usage below; see Config for flags and environment
// variables.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

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

const usage = `arbiter: the next-best-action decision server.

Usage:
  arbiter serve [flags]     serve gRPC from the Redis at -redis-addr, following the
                            definitions set published there; -catalog, -model and
                            -consent-policy (all three) are published first when
                            Redis has none. The default: arbiter [flags] is the same
  arbiter demo [flags]      serve the demo: an embedded, in-memory Redis-protocol
                            store seeded with the demo population, and the demo
                            definitions (nothing is persisted)
  arbiter seed [flags]      load the demo population into the Redis at -redis-addr
  arbiter migrate [flags]   convert data that earlier versions stored in the Redis
                            at -redis-addr to the current formats (one-off, safe to
                            repeat)
  arbiter validate DIR      check a definitions directory (catalog.json, model.json,
                            consent_policy.json) without a server
  arbiter definitions publish [flags] DIR
                            validate DIR, store it in the Redis at -redis-addr, make it
                            the active set and wait until every live replica uses it
  arbiter definitions simulate -receipts FROM..TO [-list] [-json] [flags] DIR
                            dry run: make the decisions logged from FROM to TO again
                            under the definitions in DIR, and report what would change
                            (recommendations gained and lost, suppressions by reason,
                            recipients whose top action changes); writes nothing
  arbiter help              this text; arbiter SUBCOMMAND -h lists its flags`

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "definitions" {
		if len(args) == 0 || (args[0] != "publish" && args[0] != "simulate") {
			return errors.New("arbiter definitions: want arbiter definitions publish|simulate [flags] DIR")
		}
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve", "demo", "seed", "migrate", "validate", "publish", "simulate":
	case "help":
		fmt.Println(usage)
		return nil
	default:
		return fmt.Errorf("unknown subcommand %q (arbiter help lists them)", cmd)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs connection trouble through a package-level logger;
	// send it to our structured log instead of bare stderr lines.
	redis.SetLogger(redisLogger{newLogger(os.Getenv("ARBITER_LOG_LEVEL"))})
	cfg, err := parseConfigTo(cmd, args, os.Getenv, os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(cfg.LogLevel)
	switch cmd {
	case "seed":
		return Seed(ctx, cfg, logger)
	case "migrate":
		return Migrate(ctx, cfg, logger, os.Stderr)
	case "validate":
		return Validate(cfg.DefinitionsDir, os.Stdout)
	case "publish":
		return Publish(ctx, cfg, os.Stdout)
	case "simulate":
		from, to, err := parseWindow(cfg.SimulateWindow, time.Now())
		if err != nil {
			return err
		}
		out := io.Writer(os.Stdout)
		if cfg.SimulateJSON {
			out = nil
		}
		rep, err := Simulate(ctx, cfg, from, to, cfg.SimulateList, out, os.Stderr)
		if err != nil {
			return err
		}
		if cfg.SimulateJSON {
			return writeReportJSON(os.Stdout, rep)
		}
		return nil
	}
	if cfg.GCPercent > 0 {
		debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, logger)
	}
	m := NewMain(cfg, logger)
	if err := m.Run(ctx); err != nil {
		m.Close()
		return err
	}
	<-ctx.Done()
	m.logger.Info("shutting down")
	return m.Close()
}
