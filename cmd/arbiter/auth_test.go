package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/arbiter-nba/arbiter"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// testPKI is a certificate for 127.0.0.1 and a token issuer, in files as
// an operator would give them: cert.pem, key.pem and jwks.json.
type testPKI struct {
	dir      string
	certPool *x509.CertPool
	signer   *ecdsa.PrivateKey
	forger   *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), certPool: x509.NewCertPool()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "arbiter-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p.certPool.AddCert(cert)
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(p.dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if p.signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	if p.forger, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": "k1",
		"alg": "ES256", "use": "sig", "x": enc.EncodeToString(p.signer.X.FillBytes(make([]byte, 32))),
		"y": enc.EncodeToString(p.signer.Y.FillBytes(make([]byte, 32)))}}})
	if err != nil {
		t.Fatal(err)
	}
	write("jwks.json", jwks)
	return p
}

func (p *testPKI) flags() []string {
	return []string{"-tls-cert", filepath.Join(p.dir, "cert.pem"), "-tls-key", filepath.Join(p.dir, "key.pem"),
		"-auth-jwks", filepath.Join(p.dir, "jwks.json"), "-auth-issuer", "https://idp.test", "-auth-audience", "arbiter"}
}

// token signs a token for roles; edit changes its claims or header.
func (p *testPKI) token(t *testing.T, roles []string, edit func(c jwt.MapClaims, h map[string]any)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": "https://idp.test", "aud": "arbiter", "sub": "caller-1",
		"exp": time.Now().Add(time.Hour).Unix(), "roles": roles}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = "k1"
	key := p.signer
	if edit != nil {
		edit(c, tok.Header)
		if c["forged"] == true {
			delete(c, "forged")
			key = p.forger
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (p *testPKI) conn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// End to end over real TLS with a real JWKS file: the Go client with a
// token decides; the same call without one is refused.
func TestTLSAndToken(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 5, p.flags()...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	tok := p.token(t, []string{"rep_tool"}, func(c jwt.MapClaims, _ map[string]any) { c["territories"] = []string{demo.Territory(1)} })
	with, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	defer with.Close()
	ctx := context.Background()
	if _, err := with.Decide(ctx, "HCP-000001", client.DecideOptions{}); err != nil {
		t.Errorf("Decide with a token over TLS: %v", err)
	}
	without, err := client.Dial(ts.Addr(), tlsOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer without.Close()
	if _, err := without.Decide(ctx, "HCP-000001", client.DecideOptions{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Decide without a token: %v, want Unauthenticated", err)
	}
	if err := with.Ping(ctx); err != nil {
		t.Errorf("Ping with a token: %v", err)
	}
	if err := without.Ping(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Ping without a token: %v, want Unauthenticated", err)
	}
	// Plaintext to a TLS listener is no way in either.
	if _, err := ts.client.Decide(ctx, "HCP-000001", client.DecideOptions{}); err == nil {
		t.Error("a plaintext call to the TLS listener succeeded")
	}
}

// The authorization matrix, built by walking the services the server
// registers, so that a new RPC cannot escape it: every RPC x every role,
// and every RPC with no token and with each kind of bad token. No call
// gets past authorization without a role the RPC declares.
func TestAuthorizationMatrix(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 5, append(p.flags(), "-admin-rpc")...)
	conn := p.conn(t, ts.Addr())

	roles := []string{"rep_tool", "marketing_platform", "data_feed", "consent_writer", "auditor", "admin"}
	bad := map[string]string{
		"no token":       "",
		"expired":        p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }),
		"not yet valid":  p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) { c["nbf"] = time.Now().Add(time.Hour).Unix() }),
		"wrong audience": p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "other" }),
		"forged":         p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) { c["forged"] = true }),
		"unknown key id": p.token(t, roles, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "k9" }),
		"alg none": func() string {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "https://idp.test", "aud": "arbiter",
				"sub": "x", "exp": time.Now().Add(time.Hour).Unix(), "roles": roles})
			s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}(),
	}

	var methods []protoreflect.MethodDescriptor
	files := []protoreflect.FileDescriptor{nbapb.File_nba_v1_nba_proto}
	for _, f := range files {
		for i := 0; i < f.Services().Len(); i++ {
			svc := f.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				methods = append(methods, svc.Methods().Get(j))
			}
		}
	}
	if len(methods) < 13 {
		t.Fatalf("found %d RPCs in the API, want every one of them", len(methods))
	}
	unauthorized := 0
	for _, md := range methods {
		allowed := map[string]bool{}
		for _, r := range proto.GetExtension(md.Options(), nbapb.E_AllowedRoles).([]nbapb.Role) {
			allowed[strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))] = true
		}
		for _, role := range roles {
			code := call(t, conn, md, p.token(t, []string{role}, nil))
			passed := code != codes.Unauthenticated && code != codes.PermissionDenied
			switch {
			case allowed[role] && !passed:
				t.Errorf("%s as %s: %v, want it past authorization", md.FullName(), role, code)
			case !allowed[role] && code != codes.PermissionDenied:
				unauthorized++
				t.Errorf("%s as %s: %v, want PermissionDenied", md.FullName(), role, code)
			}
		}
		for name, tok := range bad {
			if code := call(t, conn, md, tok); code != codes.Unauthenticated {
				unauthorized++
				t.Errorf("%s with %s: %v, want Unauthenticated", md.FullName(), name, code)
			}
		}
	}
	if unauthorized != 0 {
		t.Errorf("%d unauthorized calls got past authorization", unauthorized)
	}
	// Health is open to load balancers, without a token.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health without a token: %v, want it answered", err)
	}
}

// call calls md with an empty request and token ("" for none) and returns
// the status code: past authorization, the empty request gets its own
// answer (InvalidArgument, NotFound, OK), which the matrix does not judge.
func call(t *testing.T, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, token string) codes.Code {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opts []grpc.CallOption
	if token != "" {
		opts = append(opts, grpc.PerRPCCredentials(bearerCred(token)))
	}
	method := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	req, resp := dynamicpb.NewMessage(md.Input()), dynamicpb.NewMessage(md.Output())
	if !md.IsStreamingClient() && !md.IsStreamingServer() {
		return status.Code(conn.Invoke(ctx, method, req, resp, opts...))
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: md.IsStreamingClient(), ServerStreams: md.IsStreamingServer()},
		method, opts...)
	if err != nil {
		return status.Code(err)
	}
	if err := s.SendMsg(req); err != nil && err.Error() != "EOF" {
		return status.Code(err)
	}
	if err := s.CloseSend(); err != nil {
		return status.Code(err)
	}
	return status.Code(s.RecvMsg(resp))
}

// bearerCred sends a fixed bearer token.
type bearerCred string

func (b bearerCred) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerCred) RequireTransportSecurity() bool { return true }

// A rep tool decides only for HCPs of its territories; for any other, the
// answer is the one an unknown HCP gets, to the byte, so that it does not
// tell the HCP exists. A batch answers item by item the same way.
func TestTerritoryScoping(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 40, p.flags()...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	ctx := context.Background()
	rep := func(territories ...string) *client.Client {
		tok := p.token(t, []string{"rep_tool"}, func(c jwt.MapClaims, _ map[string]any) { c["territories"] = territories })
		c, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	mine := demo.HCPID(3) // territory T03
	if demo.Territory(3) != "T03" || demo.Territory(4) == "T03" {
		t.Fatal("the demo's territories are not as this test assumes")
	}
	inT03 := rep("T03")
	if _, err := inT03.Decide(ctx, mine, client.DecideOptions{}); err != nil {
		t.Errorf("a rep of T03 deciding for an HCP of T03: %v", err)
	}
	_, outside := inT03.Decide(ctx, demo.HCPID(4), client.DecideOptions{})
	_, unknown := inT03.Decide(ctx, "HCP-999999", client.DecideOptions{})
	if status.Code(outside) != codes.NotFound || status.Convert(outside).Message() != status.Convert(unknown).Message() ||
		status.Code(unknown) != codes.NotFound {
		t.Errorf("outside the territory: %v; unknown HCP: %v; want the same NotFound", outside, unknown)
	}
	if _, err := rep().Decide(ctx, mine, client.DecideOptions{}); status.Code(err) != codes.NotFound {
		t.Errorf("a rep with no territory: %v, want NotFound", err)
	}
	// A marketing platform is not scoped.
	mkt, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(p.token(t, []string{"marketing_platform"}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer mkt.Close()
	if _, err := mkt.Decide(ctx, demo.HCPID(4), client.DecideOptions{}); err != nil {
		t.Errorf("a marketing platform deciding for any HCP: %v", err)
	}
}

// Every consent change records who the server knows made it: the token's
// subject, beside the captured_by the caller says.
func TestLedgerRecordsThePrincipal(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 5, p.flags()...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	tok := p.token(t, []string{"consent_writer"}, func(c jwt.MapClaims, _ map[string]any) { c["sub"] = "preference|centre-1" })
	c, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	entry, err := c.SetConsent(ctx, demo.HCPID(1), client.ConsentRecord{Channel: arbiter.Email, Purpose: arbiter.Medical,
		Status: client.ConsentOptIn, CapturedAt: time.Now(), Source: "web", CapturedBy: "someone-else"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if entry.Principal != "preference|centre-1" || entry.Record.CapturedBy != "someone-else" {
		t.Errorf("entry principal %q, captured by %q; want the token's subject and the caller's word", entry.Principal, entry.Record.CapturedBy)
	}
	history, _, err := c.ConsentHistory(ctx, demo.HCPID(1), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if last := history[len(history)-1]; last.Principal != "preference|centre-1" {
		t.Errorf("the ledger's last entry has principal %q, want the token's subject", last.Principal)
	}
}

// Profile writes, events and definitions publishes record who the server
// knows made them, too.
func TestWritesRecordThePrincipal(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 5, append(p.flags(), "-admin-rpc")...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	ctx := context.Background()
	as := func(sub string, roles ...string) *client.Client {
		tok := p.token(t, roles, func(c jwt.MapClaims, _ map[string]any) { c["sub"] = sub })
		c, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	feed := as("crm-feed-3", "data_feed")
	if err := feed.UpsertProfile(ctx, client.Profile{HCPID: "HCP-000002", Specialty: "cardiology", Market: "US",
		Audience: arbiter.HCP}); err != nil {
		t.Fatal(err)
	}
	prof, _, err := feed.GetProfile(ctx, "HCP-000002")
	if err != nil || prof.UpdatedBy != "crm-feed-3" {
		t.Errorf("profile updated by %q (%v), want crm-feed-3", prof.UpdatedBy, err)
	}
	if _, err := feed.RecordEvent(ctx, client.Event{ID: "ev-principal", HCPID: "HCP-000002", Type: arbiter.EventOpened,
		Channel: arbiter.Email, OccurredAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	head, err := ts.rdb.LIndex(ctx, ts.cfg.RedisPrefix+":{HCP-000002}:h", 0).Result()
	if err != nil || !strings.HasSuffix(head, "|crm-feed-3") {
		t.Errorf("event history head %q (%v), want it to end with the principal", head, err)
	}
	admin := p.conn(t, ts.Addr())
	defs := nbapb.NewDefinitionsServiceClient(admin)
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+p.token(t, []string{"admin"},
		func(c jwt.MapClaims, _ map[string]any) { c["sub"] = "release-bot" }))
	active, err := defs.GetActiveDefinitions(actx, &nbapb.GetActiveDefinitionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	files := active.GetFiles()
	files[definitions.CatalogFile] = []byte(strings.Replace(string(files[definitions.CatalogFile]), `"value": 1.0`, `"value": 1.25`, 1))
	if _, err := defs.PublishDefinitions(actx, &nbapb.PublishDefinitionsRequest{Files: files}); err != nil {
		t.Fatal(err)
	}
	last, err := ts.rdb.LIndex(ctx, ts.cfg.RedisPrefix+":defs:log", -1).Result()
	if err != nil || !strings.HasSuffix(last, "|release-bot") {
		t.Errorf("definitions log's last entry %q (%v), want it to end with the publisher", last, err)
	}
}

// clientCert returns a CA (as a PEM file in dir) and a client certificate
// it signed for cn with ous as organizational units.
func clientCert(t *testing.T, dir, cn string, ous []string) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: ous},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(dir, cn+"-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Mutual TLS: a client certificate the server's client CA signed
// authenticates its subject with its OUs as roles; one from another CA
// does not get in.
func TestClientCertificatePrincipal(t *testing.T) {
	p := newTestPKI(t)
	caFile, cert := clientCert(t, p.dir, "feed-7", []string{"arbiter-role:data_feed", "admin"})
	_, stranger := clientCert(t, t.TempDir(), "intruder", []string{"arbiter-role:admin"})
	ts := start(t, embedded, 5, append(p.flags(), "-tls-client-ca", caFile)...)
	dial := func(cert tls.Certificate) *client.Client {
		c, err := client.Dial(ts.Addr(), client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: p.certPool, Certificates: []tls.Certificate{cert}}))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx := context.Background()
	feed := dial(cert)
	if err := feed.UpsertProfile(ctx, client.Profile{HCPID: "HCP-000003", Specialty: "oncology", Market: "EU",
		Audience: arbiter.HCP}); err != nil {
		t.Fatalf("a data feed's certificate upserting a profile: %v", err)
	}
	if prof, _, err := feed.GetProfile(ctx, "HCP-000003"); err != nil || prof.UpdatedBy != "x509:feed-7" {
		t.Errorf("profile updated by %q (%v), want the certificate's subject", prof.UpdatedBy, err)
	}
	if _, err := feed.Decide(ctx, "HCP-000003", client.DecideOptions{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a data feed deciding: %v, want PermissionDenied", err)
	}
	// A plain "admin" OU is no role: only arbiter-role: ones are.
	if _, err := nbapb.NewDefinitionsServiceClient(p.connWithCert(t, ts.Addr(), cert)).GetActiveDefinitions(ctx,
		&nbapb.GetActiveDefinitionsRequest{}); status.Code(err) != codes.PermissionDenied && status.Code(err) != codes.Unimplemented {
		t.Errorf("a certificate with a bare admin OU reading definitions: %v, want it refused", err)
	}
	if _, err := dial(stranger).GetConsent(ctx, "HCP-000003"); err == nil {
		t.Error("a certificate of another CA got in")
	}
}

func (p *testPKI) connWithCert(t *testing.T, addr string, cert tls.Certificate) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: p.certPool, Certificates: []tls.Certificate{cert}})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Per-principal rate limits: a caller past its limit is refused with
// RESOURCE_EXHAUSTED and a retry hint, while another caller, and health
// checks, go on.
func TestRateLimitPerPrincipal(t *testing.T) {
	p := newTestPKI(t)
	// Half a call a second, bursts of three: the fourth call in a row is
	// refused for the next two seconds.
	ts := start(t, embedded, 5, append(p.flags(), "-rate-limit", "0.5", "-rate-burst", "3")...)
	tlsOpt := client.WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: p.certPool})))
	ctx := context.Background()
	caller := func(sub string) *client.Client {
		tok := p.token(t, []string{"marketing_platform"}, func(c jwt.MapClaims, _ map[string]any) { c["sub"] = sub })
		c, err := client.Dial(ts.Addr(), tlsOpt, client.WithToken(tok))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	noisy, quiet := caller("svc-noisy"), caller("svc-quiet")
	var refused error
	for i := range 6 {
		_, err := noisy.Decide(ctx, demo.HCPID(1), client.DecideOptions{})
		switch {
		case i < 3 && err != nil:
			t.Fatalf("call %d, within the burst: %v", i, err)
		case i >= 3 && status.Code(err) != codes.ResourceExhausted:
			t.Fatalf("call %d, past the burst: %v, want RESOURCE_EXHAUSTED", i, err)
		}
		if i >= 3 {
			refused = err
		}
	}
	var hint *errdetails.RetryInfo
	for _, d := range status.Convert(refused).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			hint = r
		}
	}
	if hint == nil || hint.GetRetryDelay().AsDuration() <= 0 || hint.GetRetryDelay().AsDuration() > 2*time.Second {
		t.Errorf("the refusal's retry hint: %v, want the time until a token, at most 2 s", hint)
	}
	if _, err := quiet.Decide(ctx, demo.HCPID(1), client.DecideOptions{}); err != nil {
		t.Errorf("another caller: %v, want it served", err)
	}
}
