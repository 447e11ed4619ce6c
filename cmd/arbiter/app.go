package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/features"
	"github.com/arbiter-nba/arbiter/scoring"
	"github.com/arbiter-nba/arbiter/server"
)

// Main is the server program: configuration in, a serving gRPC server out.
// End-to-end tests run it exactly as the binary does, on 127.0.0.1:0.
type Main struct {
	cfg    Config
	logger *slog.Logger

	mini     *miniredis.Miniredis
	rdb      redis.UniversalClient
	fs       *features.Store
	srv      *server.Server
	grpc     *grpc.Server
	lis      net.Listener
	serveErr chan error

	// redisHooks are added to the Redis client; tests use one to count
	// round trips.
	redisHooks []redis.Hook
}

// NewMain returns a Main for the configuration.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	return &Main{cfg: cfg, logger: logger}
}

// Addr is the address the server listens on, once Run has returned.
func (m *Main) Addr() string { return m.lis.Addr().String() }

// Run opens the store, loads catalog, model and policy, and starts serving
// in the background. With no Redis address it starts the embedded demo
// store and seeds it with the demo population.
func (m *Main) Run(ctx context.Context) error {
	cat, model, policy, err := loadDefinitions(m.cfg)
	if err != nil {
		return err
	}
	if m.cfg.RedisAddr == "" {
		m.mini = miniredis.NewMiniRedis()
		if err := m.mini.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded store: %w", err)
		}
		m.logger.Warn("no ARBITER_REDIS_ADDR: serving from the EMBEDDED DEMO STORE (in memory, lost on exit); set ARBITER_REDIS_ADDR for a real Redis",
			"demo_hcps", m.cfg.DemoSize)
		m.rdb = redis.NewClient(&redis.Options{Addr: m.mini.Addr()})
	} else {
		m.rdb = newRedis(m.cfg)
	}
	for _, h := range m.redisHooks {
		m.rdb.AddHook(h)
	}
	fopts := []features.Option{features.WithPrefix(m.cfg.RedisPrefix)}
	if m.cfg.PipelineWorkers > 0 {
		fopts = append(fopts, features.WithAutoPipeline(m.cfg.PipelineWorkers, 128, 3*time.Second))
	}
	m.fs = features.NewStore(m.rdb, fopts...)
	fs := m.fs
	cs := consent.NewStore(m.rdb, consent.WithPrefix(m.cfg.RedisPrefix))
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = fs.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if m.mini != nil {
		start := time.Now()
		if err := seed(ctx, fs, m.cfg.DemoSize); err != nil {
			return err
		}
		m.logger.Info("demo population loaded", "hcps", m.cfg.DemoSize, "took", time.Since(start).Round(time.Millisecond).String())
	}
	engine := decision.New(fs, model, cat, policy)
	m.srv = server.New(engine, fs, cs, server.WithLogger(m.logger), server.WithMaxDeadline(m.cfg.MaxDeadline))
	m.grpc = m.srv.NewGRPCServer()
	m.lis, err = net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.grpc.Serve(m.lis) }()
	m.logger.Info("arbiter serving", "addr", m.Addr(), "catalog", cat.Version, "actions", len(cat.Actions), "model", model.Version)
	return nil
}

// Close shuts down as grpc-go recommends: health NOT_SERVING so load
// balancers stop sending, GracefulStop to finish in-flight calls, raced
// against the grace period, then Stop. Then the store is closed.
func (m *Main) Close() error {
	if m.grpc != nil {
		m.srv.Health().Shutdown()
		done := make(chan struct{})
		go func() { m.grpc.GracefulStop(); close(done) }()
		timer := time.NewTimer(m.cfg.ShutdownGrace)
		select {
		case <-done:
			timer.Stop()
		case <-timer.C:
			m.logger.Warn("grace period over; stopping with calls in flight")
			m.grpc.Stop()
			<-done
		}
	}
	var errs []error
	if m.fs != nil {
		m.fs.Close()
	}
	if m.rdb != nil {
		errs = append(errs, m.rdb.Close())
	}
	if m.mini != nil {
		m.mini.Close()
	}
	return errors.Join(errs...)
}

func newRedis(cfg Config) redis.UniversalClient {
	addrs := strings.Split(cfg.RedisAddr, ",")
	if cfg.RedisCluster {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Password: cfg.RedisPassword})
	}
	return redis.NewClient(&redis.Options{Addr: addrs[0], Password: cfg.RedisPassword})
}

func loadDefinitions(cfg Config) (*catalog.Catalog, *scoring.Model, *consent.Policy, error) {
	cat, model, policy := catalog.Demo(), scoring.Demo(), consent.DefaultPolicy()
	if data, err := readOptional(cfg.CatalogFile); err != nil {
		return nil, nil, nil, err
	} else if data != nil {
		if cat, err = catalog.Parse(data); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.CatalogFile, err)
		}
	}
	if data, err := readOptional(cfg.ModelFile); err != nil {
		return nil, nil, nil, err
	} else if data != nil {
		if model, err = scoring.Parse(data); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.ModelFile, err)
		}
	}
	if data, err := readOptional(cfg.PolicyFile); err != nil {
		return nil, nil, nil, err
	} else if data != nil {
		if policy, err = consent.ParsePolicy(data); err != nil {
			return nil, nil, nil, fmt.Errorf("%s: %w", cfg.PolicyFile, err)
		}
	}
	return cat, model, policy, nil
}

// seed writes the demo population through the same import path a CRM
// feed uses.
func seed(ctx context.Context, fs *features.Store, n int) error {
	now := time.Now().UTC().Truncate(time.Second)
	const batch = 1000
	for start := 1; start <= n; start += batch {
		end := min(start+batch-1, n)
		items := make([]features.ImportItem, 0, end-start+1)
		for i := start; i <= end; i++ {
			items = append(items, demo.HCP(i, now))
		}
		if err := fs.Import(ctx, items); err != nil {
			return fmt.Errorf("seed demo population: %w", err)
		}
	}
	return nil
}

// Seed loads the demo population into the configured Redis.
func Seed(ctx context.Context, cfg Config, logger *slog.Logger) error {
	if cfg.RedisAddr == "" {
		return errors.New("seed needs a Redis: set ARBITER_REDIS_ADDR or -redis-addr")
	}
	rdb := newRedis(cfg)
	defer rdb.Close()
	fs := features.NewStore(rdb, features.WithPrefix(cfg.RedisPrefix))
	start := time.Now()
	if err := seed(ctx, fs, cfg.DemoSize); err != nil {
		return err
	}
	logger.Info("demo population loaded", "hcps", cfg.DemoSize, "prefix", cfg.RedisPrefix, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func newLogger(level string) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}
