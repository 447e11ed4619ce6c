// Package authn turns a bearer token into an access.Principal: an OAuth2 /
// OIDC access token, a JWT signed by a key of a JSON Web Key Set (JWKS).
// It uses golang-jwt/jwt v5 for parsing and the standard claims, and
// MicahParks/keyfunc v3 for the key set, rather than code of our own: token
// verification is where hand-written code goes wrong.
//
// # Invariants
//
//   - Only the algorithms in the allowlist verify ("none" and HMAC never
//     do: a public key set holds no shared secret), only with a key of the
//     set whose id the token names, and only a token with an expiry, a
//     matching issuer and audience, and a start time that has come.
//   - Every refusal is the same error, ErrUnauthenticated: a caller is not
//     told which check failed.
//   - A verified token is remembered until it expires (bounded), so that a
//     caller pays one signature check per token, not one per call.
//
// # Never
//
//   - Never log a token or put one in an error.
package authn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/arbiter-nba/arbiter/access"
)

// ErrUnauthenticated is every refusal: no token, a malformed one, a bad
// signature, an unknown key, the wrong issuer or audience, expired, not
// yet valid.
var ErrUnauthenticated = errors.New("authn: missing or invalid credentials")

const (
	// maxTokenLen bounds a bearer token: an access token is a few hundred
	// bytes to a few kilobytes; a caller who sends megabytes is refused
	// before anything is decoded.
	maxTokenLen = 8 << 10
	// maxRemember bounds how long a verified token is remembered.
	maxRemember = 5 * time.Minute
)

// DefaultAlgorithms are the signature algorithms accepted by default:
// asymmetric ones only.
var defaultAlgorithms = []string{"ES256", "ES384", "RS256", "RS384", "PS256", "EdDSA"}

// Options configure a Verifier.
type Options struct {
	// JWKS is the key set, as JSON (a JWKS file's content).
	JWKS []byte
	// Issuer and Audience the tokens must name (both required).
	Issuer, Audience string
	// Algorithms allowed; default ES256, ES384, RS256, RS384, PS256, EdDSA.
	Algorithms []string
	// CacheSize bounds the verified tokens remembered (default 10,000).
	CacheSize int
	// Clock, default time.Now.
	Clock func() time.Time
}

// Verifier checks bearer tokens. It is safe for concurrent use.
type Verifier struct {
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
	now    func() time.Time
	max    int

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	p       *access.Principal
	expires time.Time
}

// claims are the token's claims that Arbiter reads: the registered ones,
// and the caller's roles and territories.
type claims struct {
	jwt.RegisteredClaims
	Roles       []string `json:"roles"`
	Territories []string `json:"territories"`
}

// New returns a Verifier for the key set and the issuer and audience.
func New(o Options) (*Verifier, error) {
	if !json.Valid(o.JWKS) {
		return nil, errors.New("authn: the key set is not JSON")
	}
	keys, err := keyfunc.NewJWKSetJSON(o.JWKS)
	if err != nil {
		return nil, fmt.Errorf("authn: key set: %w", err)
	}
	return newVerifier(keys, o)
}

// NewFromURL returns a Verifier for the key set the identity provider
// serves at url (its jwks_uri), fetched now, refreshed every hour and at
// once (at most every five minutes) when a token names a key id the set
// lacks: keys rotate without a restart. The URL must be https, but on
// loopback. ctx ends the refreshing.
func NewFromURL(ctx context.Context, url string, o Options) (*Verifier, error) {
	u, err := neturl.Parse(url)
	if err != nil {
		return nil, fmt.Errorf("authn: key set URL: %w", err)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, errors.New("authn: the key set URL must be https (http only on loopback)")
	}
	// An HTTP client that follows no redirect off https and gives up in
	// 10 s; the first fetch must succeed, so a server never starts with
	// no keys by surprise.
	strict := false
	client := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && isLoopback(req.URL.Hostname())) {
			return errors.New("authn: redirect off https")
		}
		return nil
	}}
	keys, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
		Client: client, HTTPTimeout: 10 * time.Second, NoErrorReturnFirstHTTPReq: &strict})
	if err != nil {
		return nil, fmt.Errorf("authn: key set: %w", err)
	}
	return newVerifier(keys, o)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newVerifier(keys keyfunc.Keyfunc, o Options) (*Verifier, error) {
	if o.Issuer == "" || o.Audience == "" {
		return nil, errors.New("authn: the issuer and the audience are required")
	}
	if len(o.Algorithms) == 0 {
		o.Algorithms = defaultAlgorithms
	}
	for _, a := range o.Algorithms {
		if a == "none" || a == "HS256" || a == "HS384" || a == "HS512" {
			return nil, fmt.Errorf("authn: algorithm %s is not allowed", a)
		}
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	v := &Verifier{keys: keys, now: o.Clock, max: o.CacheSize, cache: map[string]cached{}}
	v.parser = jwt.NewParser(jwt.WithValidMethods(o.Algorithms), jwt.WithIssuer(o.Issuer),
		jwt.WithAudience(o.Audience), jwt.WithExpirationRequired(), jwt.WithTimeFunc(o.Clock))
	return v, nil
}

// NewFromFile is New with the key set read from a JWKS file.
func NewFromFile(path string, o Options) (*Verifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("authn: key set: %w", err)
	}
	o.JWKS = data
	return New(o)
}

// Authenticate returns the Principal of a bearer token, or
// ErrUnauthenticated.
func (v *Verifier) Authenticate(_ context.Context, token string) (*access.Principal, error) {
	if token == "" || len(token) > maxTokenLen {
		return nil, ErrUnauthenticated // a huge token is refused before any decoding
	}
	now := v.now()
	v.mu.Lock()
	c, ok := v.cache[token]
	v.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	var cl claims
	t, err := v.parser.ParseWithClaims(token, &cl, v.keys.Keyfunc)
	if err != nil || !t.Valid || cl.Subject == "" || cl.ExpiresAt == nil {
		return nil, ErrUnauthenticated
	}
	p := &access.Principal{Subject: cl.Subject, Territories: cl.Territories}
	for _, name := range cl.Roles {
		if r, ok := access.ParseRole(name); ok {
			p.Roles = append(p.Roles, r)
		}
	}
	v.mu.Lock()
	if len(v.cache) >= v.max {
		for k := range v.cache { // an arbitrary one makes room
			delete(v.cache, k)
			break
		}
	}
	// A token not yet valid at nbf was refused above; one that becomes
	// invalid at exp is forgotten then, and any token after at most
	// maxRemember, so that a key withdrawn from the set stops its tokens
	// working within minutes, not at their expiry.
	expires := cl.ExpiresAt.Time
	if limit := now.Add(maxRemember); limit.Before(expires) {
		expires = limit
	}
	v.cache[token] = cached{p: p, expires: expires}
	v.mu.Unlock()
	return p, nil
}
