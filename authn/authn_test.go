package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/arbiter-nba/arbiter/access"
)

// Keys and tokens of a test identity provider.
type idp struct {
	key  *ecdsa.PrivateKey
	kid  string
	jwks []byte
}

func newIDP(t testing.TB, kid string) *idp {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &idp{key: key, kid: kid, jwks: JWKS(t, map[string]*ecdsa.PublicKey{kid: &key.PublicKey})}
}

// JWKS is the key set of ES256 public keys, by key id.
func JWKS(t testing.TB, keys map[string]*ecdsa.PublicKey) []byte {
	t.Helper()
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	enc := base64.RawURLEncoding
	for kid, pub := range keys {
		b := pub.X.FillBytes(make([]byte, 32))
		c := pub.Y.FillBytes(make([]byte, 32))
		set.Keys = append(set.Keys, map[string]string{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(b),
			"y": enc.EncodeToString(c), "kid": kid, "alg": "ES256", "use": "sig"})
	}
	data, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func (p *idp) token(t testing.TB, edit func(c jwt.MapClaims, h map[string]any)) string {
	t.Helper()
	c := jwt.MapClaims{"iss": "https://idp.test", "aud": "arbiter", "sub": "rep-tool-7",
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "roles": []string{"rep_tool"}, "territories": []string{"T1"}}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	tok.Header["kid"] = p.kid
	if edit != nil {
		edit(c, tok.Header)
	}
	s, err := tok.SignedString(p.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifier(t testing.TB, jwks []byte) *Verifier {
	t.Helper()
	v, err := New(Options{JWKS: jwks, Issuer: "https://idp.test", Audience: "arbiter", Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAuthenticate(t *testing.T) {
	p := newIDP(t, "k1")
	v := verifier(t, p.jwks)
	got, err := v.Authenticate(context.Background(), p.token(t, nil))
	if err != nil {
		t.Fatalf("a valid token: %v", err)
	}
	if got.Subject != "rep-tool-7" || !got.Has(access.RepTool) || len(got.Territories) != 1 || got.Territories[0] != "T1" {
		t.Errorf("principal %+v, want rep-tool-7, rep_tool, territory T1", got)
	}
}

// Every bad token is refused with the one error, whichever check failed.
func TestAuthenticateRefuses(t *testing.T) {
	p := newIDP(t, "k1")
	other := newIDP(t, "k1") // another key under the same id: a forged signature
	v := verifier(t, p.jwks)
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "https://idp.test", "aud": "arbiter",
			"sub": "x", "exp": now.Add(time.Hour).Unix(), "roles": []string{"admin"}})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	hmac := func() string {
		// Algorithm confusion: HS256 with the public key's bytes as secret.
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://idp.test", "aud": "arbiter",
			"sub": "x", "exp": now.Add(time.Hour).Unix()})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(p.jwks)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := map[string]string{
		"empty":              "",
		"garbage":            "not.a.jwt",
		"expired":            p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = now.Add(-time.Minute).Unix() }),
		"no expiry":          p.token(t, func(c jwt.MapClaims, _ map[string]any) { delete(c, "exp") }),
		"not yet valid":      p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }),
		"wrong audience":     p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["aud"] = "someone-else" }),
		"wrong issuer":       p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["iss"] = "https://evil.test" }),
		"no subject":         p.token(t, func(c jwt.MapClaims, _ map[string]any) { delete(c, "sub") }),
		"unknown key id":     p.token(t, func(_ jwt.MapClaims, h map[string]any) { h["kid"] = "k9" }),
		"forged signature":   other.token(t, nil),
		"alg none":           none(),
		"alg confusion HMAC": hmac(),
	}
	for name, tok := range tests {
		if got, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) || got != nil {
			t.Errorf("%s: %v, %v; want ErrUnauthenticated", name, got, err)
		}
	}
}

// A verified token is remembered until it expires: no second signature
// check, and no use after the expiry.
func TestAuthenticateCache(t *testing.T) {
	p := newIDP(t, "k1")
	clock := now
	v, err := New(Options{JWKS: p.jwks, Issuer: "https://idp.test", Audience: "arbiter", CacheSize: 2,
		Clock: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	tok := p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["exp"] = now.Add(time.Minute).Unix() })
	a, err := v.Authenticate(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := v.Authenticate(context.Background(), tok)
	if err != nil || a != b {
		t.Errorf("second use: %p %v, want the remembered principal %p", b, err, a)
	}
	clock = now.Add(2 * time.Minute)
	if _, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("after expiry: %v, want ErrUnauthenticated", err)
	}
	for i := 0; i < 5; i++ { // more tokens than the bound
		clock = now
		if _, err := v.Authenticate(context.Background(), p.token(t, func(c jwt.MapClaims, _ map[string]any) { c["jti"] = strconv.Itoa(i) })); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(v.cache); n > 2 {
		t.Errorf("cache holds %d tokens, want at most 2", n)
	}
}

func TestNewRefuses(t *testing.T) {
	p := newIDP(t, "k1")
	for name, o := range map[string]Options{
		"no issuer":   {JWKS: p.jwks, Audience: "a"},
		"no audience": {JWKS: p.jwks, Issuer: "i"},
		"bad JSON":    {JWKS: []byte("{"), Issuer: "i", Audience: "a"},
		"HMAC":        {JWKS: p.jwks, Issuer: "i", Audience: "a", Algorithms: []string{"HS256"}},
		"none":        {JWKS: p.jwks, Issuer: "i", Audience: "a", Algorithms: []string{"none"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// BenchmarkAuthenticate: a token's first use checks its signature; later
// uses find it remembered.
func BenchmarkAuthenticate(b *testing.B) {
	p := newIDP(b, "k1")
	v := verifier(b, p.jwks)
	tok := p.token(b, nil)
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Authenticate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signature", func(b *testing.B) {
		for b.Loop() {
			v.cache = map[string]cached{}
			if _, err := v.Authenticate(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A key set served at a URL is fetched, and fetched again when a token
// names a key it lacks: the identity provider rotates its keys without a
// restart of the server.
func TestKeySetURLRotation(t *testing.T) {
	first, second := newIDP(t, "k1"), newIDP(t, "k2")
	var mu sync.Mutex
	serving := first.jwks
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(serving)
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewFromURL(ctx, srv.URL, Options{Issuer: "https://idp.test", Audience: "arbiter", Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Authenticate(ctx, first.token(t, nil)); err != nil {
		t.Fatalf("a token of the served key: %v", err)
	}
	mu.Lock()
	serving = second.jwks // the provider rotates
	mu.Unlock()
	// The unknown key id makes the set be fetched again; the refetch
	// allowed right after the first is immediate, but the refresh runs in
	// the background: the wait is bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := v.Authenticate(ctx, second.token(t, func(c jwt.MapClaims, _ map[string]any) { c["jti"] = time.Now().String() }))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a token of the rotated key is still refused after 10s: %v", err)
		}
		runtime.Gosched()
	}
	// The rotated-out key no longer verifies (a token not seen before).
	old := first.token(t, func(c jwt.MapClaims, _ map[string]any) { c["jti"] = "after-rotation" })
	if _, err := v.Authenticate(ctx, old); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("a token of the rotated-out key: %v, want ErrUnauthenticated", err)
	}
	if _, err := NewFromURL(ctx, "http://idp.example.com/jwks", Options{Issuer: "i", Audience: "a"}); err == nil {
		t.Error("a plain-http key set URL off loopback was accepted")
	}
}
