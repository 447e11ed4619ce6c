package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/arbiter-nba/arbiter/server"
)

// Config is the server's configuration. Every field has a flag and an
// environment variable (ARBITER_<NAME>); a flag given on the command line
// wins over the environment.
type Config struct {
	// Demo serves the embedded demo store (arbiter demo): an in-process
	// Redis-protocol server seeded with the demo population, and the demo
	// definitions unless files are given. Never the production default.
	Demo   bool
	Listen string
	// HTTPListen, when set, serves the same API over HTTP/JSON (REST paths
	// of the protos' google.api.http options), Connect and gRPC-Web there,
	// through the gRPC server and its interceptors; and the OpenAPI
	// document at /openapi.json. arbiter demo: 127.0.0.1:8080.
	HTTPListen   string
	RedisAddr    string // required but in demo mode
	RedisCluster bool
	// RedisUser is the Redis ACL user (empty: the default user).
	RedisUser string
	// RedisTLS connects to Redis over TLS, verifying its certificate
	// against RedisCA (a PEM file) or, without one, the system's roots.
	RedisTLS bool
	RedisCA  string
	// RedisPassword comes from ARBITER_REDIS_PASSWORD or the file
	// -redis-password-file names, never from a flag, which ps shows.
	RedisPassword string
	RedisPrefix   string
	CatalogFile   string // required but in demo mode (there, empty: the demo catalog)
	ModelFile     string // likewise, the demo model
	PolicyFile    string // likewise, the demo consent policy
	ContactFile   string // the contact policy; optional (demo mode: the demo's)
	RulesFile     string // the behaviour rules; optional (demo mode: the demo's)
	DemoSize      int
	LogLevel      string
	ShutdownGrace time.Duration
	// MaxInFlight bounds the unary calls in flight (0: no bound);
	// AdmissionWait is how long a call waits for a slot before
	// RESOURCE_EXHAUSTED. MaxStreams bounds the concurrent streams (calls)
	// of one connection.
	MaxInFlight int
	// GCPercent is the collector's target (GOGC) the server sets; 0: leave
	// the runtime's (GOGC from the environment, or Go's 100).
	GCPercent     int
	AdmissionWait time.Duration
	MaxStreams    int
	// Durability says what to do when a Redis master does not persist
	// acknowledged writes (AOF off, or fsync "no"): "warn" (log loudly),
	// "refuse" (do not start) or "off" (do not check).
	Durability string
	// ShutdownDrain is how long the server goes on serving after health
	// turns NOT_SERVING, before it stops accepting calls.
	ShutdownDrain time.Duration
	MaxDeadline   time.Duration
	// SendIdle ends a CheckSendBatch stream when no item arrives for it.
	SendIdle time.Duration
	// PipelineWorkers > 0 makes concurrent decisions share Redis pipelines
	// (redisstore.WithAutoPipeline); 0 gives each decision its own.
	PipelineWorkers int
	// StreamWorkers > 0 serves calls on that many long-lived goroutines
	// (grpc.NumStreamWorkers) instead of a new goroutine per call, whose
	// stack then grows on every call; 0: a goroutine per call.
	StreamWorkers int
	// MaxConnectionAge recycles client connections, for DNS balancing.
	MaxConnectionAge time.Duration
	// ConsentReplicas > 0: a consent change is acknowledged only once that
	// many replicas have it (Redis WAIT).
	ConsentReplicas int
	// RollingUpgrade: the previous release shares this Redis; write only
	// what it reads (redisstore.WithPreviousReaders).
	RollingUpgrade bool
	// ResetLimit: stream resets a second a connection may send (as many
	// at once) before it is closed.
	ResetLimit int
	// AccessLog logs every call, not only failures.
	AccessLog bool
	// DebugAddr, when set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string
	// MetricsAddr, when set, serves Prometheus metrics at /metrics there.
	MetricsAddr string
	// OTLPEndpoint, when set, turns tracing on (tracing.go): spans are
	// exported over OTLP/gRPC to this collector, in plaintext with
	// OTLPInsecure, a TraceSample share of the calls whose caller did not
	// decide (parent-based). Empty: off, and nothing is installed.
	OTLPEndpoint string
	OTLPInsecure bool
	TraceSample  float64
	// DefinitionsPoll is how often a replica checks the active definitions
	// set and reports the one it uses (a publish also announces itself).
	DefinitionsPoll time.Duration
	// AdminRPC serves DefinitionsService (publishing definitions sets).
	AdminRPC bool
	// AuthJWKS is the JWKS file bearer tokens are verified against; with
	// AuthIssuer and AuthAudience. Empty: no authentication.
	AuthJWKS, AuthIssuer, AuthAudience string
	// AuthJWKSURL is the identity provider's key set URL, instead of a
	// file: fetched at start and refreshed as keys rotate.
	AuthJWKSURL string
	// InsecureNoAuth allows a listener off loopback without authentication.
	InsecureNoAuth bool
	// InsecurePlaintext allows a listener off loopback without TLS (behind
	// a proxy or mesh that encrypts).
	InsecurePlaintext bool
	// TLSCert and TLSKey serve gRPC over TLS (files re-read when they change).
	TLSCert, TLSKey string
	// TLSClientCA verifies client certificates (mutual TLS): a verified
	// certificate authenticates its subject, with its OUs as roles.
	TLSClientCA string
	// DefinitionsDir is the directory of arbiter validate and arbiter
	// definitions publish.
	DefinitionsDir string
	// HCPCache > 0 keeps up to that many HCPs' state in memory, kept exact
	// by Redis key tracking (package hcpcache); 0: off.
	HCPCache int
	// Receipts is how decisions are logged (server.ReceiptMode), with
	// ReceiptRetention in Redis and ReceiptQueue the asynchronous bound.
	Receipts         server.ReceiptMode
	ReceiptRetention time.Duration
	ReceiptQueue     int
	// RateLimit > 0 limits each principal to that many calls a second,
	// with bursts of RateBurst (server.WithRateLimit).
	RateLimit float64
	RateBurst int
	// SimulateWindow, SimulateList and SimulateJSON are arbiter
	// definitions simulate's -receipts FROM..TO, -list and -json.
	SimulateWindow             string
	SimulateList, SimulateJSON bool
	// AuditKeyFile holds the deployment's audit secret (kept outside
	// Redis): decision ids are sealed with a key derived from it. Empty:
	// a random key per process (ids then open only on the server that
	// made them, until it restarts).
	AuditKeyFile string
}

// parseConfig reads the flags of subcommand cmd ("serve", "demo", "seed" or
// "migrate"; args without the program and subcommand names) over the
// environment, and checks that what cmd needs is there. -h gives
// flag.ErrHelp, after the usage is printed to out.
func parseConfig(cmd string, args []string, getenv func(string) string) (Config, error) {
	return parseConfigTo(cmd, args, getenv, io.Discard)
}

func parseConfigTo(cmd string, args []string, getenv func(string) string, out io.Writer) (Config, error) {
	env := func(key, def string) string {
		if v := getenv("ARBITER_" + key); v != "" {
			return v
		}
		return def
	}
	c := Config{Demo: cmd == "demo"}
	fs := flag.NewFlagSet("arbiter "+cmd, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "%s\n\nFlags of arbiter %s (each also read from the environment variable named in brackets):\n", usage, cmd)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Listen, "listen", env("LISTEN", "127.0.0.1:50051"), "gRPC listen address (ARBITER_LISTEN)")
	httpDefault := ""
	if cmd == "demo" {
		httpDefault = "127.0.0.1:8080" // make run, then curl (docs/http.md)
	}
	fs.StringVar(&c.HTTPListen, "http-listen", env("HTTP_LISTEN", httpDefault), "serve the API over HTTP/JSON (REST paths, Connect, gRPC-Web; /openapi.json) on this address too, through the same authentication, authorization and limits, with -tls-cert's certificate when given; empty: off (ARBITER_HTTP_LISTEN)")
	fs.StringVar(&c.RedisAddr, "redis-addr", env("REDIS_ADDR", ""), "Redis address host:port, comma-separated seeds in cluster mode; required but for arbiter demo (ARBITER_REDIS_ADDR)")
	clusterEnv, err := strconv.ParseBool(env("REDIS_CLUSTER", "false"))
	if err != nil {
		return c, fmt.Errorf("ARBITER_REDIS_CLUSTER: want true or false, got %q", env("REDIS_CLUSTER", ""))
	}
	fs.BoolVar(&c.RedisCluster, "redis-cluster", clusterEnv, "Redis Cluster mode: -redis-addr lists seed nodes (ARBITER_REDIS_CLUSTER=true)")
	redisTLSEnv, err := strconv.ParseBool(env("REDIS_TLS", "false"))
	if err != nil {
		return c, fmt.Errorf("ARBITER_REDIS_TLS: want true or false, got %q", env("REDIS_TLS", ""))
	}
	fs.BoolVar(&c.RedisTLS, "redis-tls", redisTLSEnv, "connect to Redis over TLS (ARBITER_REDIS_TLS=true)")
	fs.StringVar(&c.RedisCA, "redis-ca", env("REDIS_CA", ""), "with -redis-tls, verify Redis's certificate against this CA (PEM file) instead of the system's roots (ARBITER_REDIS_CA)")
	fs.StringVar(&c.RedisUser, "redis-user", env("REDIS_USER", ""), "Redis ACL user; empty: the default user (ARBITER_REDIS_USER)")
	var passwordFile string
	fs.StringVar(&passwordFile, "redis-password-file", env("REDIS_PASSWORD_FILE", ""), "read the Redis password from this file (or set ARBITER_REDIS_PASSWORD); never a flag, which ps shows (ARBITER_REDIS_PASSWORD_FILE)")
	c.RedisPassword = env("REDIS_PASSWORD", "")
	fs.StringVar(&c.RedisPrefix, "redis-prefix", env("REDIS_PREFIX", "arbiter"), "key prefix (ARBITER_REDIS_PREFIX)")
	fs.StringVar(&c.CatalogFile, "catalog", env("CATALOG", ""), "action catalog JSON file; required but for arbiter demo (ARBITER_CATALOG)")
	fs.StringVar(&c.ModelFile, "model", env("MODEL", ""), "scoring model JSON file; required but for arbiter demo (ARBITER_MODEL)")
	fs.StringVar(&c.PolicyFile, "consent-policy", env("CONSENT_POLICY", ""), "consent market policy JSON file; required but for arbiter demo (ARBITER_CONSENT_POLICY)")
	fs.StringVar(&c.ContactFile, "contact-policy", env("CONTACT_POLICY", ""), "contact policy JSON file (caps, gaps, quiet hours); optional, with the other definitions files (ARBITER_CONTACT_POLICY)")
	fs.StringVar(&c.RulesFile, "rules", env("RULES", ""), "behaviour rules JSON file (CEL); optional, with the other definitions files (ARBITER_RULES)")
	fs.StringVar(&c.AuthJWKS, "auth-jwks", env("AUTH_JWKS", ""), "verify bearer tokens (JWTs) against this JWKS file; every call but health checks then needs one, from a role the method allows; empty: no authentication (ARBITER_AUTH_JWKS)")
	fs.StringVar(&c.AuthJWKSURL, "auth-jwks-url", env("AUTH_JWKS_URL", ""), "verify bearer tokens against the key set at this URL (the provider's jwks_uri; https), refreshed hourly and when a token names an unknown key; instead of -auth-jwks (ARBITER_AUTH_JWKS_URL)")
	fs.StringVar(&c.AuthIssuer, "auth-issuer", env("AUTH_ISSUER", ""), "the issuer (iss) tokens must name; required with -auth-jwks (ARBITER_AUTH_ISSUER)")
	fs.StringVar(&c.AuthAudience, "auth-audience", env("AUTH_AUDIENCE", ""), "the audience (aud) tokens must name; required with -auth-jwks (ARBITER_AUTH_AUDIENCE)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", env("INSECURE_NO_AUTH", "") == "true", "allow a listener off loopback without authentication: anyone who reaches it may read and change consent (ARBITER_INSECURE_NO_AUTH=true)")
	fs.BoolVar(&c.InsecurePlaintext, "insecure-plaintext", env("INSECURE_PLAINTEXT", "") == "true", "allow a listener off loopback without TLS, behind a proxy or mesh that encrypts (ARBITER_INSECURE_PLAINTEXT=true)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("TLS_CERT", ""), "serve gRPC over TLS with this certificate (PEM file; re-read when it changes); with -tls-key (ARBITER_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("TLS_KEY", ""), "the TLS private key (PEM file), with -tls-cert (ARBITER_TLS_KEY)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", env("TLS_CLIENT_CA", ""), "verify client certificates signed by this CA (PEM file; mutual TLS): a verified certificate authenticates its subject CN, with its OUs as roles; with -tls-cert (ARBITER_TLS_CLIENT_CA)")
	fs.BoolVar(&c.AdminRPC, "admin-rpc", env("ADMIN_RPC", "") == "true", "serve DefinitionsService, which publishes definitions sets: with -auth-jwks, to the admin role; without, to anyone who reaches the port (ARBITER_ADMIN_RPC=true)")
	fs.BoolVar(&c.AccessLog, "access-log", env("ACCESS_LOG", "") == "true", "log every call (method, code, duration), not only failures; costs ~8 us per call (ARBITER_ACCESS_LOG=true)")
	fs.StringVar(&c.DebugAddr, "debug-addr", env("DEBUG_ADDR", ""), "serve pprof profiles on this address, e.g. 127.0.0.1:6060; empty: off (ARBITER_DEBUG_ADDR)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", env("METRICS_ADDR", ""), "serve Prometheus metrics at /metrics on this address, e.g. 127.0.0.1:9464; empty: off (ARBITER_METRICS_ADDR)")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (ARBITER_LOG_LEVEL)")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", env("OTLP_ENDPOINT", ""), "export traces over OTLP/gRPC to this collector (host:port, or an http:// or https:// URL); empty: tracing off, at no cost (ARBITER_OTLP_ENDPOINT)")
	fs.BoolVar(&c.OTLPInsecure, "otlp-insecure", env("OTLP_INSECURE", "") == "true", "send traces to -otlp-endpoint in plaintext (a collector on the same host or pod); default TLS (ARBITER_OTLP_INSECURE=true)")
	var traceSample string
	fs.StringVar(&traceSample, "trace-sample", env("TRACE_SAMPLE", "0.01"), "with -otlp-endpoint, the share of calls traced, 0 to 1, where the caller's trace context does not decide (a sampled traceparent is always followed) (ARBITER_TRACE_SAMPLE)")
	var sendIdle, receipts, receiptDays, receiptQueue, rateLimit, rateBurst string
	fs.StringVar(&rateLimit, "rate-limit", env("RATE_LIMIT", "0"), "calls a second each principal (a token's subject; without authentication, a client address) may make; past it RESOURCE_EXHAUSTED with a retry hint; 0: no limit (ARBITER_RATE_LIMIT)")
	fs.StringVar(&rateBurst, "rate-burst", env("RATE_BURST", "0"), "the burst a principal may make above -rate-limit; 0: one second's worth (ARBITER_RATE_BURST)")
	if cmd == "simulate" {
		fs.StringVar(&c.SimulateWindow, "receipts", "", "the decisions to make again: those logged from FROM to TO, FROM..TO (RFC 3339 times; TO empty: now); required")
		fs.BoolVar(&c.SimulateList, "list", false, "list the decisions that lost or gained each action")
		fs.BoolVar(&c.SimulateJSON, "json", false, "print the report as JSON")
		receipts = "off"
	} else {
		fs.StringVar(&receipts, "receipts", env("RECEIPTS", "async"), "the decision log: async (each decision's receipt queued and written in batches, off its path), sync (answer only once the receipt is stored) or off (ARBITER_RECEIPTS)")
	}
	fs.StringVar(&receiptDays, "receipt-days", env("RECEIPT_DAYS", "7"), "days Redis keeps receipts at least (a recipient's log is trimmed when its expiry is renewed, so a receipt may stay up to a day longer; a lower value takes effect at each log's next receipt); the export (arbiterctl decisions export) is the long-term record (ARBITER_RECEIPT_DAYS)")
	fs.StringVar(&receiptQueue, "receipt-queue", env("RECEIPT_QUEUE", "8192"), "receipts that may wait to be written (async); past it they are dropped, counted and logged; a killed process loses at most these (ARBITER_RECEIPT_QUEUE)")
	fs.StringVar(&c.AuditKeyFile, "audit-key", env("AUDIT_KEY", ""), "file holding the deployment's audit secret (at least 32 random bytes, kept outside Redis), the same on every server: decision ids are sealed with it; empty: a random key per process (ARBITER_AUDIT_KEY)")
	var gcPercent string
	var drain, maxInFlight, admissionWait, maxStreams, durability, resetLimit string
	var demoSize, grace, deadline, workers, streamWorkers, replicas, connAge, cacheSize, defsPoll string
	fs.StringVar(&defsPoll, "definitions-poll", env("DEFINITIONS_POLL", "1s"), "how often a replica checks the active definitions set and reports the one it uses; a publish waits for replicas that reported within 10 of these, and a replica that could not check for 10 of these refuses decisions (ARBITER_DEFINITIONS_POLL)")
	fs.StringVar(&cacheSize, "hcp-cache", env("HCP_CACHE", "0"), "keep up to this many HCPs in memory, invalidated by Redis key tracking so that every acknowledged change is seen; single Redis only; 0: off (ARBITER_HCP_CACHE)")
	fs.StringVar(&connAge, "max-connection-age", env("MAX_CONNECTION_AGE", "30m"), "close client connections after this long (gracefully) so DNS-balanced clients find new instances (ARBITER_MAX_CONNECTION_AGE)")
	fs.BoolVar(&c.RollingUpgrade, "rolling-upgrade", env("ROLLING_UPGRADE", "") == "true", "the previous release still serves this Redis (during a rolling upgrade): write only what it reads (a consent notice version to the ledger only; no erasure); deploy again without it once every replica runs this release (ARBITER_ROLLING_UPGRADE=true)")
	fs.StringVar(&resetLimit, "stream-reset-limit", env("STREAM_RESET_LIMIT", "1000"), "stream resets (RST_STREAM) a second one client connection may send (as many at once) before it is closed; an address closed three times in ten seconds is refused for a second: the rapid-reset attack; raise it behind a proxy that carries many clients on one connection (ARBITER_STREAM_RESET_LIMIT)")
	fs.StringVar(&replicas, "consent-replicas", env("CONSENT_REPLICAS", "0"), "acknowledge a consent change only once this many replicas have it; 1 with Redis replicas (ARBITER_CONSENT_REPLICAS)")
	fs.StringVar(&workers, "pipeline-workers", env("PIPELINE_WORKERS", "4"), "auto-pipelining workers for decision reads; 0 disables (ARBITER_PIPELINE_WORKERS)")
	fs.StringVar(&streamWorkers, "stream-workers", env("STREAM_WORKERS", "16"), "goroutines kept to serve calls (more calls than that run on new ones); 0: a new goroutine per call (ARBITER_STREAM_WORKERS)")
	fs.StringVar(&demoSize, "demo-size", env("DEMO_SIZE", "10000"), "HCPs in the demo population (ARBITER_DEMO_SIZE)")
	fs.StringVar(&grace, "shutdown-grace", env("SHUTDOWN_GRACE", "10s"), "time to finish in-flight calls on shutdown, after the drain (ARBITER_SHUTDOWN_GRACE)")
	fs.StringVar(&maxInFlight, "max-in-flight", env("MAX_IN_FLIGHT", strconv.Itoa(16*runtime.GOMAXPROCS(0))), "at most this many calls in flight; past it a call waits -admission-wait for a slot, then gets RESOURCE_EXHAUSTED with a retry hint; 0: no bound (ARBITER_MAX_IN_FLIGHT; default 16 per CPU)")
	fs.StringVar(&gcPercent, "gc-percent", env("GC_PERCENT", gcPercentDefault(getenv)), "the garbage collector's target: a collection starts when the heap has grown by this many percent of what was live after the last; a decision allocates tens of KB over a live heap of about 10 MB, so Go's default of 100 collects many times a second; 0: the runtime's own (GOGC). Give the container a memory limit and GOMEMLIMIT below it (deploy/k8s) (ARBITER_GC_PERCENT; default 400, or GOGC when that is set)")
	fs.StringVar(&admissionWait, "admission-wait", env("ADMISSION_WAIT", "5ms"), "how long a call waits for a slot past -max-in-flight (ARBITER_ADMISSION_WAIT)")
	fs.StringVar(&maxStreams, "max-concurrent-streams", env("MAX_CONCURRENT_STREAMS", "256"), "at most this many concurrent calls on one client connection (HTTP/2 streams); also bounds what a stream-reset flood can make the server do (ARBITER_MAX_CONCURRENT_STREAMS)")
	fs.StringVar(&durability, "durability", env("DURABILITY", "warn"), "at start, check that every Redis master persists acknowledged writes (appendonly yes, appendfsync always or everysec): warn, refuse to start, or off (ARBITER_DURABILITY)")
	drainDefault := "5s"
	if cmd == "demo" {
		drainDefault = "0s" // no load balancer in front of the demo: Ctrl-C stops at once
	}
	fs.StringVar(&drain, "shutdown-drain", env("SHUTDOWN_DRAIN", drainDefault), "on shutdown, how long to go on serving after health turns NOT_SERVING, so that load balancers see it first (ARBITER_SHUTDOWN_DRAIN)")
	fs.StringVar(&deadline, "max-deadline", env("MAX_DEADLINE", "5s"), "longest any call may run (ARBITER_MAX_DEADLINE)")
	fs.StringVar(&sendIdle, "send-stream-idle", env("SEND_STREAM_IDLE", "30s"), "end a CheckSendBatch stream when no item arrives for this long (ARBITER_SEND_STREAM_IDLE)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	positional := 0
	if cmd == "validate" || cmd == "publish" || cmd == "simulate" {
		positional = 1 // the definitions directory
		if fs.NArg() == 0 {
			return c, fmt.Errorf("%s needs a definitions directory (holding catalog.json, model.json, consent_policy.json)", cmd)
		}
		c.DefinitionsDir = fs.Arg(0)
	}
	if passwordFile != "" {
		data, err := os.ReadFile(passwordFile)
		if err != nil {
			return c, fmt.Errorf("redis-password-file: %w", err)
		}
		c.RedisPassword = strings.TrimRight(string(data), "\r\n")
	}
	if fs.NArg() > positional {
		return c, fmt.Errorf("unexpected argument %q (flags come before arguments; arbiter -h lists the subcommands)", fs.Arg(positional))
	}
	if err := c.checkNeeds(cmd); err != nil {
		return c, err
	}
	if c.RedisPrefix == "" || strings.ContainsAny(c.RedisPrefix, "{}") {
		return c, fmt.Errorf("redis-prefix: want a non-empty prefix without '{' or '}' (they would break the per-HCP hash tag), got %q", c.RedisPrefix)
	}
	if c.RedisAddr != "" {
		addrs := strings.Split(c.RedisAddr, ",")
		for i, a := range addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return c, fmt.Errorf("redis-addr: address %d: want host:port, got %q", i+1, a)
			}
		}
		// Cluster mode is said, never guessed: several addresses without
		// it are a mistake, not a single Redis at the first of them.
		if len(addrs) > 1 && !c.RedisCluster {
			return c, fmt.Errorf("redis-addr: %d addresses are cluster seed nodes: set -redis-cluster (ARBITER_REDIS_CLUSTER=true)", len(addrs))
		}
	}
	if c.DemoSize, err = strconv.Atoi(demoSize); err != nil || c.DemoSize < 1 || c.DemoSize > 10000000 {
		return c, fmt.Errorf("demo-size: want 1 to 10000000, got %q", demoSize)
	}
	if c.MaxConnectionAge, err = time.ParseDuration(connAge); err != nil || c.MaxConnectionAge <= 0 {
		return c, fmt.Errorf("max-connection-age: want a positive duration, got %q", connAge)
	}
	if c.ConsentReplicas, err = strconv.Atoi(replicas); err != nil || c.ConsentReplicas < 0 || c.ConsentReplicas > 16 {
		return c, fmt.Errorf("consent-replicas: want 0 to 16, got %q", replicas)
	}
	if c.HCPCache, err = strconv.Atoi(cacheSize); err != nil || c.HCPCache < 0 {
		return c, fmt.Errorf("hcp-cache: want a number of HCPs, 0 for off, got %q", cacheSize)
	}
	if c.HCPCache > 0 && (c.RedisCluster || c.Demo) {
		return c, errors.New("hcp-cache: needs a single Redis (-redis-addr without -redis-cluster); the embedded demo store cannot track keys")
	}
	if c.PipelineWorkers, err = strconv.Atoi(workers); err != nil || c.PipelineWorkers < 0 || c.PipelineWorkers > 64 {
		return c, fmt.Errorf("pipeline-workers: want 0 to 64, got %q", workers)
	}
	if c.StreamWorkers, err = strconv.Atoi(streamWorkers); err != nil || c.StreamWorkers < 0 || c.StreamWorkers > 1024 {
		return c, fmt.Errorf("stream-workers: want 0 to 1024, got %q", streamWorkers)
	}
	if c.AuthJWKS != "" && c.AuthJWKSURL != "" {
		return c, errors.New("auth-jwks: give a key set file or a URL (-auth-jwks-url), not both")
	}
	if (c.AuthJWKS != "" || c.AuthJWKSURL != "") && (c.AuthIssuer == "" || c.AuthAudience == "") {
		return c, errors.New("auth-jwks: -auth-issuer and -auth-audience are required with it (ARBITER_AUTH_ISSUER, ARBITER_AUTH_AUDIENCE)")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return c, errors.New("tls: give both -tls-cert and -tls-key, or neither")
	}
	if c.RedisCA != "" && !c.RedisTLS {
		return c, errors.New("redis-ca: give -redis-tls too")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return c, errors.New("tls-client-ca: mutual TLS needs -tls-cert and -tls-key")
	}
	// The HTTP listener serves the same API as the gRPC one, so the same
	// rules hold for both.
	for _, l := range []struct{ flag, addr string }{{"listen", c.Listen}, {"http-listen", c.HTTPListen}} {
		if cmd != "serve" && cmd != "demo" || l.addr == "" {
			continue
		}
		if l.flag == "http-listen" {
			if _, _, err := net.SplitHostPort(l.addr); err != nil {
				return c, fmt.Errorf("http-listen: want host:port, got %q", l.addr)
			}
		}
		if c.TLSCert == "" && !c.InsecurePlaintext && !c.InsecureNoAuth && !loopback(l.addr) {
			return c, fmt.Errorf("%s: %s is not a loopback address and there is no TLS: tokens and consent would cross the network in clear; give -tls-cert and -tls-key, or -insecure-plaintext behind a proxy or mesh that encrypts", l.flag, l.addr)
		}
		if c.AuthJWKS == "" && c.AuthJWKSURL == "" && c.TLSClientCA == "" && !c.InsecureNoAuth && !loopback(l.addr) {
			return c, fmt.Errorf("%s: %s is not a loopback address and there is no authentication: give -auth-jwks (with -auth-issuer and -auth-audience), or -insecure-no-auth to serve anyone who can reach it", l.flag, l.addr)
		}
	}
	if c.DefinitionsPoll, err = time.ParseDuration(defsPoll); err != nil || c.DefinitionsPoll < 10*time.Millisecond {
		return c, fmt.Errorf("definitions-poll: want a duration of at least 10ms, got %q", defsPoll)
	}
	switch durability {
	case "warn", "refuse", "off":
		c.Durability = durability
	default:
		return c, fmt.Errorf("durability: want warn, refuse or off, got %q", durability)
	}
	if c.MaxInFlight, err = strconv.Atoi(maxInFlight); err != nil || c.MaxInFlight < 0 {
		return c, fmt.Errorf("max-in-flight: want 0 or more, got %q", maxInFlight)
	}
	if c.GCPercent, err = strconv.Atoi(gcPercent); err != nil || c.GCPercent < 0 || c.GCPercent > 10000 {
		return c, fmt.Errorf("gc-percent: want 0 (the runtime's) to 10000, got %q", gcPercent)
	}
	if c.AdmissionWait, err = time.ParseDuration(admissionWait); err != nil || c.AdmissionWait < 0 {
		return c, fmt.Errorf("admission-wait: want a duration of 0 or more, got %q", admissionWait)
	}
	if c.ResetLimit, err = strconv.Atoi(resetLimit); err != nil || c.ResetLimit < 1 {
		return c, fmt.Errorf("stream-reset-limit: want a positive number of resets a second, got %q", resetLimit)
	}
	if c.MaxStreams, err = strconv.Atoi(maxStreams); err != nil || c.MaxStreams < 1 {
		return c, fmt.Errorf("max-concurrent-streams: want 1 or more, got %q", maxStreams)
	}
	if c.ShutdownDrain, err = time.ParseDuration(drain); err != nil || c.ShutdownDrain < 0 {
		return c, fmt.Errorf("shutdown-drain: want a duration of 0 or more, got %q", drain)
	}
	if c.ShutdownGrace, err = time.ParseDuration(grace); err != nil || c.ShutdownGrace <= 0 {
		return c, fmt.Errorf("shutdown-grace: want a positive duration, got %q", grace)
	}
	if c.SendIdle, err = time.ParseDuration(sendIdle); err != nil || c.SendIdle <= 0 {
		return c, fmt.Errorf("send-stream-idle: want a positive duration, got %q", sendIdle)
	}
	if c.RateLimit, err = strconv.ParseFloat(rateLimit, 64); err != nil || c.RateLimit < 0 || c.RateLimit > 1e7 {
		return c, fmt.Errorf("rate-limit: want 0 to 10000000 calls a second, got %q", rateLimit)
	}
	if c.RateBurst, err = strconv.Atoi(rateBurst); err != nil || c.RateBurst < 0 {
		return c, fmt.Errorf("rate-burst: want 0 or more, got %q", rateBurst)
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(1, int(c.RateLimit))
	}
	var ok bool
	if c.Receipts, ok = server.ParseReceiptMode(receipts); !ok {
		return c, fmt.Errorf("receipts: want async, sync or off, got %q", receipts)
	}
	if days, err := strconv.Atoi(receiptDays); err != nil || days < 1 || days > 3660 {
		return c, fmt.Errorf("receipt-days: want 1 to 3660, got %q", receiptDays)
	} else {
		c.ReceiptRetention = time.Duration(days) * 24 * time.Hour
	}
	if c.ReceiptQueue, err = strconv.Atoi(receiptQueue); err != nil || c.ReceiptQueue < 1 {
		return c, fmt.Errorf("receipt-queue: want 1 or more, got %q", receiptQueue)
	}
	if c.MaxDeadline, err = time.ParseDuration(deadline); err != nil || c.MaxDeadline <= 0 {
		return c, fmt.Errorf("max-deadline: want a positive duration, got %q", deadline)
	}
	if c.TraceSample, err = strconv.ParseFloat(traceSample, 64); err != nil || !(c.TraceSample >= 0 && c.TraceSample <= 1) {
		return c, fmt.Errorf("trace-sample: want a share of calls from 0 to 1, got %q", traceSample)
	}
	if c.OTLPInsecure && c.OTLPEndpoint == "" {
		return c, errors.New("otlp-insecure: give -otlp-endpoint too (without it tracing is off)")
	}
	return c, nil
}

// checkNeeds says what is missing for cmd: the production server refuses
// to start on a guess, so it needs a Redis and every definitions file;
// seed and migrate need a Redis; the demo needs none of them, and refuses
// a Redis (it serves its embedded store, and never writes demo data to a
// real Redis: that is arbiter seed's job, said explicitly).
func (c *Config) checkNeeds(cmd string) error {
	var missing []string
	switch cmd {
	case "serve":
		if c.RedisAddr == "" {
			return errors.New("the server needs -redis-addr (ARBITER_REDIS_ADDR); for the demo with an embedded store and demo data, run arbiter demo")
		}
		// The definitions: all three files (published if Redis has no
		// active set yet), or none (the active set is followed).
		var given []string
		for _, need := range []struct{ value, what string }{
			{c.CatalogFile, "-catalog (ARBITER_CATALOG)"},
			{c.ModelFile, "-model (ARBITER_MODEL)"},
			{c.PolicyFile, "-consent-policy (ARBITER_CONSENT_POLICY)"},
		} {
			if need.value == "" {
				missing = append(missing, need.what)
			} else {
				given = append(given, need.what)
			}
		}
		if (c.ContactFile != "" || c.RulesFile != "") && len(given) == 0 {
			return errors.New("-contact-policy (ARBITER_CONTACT_POLICY) and -rules (ARBITER_RULES) go with -catalog, -model and -consent-policy: a definitions set is published whole")
		}
		if len(given) > 0 && len(missing) > 0 {
			return fmt.Errorf("the server needs all of the definitions files or none (to follow the set published in Redis): missing %s", strings.Join(missing, ", "))
		}
	case "seed", "migrate", "publish":
		if c.RedisAddr == "" {
			return fmt.Errorf("%s needs a Redis: set -redis-addr (ARBITER_REDIS_ADDR)", cmd)
		}
	case "simulate":
		if c.RedisAddr == "" {
			return errors.New("simulate reads the decision log: set -redis-addr (ARBITER_REDIS_ADDR)")
		}
		if c.SimulateWindow == "" {
			return errors.New("simulate needs -receipts FROM..TO: the decisions to make again")
		}
	case "demo":
		if c.RedisAddr != "" {
			return errors.New("arbiter demo serves its embedded store and takes no -redis-addr (ARBITER_REDIS_ADDR): to serve a real Redis, load it with arbiter seed and run arbiter with definitions files")
		}
	}
	return nil
}

// loopback reports whether a listen address is on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// gcPercentDefault is -gc-percent's default: 400, unless GOGC is set, which
// the runtime has applied already ("0": keep it).
func gcPercentDefault(getenv func(string) string) string {
	if getenv("GOGC") != "" {
		return "0"
	}
	return "400"
}
