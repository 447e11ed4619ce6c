package main

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/authn"
	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/contact"
	"github.com/arbiter-nba/arbiter/decision"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/hcpcache"
	"github.com/arbiter-nba/arbiter/internal/ordered"
	"github.com/arbiter-nba/arbiter/recipient"
	"github.com/arbiter-nba/arbiter/redisstore"
	"github.com/arbiter-nba/arbiter/rules"
	// The rules engine (CEL): it registers itself with package rules.
	_ "github.com/arbiter-nba/arbiter/celrules"
	"github.com/arbiter-nba/arbiter/scoring"
	"github.com/arbiter-nba/arbiter/server"
)

// consentReplicaTimeout bounds how long a consent write waits for its
// replicas (-consent-replicas) before it is reported as failed.
const consentReplicaTimeout = 2 * time.Second

// Main is the server program: configuration in, a serving gRPC server out.
// End-to-end tests run it exactly as the binary does, on 127.0.0.1:0.
type Main struct {
	cfg    Config
	logger *slog.Logger

	mini     *miniredis.Miniredis
	rdb      redis.UniversalClient
	store    *redisstore.Store
	cache    *hcpcache.Cache // nil without -hcp-cache
	follow   *follower       // keeps the engine on the active definitions
	srv      *server.Server
	grpc     *grpc.Server
	lis      net.Listener
	serveErr chan error
	// metricsLis and metrics serve /metrics when cfg.MetricsAddr is set.
	metricsLis net.Listener
	metrics    *http.Server
	// httpLis and http serve the HTTP/JSON API when cfg.HTTPListen is set.
	httpLis net.Listener
	http    *http.Server

	// redisHooks are added to the Redis client; tests use one to count
	// round trips.
	redisHooks []redis.Hook
	// clock is the server's clock for what "now" and "the past" mean to
	// WhyNot (time.Now; a test moves it).
	clock func() time.Time
	// tp traces calls (tracing.go; nil: tracing off). spanExporter, set
	// by a test, turns tracing on and takes the spans instead of OTLP.
	tp           *sdktrace.TracerProvider
	spanExporter sdktrace.SpanExporter
}

// NewMain returns a Main for the configuration.
func NewMain(cfg Config, logger *slog.Logger) *Main {
	return &Main{cfg: cfg, logger: logger, clock: time.Now}
}

// Addr is the address the server listens on, once Run has returned.
func (m *Main) Addr() string { return m.lis.Addr().String() }

// MetricsAddr is the address /metrics is served on, once Run has returned
// (empty without -metrics-addr).
func (m *Main) MetricsAddr() string {
	if m.metricsLis == nil {
		return ""
	}
	return m.metricsLis.Addr().String()
}

// HTTPAddr is the address the HTTP/JSON API is served on, once Run has
// returned (empty without -http-listen).
func (m *Main) HTTPAddr() string {
	if m.httpLis == nil {
		return ""
	}
	return m.httpLis.Addr().String()
}

// Run opens the store, loads catalog, model and policy, and starts serving
// in the background. In demo mode it starts the embedded demo store and
// seeds it with the demo population.
func (m *Main) Run(ctx context.Context) error {
	bootstrap, err := loadDefinitions(m.cfg)
	if err != nil {
		return err
	}
	if m.cfg.OTLPEndpoint != "" || m.spanExporter != nil {
		if m.tp, err = newTracerProvider(ctx, m.cfg, m.spanExporter); err != nil {
			return err
		}
		m.logger = slog.New(traceLogHandler{m.logger.Handler()})
		traceErrors(m.logger)
		m.logger.Info("tracing: spans exported over OTLP", "endpoint", m.cfg.OTLPEndpoint, "sample", m.cfg.TraceSample,
			"insecure", m.cfg.OTLPInsecure)
	}
	if m.cfg.Demo {
		m.mini = miniredis.NewMiniRedis()
		if err := m.mini.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded store: %w", err)
		}
		m.logger.Warn("arbiter demo: serving from the EMBEDDED DEMO STORE (in memory, lost on exit) with demo data",
			"redis", m.mini.Addr(), "demo_hcps", m.cfg.DemoSize)
		m.rdb = redis.NewClient(&redis.Options{Addr: m.mini.Addr()})
	} else {
		if m.rdb, err = newRedis(m.cfg); err != nil {
			return err
		}
		m.logger.Info("redis", "addr", m.cfg.RedisAddr, "cluster", m.cfg.RedisCluster, "prefix", m.cfg.RedisPrefix)
	}
	for _, h := range m.redisHooks {
		m.rdb.AddHook(h)
	}
	sopts := []redisstore.Option{redisstore.WithPrefix(m.cfg.RedisPrefix), redisstore.WithPreviousReaders(m.cfg.RollingUpgrade)}
	if m.cfg.ConsentReplicas > 0 {
		sopts = append(sopts, redisstore.WithReplicaAck(m.cfg.ConsentReplicas, consentReplicaTimeout))
	}
	if m.cfg.PipelineWorkers > 0 {
		sopts = append(sopts, redisstore.WithAutoPipeline(m.cfg.PipelineWorkers, 128, 3*time.Second))
	}
	if m.store, err = redisstore.New(m.rdb, sopts...); err != nil {
		return err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = m.store.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if m.mini == nil && m.cfg.Durability != "off" {
		if err := m.checkDurability(ctx); err != nil {
			return err
		}
	}
	var loader decision.Loader = m.store
	if m.cfg.HCPCache > 0 {
		if m.cache, err = m.newCache(ctx); err != nil {
			return err
		}
		loader = m.cache
	}
	idKey, chainKey, err := m.auditKeys()
	if err != nil {
		return err
	}
	if chainKey != nil {
		m.store.SetChainKey(chainKey)
	}
	if m.mini != nil {
		start := time.Now()
		if err := seed(ctx, m.store, m.cfg.DemoSize); err != nil {
			return err
		}
		m.logger.Info("demo population loaded", "hcps", m.cfg.DemoSize, "took", time.Since(start).Round(time.Millisecond).String())
	}
	m.follow = newFollower(m.store, loader, m.logger, m.cfg.DefinitionsPoll)
	m.follow.engineOpts = append(m.follow.engineOpts, decision.WithIDKey(idKey))
	if m.tp != nil {
		m.follow.engineOpts = append(m.follow.engineOpts, decision.WithObserver(server.PhaseTracer(m.tp)))
	}
	if m.cfg.Receipts != server.ReceiptsOff {
		build := buildID()
		m.follow.engineOpts = append(m.follow.engineOpts, decision.WithReceiptEncoder(func(rc *decision.Receipt) ([]byte, error) {
			rc.Build = build // a booking's receipt, written by its script
			return server.EncodeReceipt(rc)
		}))
	}
	m.store.SetReceiptRetention(m.cfg.ReceiptRetention)
	if err := m.follow.start(ctx, bootstrap); err != nil {
		return err
	}
	srvOpts := []server.Option{server.WithLogger(m.logger), server.WithMaxDeadline(m.cfg.MaxDeadline),
		server.WithAccessLog(m.cfg.AccessLog), server.WithAdmission(m.cfg.MaxInFlight, m.cfg.AdmissionWait),
		server.WithRateLimit(m.cfg.RateLimit, m.cfg.RateBurst)}
	if m.tp != nil {
		srvOpts = append(srvOpts, server.WithTracing(m.tp))
	}
	var reg *prometheus.Registry
	if m.cfg.MetricsAddr != "" {
		reg = newRegistry(m.cache)
		srvOpts = append(srvOpts, server.WithMetrics(reg))
	}
	if m.cfg.AuthJWKS != "" || m.cfg.AuthJWKSURL != "" {
		o := authn.Options{Issuer: m.cfg.AuthIssuer, Audience: m.cfg.AuthAudience}
		var v *authn.Verifier
		if m.cfg.AuthJWKS != "" {
			v, err = authn.NewFromFile(m.cfg.AuthJWKS, o)
		} else {
			v, err = authn.NewFromURL(ctx, m.cfg.AuthJWKSURL, o)
		}
		if err != nil {
			return err
		}
		srvOpts = append(srvOpts, server.WithAuthenticator(v))
		m.logger.Info("authentication: bearer tokens verified against the key set", "jwks", m.cfg.AuthJWKS,
			"jwks_url", m.cfg.AuthJWKSURL, "issuer", m.cfg.AuthIssuer, "audience", m.cfg.AuthAudience)
	}
	if m.cfg.TLSClientCA != "" {
		srvOpts = append(srvOpts, server.WithClientCertPrincipals())
		m.logger.Info("authentication: client certificates verified against the CA (mutual TLS)", "ca", m.cfg.TLSClientCA)
	}
	if m.cfg.AuthJWKS == "" && m.cfg.AuthJWKSURL == "" && m.cfg.TLSClientCA == "" {
		m.logger.Warn("NO AUTHENTICATION: anyone who can reach the listener may read and change consent; give -auth-jwks",
			"listen", m.cfg.Listen)
	}
	if m.cfg.AdminRPC {
		srvOpts = append(srvOpts, server.WithDefinitionsAdmin(definitionsAdmin{m.store}))
		if m.cfg.AuthJWKS == "" && m.cfg.AuthJWKSURL == "" {
			m.logger.Warn("DefinitionsService is served (-admin-rpc) without authentication: anyone who can reach the port can change the fleet's definitions")
		}
	}
	srvOpts = append(srvOpts, server.WithSender(m.follow), server.WithSendStreamLimits(m.cfg.SendIdle, 10_000_000),
		server.WithJourneys(m.follow, m.store), server.WithExplainer(m.follow), server.WithClock(m.clock),
		server.WithDecisionLog(m.store, m.follow, server.ReceiptConfig{Mode: m.cfg.Receipts, Queue: m.cfg.ReceiptQueue,
			Build: buildID(), Key: idKey}))
	if chainKey != nil {
		srvOpts = append(srvOpts, server.WithAuditTrail(m.store, chainKey))
	}
	events := eventStore{m.store, m.follow.JourneySteps, m.follow.FirstStepAt}
	if m.srv, err = server.New(m.follow, events, m.store, srvOpts...); err != nil {
		return err
	}

	// Connections are recycled now and then (with a grace period for calls
	// in flight) so that clients balancing over DNS find new instances.
	// Keepalive pings more often than every 10 s are a client's abuse:
	// the connection is closed (ENHANCE_YOUR_CALM). A connection carries at
	// most -max-concurrent-streams calls at once.
	gopts := []grpc.ServerOption{grpc.KeepaliveParams(keepalive.ServerParameters{
		MaxConnectionAge: m.cfg.MaxConnectionAge, MaxConnectionAgeGrace: 30 * time.Second,
	}), grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(uint32(m.cfg.MaxStreams)), grpc.InTapHandle(m.srv.TapAdmission)}
	var httpTLS *tls.Config // the HTTP listener's: the same certificate and client CAs
	creds := insecure.NewCredentials()
	if m.cfg.TLSCert != "" {
		certs, err := newCertReloader(m.cfg.TLSCert, m.cfg.TLSKey)
		if err != nil {
			return err
		}
		tc := certs.config()
		if m.cfg.TLSClientCA != "" {
			pem, err := os.ReadFile(m.cfg.TLSClientCA)
			if err != nil {
				return fmt.Errorf("tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return errors.New("tls-client-ca: no certificate in the file")
			}
			// A certificate is one way in; a call without one may still
			// bring a token.
			tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
		httpTLS = tc.Clone()
		creds = credentials.NewTLS(tc)
	}
	// A client that resets streams past its budget loses its connection
	// (server/resets.go: the rapid-reset attack).
	gopts = append(gopts, grpc.Creds(server.WithResetLimit(creds, server.ResetLimit{
		PerSecond: float64(m.cfg.ResetLimit), Burst: float64(m.cfg.ResetLimit), Closed: &resetClosed})))
	// Reused goroutines keep the stack a call has grown: with a goroutine
	// per call, growing it was 7% of the server's CPU under load (pprof,
	// bench/RESULTS.md).
	if m.cfg.StreamWorkers > 0 {
		gopts = append(gopts, grpc.NumStreamWorkers(uint32(m.cfg.StreamWorkers)))
	}
	m.grpc = m.srv.NewGRPCServer(gopts...)
	var services []string
	for name := range m.grpc.GetServiceInfo() {
		services = append(services, name)
	}
	m.follow.setHealth(true)
	m.follow.attachHealth(m.srv.Health(), services)
	var httpHandler http.Handler
	if m.cfg.HTTPListen != "" {
		authenticated := m.cfg.AuthJWKS != "" || m.cfg.AuthJWKSURL != "" || m.cfg.TLSClientCA != ""
		if httpHandler, err = newHTTPHandler(m.grpc, authenticated); err != nil {
			return err
		}
	}
	if reg != nil {
		if m.metricsLis, err = net.Listen("tcp", m.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics listen: %w", err)
		}
	}
	if m.cfg.HTTPListen != "" {
		if m.httpLis, err = net.Listen("tcp", m.cfg.HTTPListen); err != nil {
			return fmt.Errorf("http-listen: %w", err) // Close closes the metrics listener
		}
	}
	m.lis, err = net.Listen("tcp", m.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err) // Close closes the metrics and HTTP listeners
	}
	if reg != nil {
		m.metrics = serveMetrics(m.metricsLis, reg, m.logger)
		m.logger.Info("metrics served", "addr", "http://"+m.MetricsAddr()+"/metrics")
	}
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- m.grpc.Serve(m.lis) }()
	if m.httpLis != nil {
		m.http = newHTTPServer(httpHandler, httpTLS, m.cfg.MaxStreams, m.logger)
		go serveHTTP(m.http, m.httpLis, m.logger)
		scheme := "http://"
		if httpTLS != nil {
			scheme = "https://"
		}
		m.logger.Info("HTTP/JSON API served", "addr", m.HTTPAddr(), "openapi", scheme+m.HTTPAddr()+"/openapi.json")
	}
	e := m.follow.Engine()
	m.logger.Info("arbiter serving", "addr", m.Addr(), "definitions", m.follow.Version(), "catalog", e.Catalog().Version,
		"actions", len(e.Catalog().Actions), "model", e.ModelVersion())
	return nil
}

// auditKeys are the keys derived from the -audit-key secret: the decision
// id key, and the consent chain key. Without the secret, the id key is
// random for this process (with a warning, but for the demo) and there is
// no chain key (ledger entries are written unsealed), except in the demo,
// whose store lives no longer than the process.
func (m *Main) auditKeys() (*decision.IDKey, []byte, error) {
	secret, err := readAuditSecret(m.cfg.AuditKeyFile)
	if err != nil {
		return nil, nil, err
	}
	sealed := secret != nil || m.mini != nil
	if secret == nil {
		secret = make([]byte, 32)
		_, _ = rand.Read(secret)
		if m.mini == nil {
			m.logger.Warn("NO AUDIT KEY: decision ids are sealed with a random key of this process (GetDecision and outcome links work only for its own decisions, until it restarts), and consent ledger entries are not sealed; give -audit-key")
		}
	}
	idKey, err := decision.NewIDKey(secret)
	if err != nil {
		return nil, nil, err
	}
	if !sealed {
		return idKey, nil, nil
	}
	chainKey, err := chainKeyOf(secret)
	return idKey, chainKey, err
}

// chainKeyOf derives the consent chain key from the audit secret.
func chainKeyOf(secret []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, "arbiter consent chain v1", 32)
}

// readAuditSecret reads the audit secret file (nil for none).
func readAuditSecret(file string) ([]byte, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("audit-key: %w", err)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) < 32 {
		return nil, errors.New("audit-key: the file must hold at least 32 bytes of secret (e.g. openssl rand -hex 32)")
	}
	return secret, nil
}

// buildID names this server's build: its module version and VCS revision.
func buildID() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	id := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			id += "+" + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				id += "-dirty"
			}
		}
	}
	return id
}

// newCache puts the HCP cache in front of the store, tracking the keys of
// its read plan on a connection of its own to the same single Redis
// (parseConfig refuses the cache with a cluster or the demo store).
func (m *Main) newCache(ctx context.Context) (*hcpcache.Cache, error) {
	client, ok := m.rdb.(*redis.Client)
	if !ok {
		return nil, fmt.Errorf("hcp-cache: needs a single Redis client, not %T", m.rdb)
	}
	opt := client.Options()
	prefix, suffixes := m.store.ReadKeys()
	logger, size := m.logger, m.cfg.HCPCache
	return hcpcache.New(ctx, m.store, hcpcache.Options{
		Dial:      func(ctx context.Context) (net.Conn, error) { return opt.Dialer(ctx, opt.Network, opt.Addr) },
		Username:  opt.Username,
		Password:  opt.Password,
		KeyPrefix: prefix,
		Suffixes:  suffixes,
		HalfLife:  m.store.HalfLife(),
		MaxHCPs:   size,
		OnLoss: func(err error) {
			logger.Warn("HCP cache: tracking connection lost; reading Redis directly until it is back", "err", err)
		},
		OnConnect: func() { logger.Info("HCP cache: tracking connection up", "max_hcps", size) },
	})
}

// Close shuts down (server/drain.go): health NOT_SERVING for every
// service and "", so that load balancers stop sending, while calls are
// still served for the drain window; then the calls that wait on their
// client end (CheckSendBatch and import streams, health watches), and
// GracefulStop finishes the calls in flight. The grace period, counted
// from then, bounds everything that follows: GracefulStop has all but a
// fifth of it (then Stop), and the rest (writing the receipts still
// queued, exporting the spans still queued, closing the store) what is
// left. With Redis frozen those steps
// could each wait out a timeout; past the grace, Close returns without
// them, so that the process exits on time.
func (m *Main) Close() error {
	var deadline time.Time
	if m.grpc != nil {
		m.srv.Health().Shutdown()
		if m.cfg.ShutdownDrain > 0 {
			m.logger.Info("draining: health NOT_SERVING, still serving", "for", m.cfg.ShutdownDrain.String())
			time.Sleep(m.cfg.ShutdownDrain)
		}
		deadline = time.Now().Add(m.cfg.ShutdownGrace)
		stopBy := deadline.Add(-m.cfg.ShutdownGrace / 5)
		m.srv.StopStreams()
		// The HTTP/JSON calls first: they reach gRPC through ServeHTTP,
		// whose connections GracefulStop would close under them.
		if m.http != nil {
			ctx, cancel := context.WithDeadline(context.Background(), stopBy)
			if err := m.http.Shutdown(ctx); err != nil {
				m.logger.Warn("grace period over; stopping HTTP calls in flight")
				m.http.Close()
			}
			cancel()
		} else if m.httpLis != nil {
			m.httpLis.Close()
		}
		done := make(chan struct{})
		go func() { m.grpc.GracefulStop(); close(done) }()
		timer := time.NewTimer(time.Until(stopBy))
		select {
		case <-done:
			timer.Stop()
		case <-timer.C:
			m.logger.Warn("grace period over; stopping with calls in flight")
			m.grpc.Stop()
			// A handler blocked in a Redis call (its I/O timeout ignores
			// the call's context) may outlive Stop: wait for it only
			// until the grace is over.
			select {
			case <-done:
			case <-time.After(time.Until(deadline)):
			}
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- m.closeStorage(deadline) }()
	if deadline.IsZero() {
		return <-closed
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case err := <-closed:
		return err
	case <-t.C:
		m.logger.Warn("grace period over: exiting without closing storage (is Redis answering?)")
		return nil
	}
}

// closeStorage writes the receipts still queued and exports the spans
// still queued (each until deadline, when set), and closes what talks to
// Redis.
func (m *Main) closeStorage(deadline time.Time) error {
	if m.grpc != nil {
		// Every call has ended: write the receipts still queued.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
		m.srv.CloseDecisionLog(ctx)
		cancel()
	}
	if m.tp != nil {
		// The spans still queued, the decision log's last writes' among
		// them, within what is left of the grace.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(context.Background(), deadline)
		}
		if err := m.tp.Shutdown(ctx); err != nil {
			m.logger.Warn("tracing: spans not flushed on shutdown", "err", err)
		}
		cancel()
	}
	var errs []error
	if m.metrics != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		errs = append(errs, m.metrics.Shutdown(ctx))
		cancel()
	} else if m.metricsLis != nil {
		m.metricsLis.Close()
	}
	if m.follow != nil {
		m.follow.close()
	}
	if m.cache != nil {
		m.cache.Close()
	}
	if m.store != nil {
		m.store.Close()
	}
	if m.rdb != nil {
		errs = append(errs, m.rdb.Close())
	}
	if m.mini != nil {
		m.mini.Close()
	}
	return errors.Join(errs...)
}

// checkDurability checks, at start, that every Redis master persists what
// it acknowledges: without AOF a restart silently loses acknowledged
// consent changes and events. As configured, it warns loudly or refuses
// to start; a master that refuses CONFIG (a managed service) gets a
// warning saying it could not be checked.
func (m *Main) checkDurability(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ds, err := m.store.CheckDurability(cctx)
	if err != nil {
		if m.cfg.Durability == "refuse" {
			return fmt.Errorf("redis: check durability: %w", err)
		}
		m.logger.Warn("DURABILITY UNKNOWN: the check at start failed; make sure AOF is on (appendonly yes, appendfsync everysec or always)", "err", err)
		return nil
	}
	var bad []string
	for _, d := range ds {
		switch {
		case d.Unknown:
			m.logger.Warn("DURABILITY UNKNOWN: this Redis does not allow CONFIG GET; make sure AOF is on (appendonly yes, appendfsync everysec or always), or acknowledged consent changes can be lost on a restart",
				"redis", d.Addr)
		case !d.Durable():
			bad = append(bad, fmt.Sprintf("%s (appendonly %s, appendfsync %s)", d.Addr, d.AppendOnly, d.FsyncPolicy))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	msg := "Redis does not persist acknowledged writes: a restart would silently lose acknowledged consent changes and events; set appendonly yes and appendfsync everysec (or always) on " +
		strings.Join(bad, ", ")
	if m.cfg.Durability == "refuse" {
		return errors.New(msg + " (-durability refuse)")
	}
	m.logger.Warn("NOT DURABLE: "+msg, "redis", strings.Join(bad, ", "))
	return nil
}

// Redis client settings. A decision reads two small hashes, a fraction of
// a millisecond of Redis time; these settings bound what a sick Redis can
// cost it, so that it fails fast with codes.Unavailable (the caller retries,
// on another Arbiter or later) rather than waiting out its deadline, and
// keep connection set-up off the decision path.
const (
	// redisDialTimeout bounds connecting. On a LAN a dial takes well under
	// a millisecond; a host that is gone without a reset (power loss, a
	// partition) would otherwise hold decisions for go-redis's 5 s default.
	redisDialTimeout = time.Second
	// redisDialAttempts is how often one connection is dialled before the
	// command fails (go-redis's default is 5, 100 ms apart). The command
	// is retried anyway: by go-redis's MaxRetries on a single Redis, and on
	// a cluster after re-reading the slot map, which is what recovers from
	// a failover; dialling a dead node again only delays that. (The
	// auto-pipeline's 3 s batch timeout was reached before a Redis that is
	// down was reported as such: the caller got DeadlineExceeded instead of
	// Unavailable.)
	redisDialAttempts = 1
	// redisIOTimeout bounds waiting for a reply or writing a request
	// (ReadTimeout, WriteTimeout; default 5 s). The longest reply Arbiter
	// waits for, an import batch of 512 profile scripts, takes about 10 ms.
	// go-redis bounds socket I/O by these and not by each call's context
	// (ContextTimeoutEnabled stays false), so that a caller's short
	// deadline does not close a healthy connection in mid-reply and push a
	// new dial and handshake onto the next decision.
	redisIOTimeout = 2 * time.Second
	// redisMinIdleConns connections are kept open (per node on a cluster)
	// so that a burst of decisions after a quiet spell does not wait for
	// TCP and HELLO handshakes. Four is the default number of
	// auto-pipelining workers, each of which holds one connection per node
	// while its batch is in flight. The pool itself keeps go-redis's
	// default size (10 per CPU on a single Redis, 5 per CPU per cluster
	// node), far above what the pipelined decision path uses.
	redisMinIdleConns = 4
	// redisClusterReloadInterval is how old go-redis lets its copy of the
	// cluster's slot map get (default 60 s) before re-reading it (CLUSTER
	// SLOTS, to one node, in the background). go-redis also re-reads it at
	// once on a MOVED or ASK reply, but not when a node stops answering: a
	// failed master's slots would stay routed to it, and fail, until the
	// next reload. reloadOnConnError below covers that case; this interval
	// bounds how stale the map can get otherwise.
	redisClusterReloadInterval = 5 * time.Second
)

// newRedis returns the client the configuration asks for: a Redis Cluster
// client when cfg.RedisCluster is set (never guessed from the addresses,
// which parseConfig checks), else a client of the one server.
func newRedis(cfg Config) (redis.UniversalClient, error) {
	tlsConfig, err := redisTLS(cfg)
	if err != nil {
		return nil, err
	}
	addrs := strings.Split(cfg.RedisAddr, ",")
	if cfg.RedisCluster {
		cc := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:         addrs,
			Username:      cfg.RedisUser,
			Password:      cfg.RedisPassword,
			DialTimeout:   redisDialTimeout,
			DialerRetries: redisDialAttempts,
			ReadTimeout:   redisIOTimeout,
			WriteTimeout:  redisIOTimeout,
			MinIdleConns:  redisMinIdleConns,
			// Reads go to masters only (ReadOnly, RouteByLatency and
			// RouteRandomly stay off): replication is asynchronous, and
			// a replica may not have an opt-out its master acknowledged.
			//
			// Up to 3 redirects or retries per command (the default): a
			// MOVED or ASK while slots migrate, or a retry after a
			// connection error, each with the slot map as last read. On a
			// connection error go-redis backs off at most 30, 50 and
			// 90 ms (MinRetryBackoff 10 ms, doubled, jittered), so a
			// command for a dead master fails within about 200 ms, and
			// the slot map its failure has go-redis re-read
			// (reloadOnConnError) is what the next decision uses.
			MaxRedirects:               3,
			ClusterStateReloadInterval: redisClusterReloadInterval,
			TLSConfig:                  tlsConfig,
		})
		cc.AddHook(reloadOnConnError{cc})
		return cc, nil
	}
	return redis.NewClient(&redis.Options{
		Addr:          addrs[0],
		Username:      cfg.RedisUser,
		Password:      cfg.RedisPassword,
		DialTimeout:   redisDialTimeout,
		DialerRetries: redisDialAttempts,
		ReadTimeout:   redisIOTimeout,
		WriteTimeout:  redisIOTimeout,
		MinIdleConns:  redisMinIdleConns,
		TLSConfig:     tlsConfig,
	}), nil
}

// redisTLS is the TLS configuration of the Redis connections: nil without
// -redis-tls; else TLS 1.2 at least, the server's certificate verified
// against -redis-ca or the system's roots.
func redisTLS(cfg Config) (*tls.Config, error) {
	if !cfg.RedisTLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.RedisCA != "" {
		data, err := os.ReadFile(cfg.RedisCA)
		if err != nil {
			return nil, fmt.Errorf("redis-ca: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(data) {
			return nil, errors.New("redis-ca: no certificate in the file")
		}
	}
	return tc, nil
}

// reloadOnConnError makes a ClusterClient re-read the slot map as soon as a
// command or pipeline fails for want of a connection: a node refused, reset
// or timed out. When a master dies, its replica is promoted within a couple
// of seconds (cluster-node-timeout plus the election), but nothing tells
// go-redis: the dead node sends no MOVED. Without this the failed-over
// slots would stay unreachable until the periodic reload. ReloadState is
// cheap to call often: go-redis runs one reload at a time, at most one every
// 200 ms, in the background.
type reloadOnConnError struct{ cc *redis.ClusterClient }

func (h reloadOnConnError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnConnError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if isConnError(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

func (h reloadOnConnError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if isConnError(err) {
			h.cc.ReloadState(ctx)
		}
		return err
	}
}

// isConnError reports whether err says a node could not be reached or
// stopped answering, as opposed to a reply from Redis (MOVED and ASK
// already reload the slot map) or the caller's context ending.
func isConnError(err error) bool {
	var reply redis.Error
	var op *net.OpError
	switch {
	case err == nil, errors.As(err, &reply):
		return false
	case errors.As(err, &op): // refused, reset, i/o timeout
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// loadDefinitions returns the definitions the server starts with, to be
// published when Redis has no active set yet: the files given, or in demo
// mode the demo's for each file not given. nil when no file is given
// outside demo mode: the server then follows the active set.
func loadDefinitions(cfg Config) (*definitions.Set, error) {
	if !cfg.Demo && cfg.CatalogFile == "" {
		return nil, nil // parseConfig: all three files or none
	}
	files := map[string][]byte{
		definitions.CatalogFile: catalog.DemoJSON(),
		definitions.ModelFile:   scoring.DemoJSON(),
		definitions.PolicyFile:  consent.DefaultPolicyJSON(),
	}
	if cfg.Demo {
		files[definitions.ContactFile] = contact.DemoJSON()
		files[definitions.RulesFile] = rules.DemoJSON()
	}
	for name, path := range map[string]string{definitions.CatalogFile: cfg.CatalogFile,
		definitions.ModelFile: cfg.ModelFile, definitions.PolicyFile: cfg.PolicyFile,
		definitions.ContactFile: cfg.ContactFile, definitions.RulesFile: cfg.RulesFile} {
		if path == "" {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		files[name] = data
	}
	set, err := definitions.Parse(files)
	if err != nil {
		return nil, fmt.Errorf("%w (files: -catalog %q, -model %q, -consent-policy %q)", err, cfg.CatalogFile, cfg.ModelFile, cfg.PolicyFile)
	}
	return set, nil
}

// seed writes the demo population, made of domain values by package demo,
// through the same import path a CRM feed uses.
func seed(ctx context.Context, store *redisstore.Store, n int) error {
	now := time.Now().UTC().Truncate(time.Second)
	const batch = 1000
	for start := 1; start <= n; start += batch {
		end := min(start+batch-1, n)
		items := make([]recipient.ImportItem, 0, end-start+1)
		for i := start; i <= end; i++ {
			items = append(items, demo.HCP(i, now))
		}
		if err := store.Import(ctx, items); err != nil {
			return fmt.Errorf("seed demo population: %w", err)
		}
	}
	// The hospital's patients beside the HCPs: one for every five HCPs,
	// indexed as members of the journeys whose first step waits for one
	// of their times (an appointment), as the server's writes are.
	if patients := demo.Patients(n/5, now); len(patients) > 0 {
		demoEngine, err := decision.New(store, definitions.Demo().Model, definitions.Demo().Catalog, definitions.Demo().Policy,
			decision.WithRules(definitions.Demo().Rules))
		if err != nil {
			return err
		}
		patientStore := eventStore{Store: store, firstStep: demoEngine.FirstStepAt}
		for start := 0; start < len(patients); start += batch {
			if err := patientStore.Import(ctx, patients[start:min(start+batch, len(patients))]); err != nil {
				return fmt.Errorf("seed demo patients: %w", err)
			}
		}
	}
	return seedJourneys(ctx, store, n, now)
}

// seedJourneys applies the demo population's journey events, as the event
// path does: each makes its recipient a member of the demo journeys it is
// a step of (ListDue and the KPIs read them).
func seedJourneys(ctx context.Context, store *redisstore.Store, n int, now time.Time) error {
	defs := definitions.Demo()
	member := func(action string) []string {
		var out []string
		for _, j := range defs.Rules.Journeys {
			for _, s := range j.Steps {
				if slices.Contains(s.Actions, action) {
					out = append(out, j.ID)
				}
			}
		}
		return out
	}
	// A few recipients at a time: the embedded store runs each event's
	// script slowly, and a recipient's events must apply in order.
	errs := make([]error, n)
	return ordered.Run(ctx, n, 8, 64, func(ctx context.Context, i int) {
		for _, e := range demo.JourneyEvents(i+1, now) {
			err := store.AddJourneyMember(ctx, member(e.ActionID), e.HCPID, e.OccurredAt)
			if err == nil {
				_, err = store.ApplyEvent(ctx, e)
			}
			if err != nil {
				errs[i] = fmt.Errorf("seed demo journeys: %w", err)
				return
			}
		}
	}, func(i int) error { return errs[i] })
}

// Validate checks a definitions directory without a server and prints its
// version, or every problem found (naming the file and the item).
func Validate(dir string, out io.Writer) error {
	set, err := definitions.Load(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s: valid, version %s (catalog %s, %d actions; model %s)\n", dir, set.Version,
		set.Catalog.Version, len(set.Catalog.Actions), set.Model.Version)
	return nil
}

// definitionsAdmin is the server's DefinitionsService over the store.
type definitionsAdmin struct{ store *redisstore.Store }

func (d definitionsAdmin) Publish(ctx context.Context, set *definitions.Set) (confirmed, unconfirmed []string, err error) {
	res, err := d.store.PublishDefinitions(ctx, set, publishWait)
	return res.Confirmed, res.Unconfirmed, err
}

func (d definitionsAdmin) Active(ctx context.Context) (*definitions.Set, error) {
	v, err := d.store.ActiveVersion(ctx)
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, fmt.Errorf("active definitions: %w", arbiter.ErrNotFound)
	}
	return d.store.LoadDefinitions(ctx, v)
}

// publishWait bounds how long a publish waits for the replicas.
const publishWait = 10 * time.Second

// Publish validates the definitions directory, publishes it as the active
// set and waits until every live replica uses it. A replica that does not
// confirm in time is named, and the command fails: its operator must look.
func Publish(ctx context.Context, cfg Config, out io.Writer) error {
	set, err := definitions.Load(cfg.DefinitionsDir)
	if err != nil {
		return err // the active set keeps serving
	}
	return withStore(cfg, func(store *redisstore.Store) error {
		res, err := store.PublishDefinitions(ctx, set, publishWait)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s: %d live replicas use it\n", res.Version, len(res.Confirmed))
		if len(res.Unconfirmed) > 0 {
			return fmt.Errorf("%d live replicas did not confirm %s within %s: %s (they refuse decisions and report not ready until they can load it)",
				len(res.Unconfirmed), res.Version, publishWait, strings.Join(res.Unconfirmed, ", "))
		}
		return nil
	})
}

// withStore runs f on a store of the configured Redis, for the one-off
// subcommands, and closes both after.
func withStore(cfg Config, f func(store *redisstore.Store) error) error {
	rdb, err := newRedis(cfg)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store, err := redisstore.New(rdb, redisstore.WithPrefix(cfg.RedisPrefix), redisstore.WithPreviousReaders(cfg.RollingUpgrade))
	if err != nil {
		return err
	}
	defer store.Close()
	// What this command writes to the consent ledger is sealed as the
	// servers seal it.
	secret, err := readAuditSecret(cfg.AuditKeyFile)
	if err != nil {
		return err
	}
	if secret != nil {
		chainKey, err := chainKeyOf(secret)
		if err != nil {
			return err
		}
		store.SetChainKey(chainKey)
	}
	return f(store)
}

// Seed loads the demo population into the configured Redis.
func Seed(ctx context.Context, cfg Config, logger *slog.Logger) error {
	return withStore(cfg, func(store *redisstore.Store) error { return seedLogged(ctx, cfg, logger, store) })
}

func seedLogged(ctx context.Context, cfg Config, logger *slog.Logger, store *redisstore.Store) error {
	start := time.Now()
	if err := seed(ctx, store, cfg.DemoSize); err != nil {
		return err
	}
	logger.Info("demo population loaded", "hcps", cfg.DemoSize, "redis", cfg.RedisAddr, "prefix", cfg.RedisPrefix, "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// Migrate converts what earlier versions stored in the configured Redis
// to the current formats, printing its progress to progress.
func Migrate(ctx context.Context, cfg Config, logger *slog.Logger, progress io.Writer) error {
	return withStore(cfg, func(store *redisstore.Store) error { return migrateLogged(ctx, cfg, logger, store, progress) })
}

func migrateLogged(ctx context.Context, cfg Config, logger *slog.Logger, store *redisstore.Store, progress io.Writer) error {
	start := time.Now()
	res, err := store.Migrate(ctx, func(p redisstore.MigrateProgress) {
		fmt.Fprintf(progress, "\rmigrate: %d keys scanned, %d ledgers and %d profiles converted, %d failed; territory index: %d entries added, %d stale removed",
			p.Scanned, p.Ledgers, p.Profiles, p.Failed, p.Indexed, p.Unindexed)
	})
	fmt.Fprintln(progress)
	if err != nil {
		return err
	}
	logger.Info("migration done", "redis", cfg.RedisAddr, "prefix", cfg.RedisPrefix, "scanned", res.Scanned,
		"ledgers", res.Ledgers, "profiles", res.Profiles, "territory_entries_added", res.Indexed, "territory_entries_removed", res.Unindexed,
		"took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func newLogger(level string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(level)}))
}

// logLevel is the level a -log-level names; info when it names none.
func logLevel(level string) slog.Level {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		lvl = slog.LevelInfo
	}
	return lvl
}
