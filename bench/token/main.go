// Command token mints what an identity provider would, for benchmarks of
// authenticated calls: an ES256 key, its JWKS file, and a bearer token.
//
//	go run ./bench/token -jwks /tmp/jwks.json -roles rep_tool -territories T01,T02 > /tmp/token
//
// The server then runs with -auth-jwks /tmp/jwks.json -auth-issuer
// https://bench.invalid -auth-audience arbiter-bench.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	jwksPath := flag.String("jwks", "", "write the JWKS here (required)")
	roles := flag.String("roles", "rep_tool", "comma-separated roles")
	territories := flag.String("territories", "", "comma-separated territories")
	sub := flag.String("sub", "bench", "the token's subject")
	ttl := flag.Duration("ttl", 24*time.Hour, "how long the token is valid")
	kid := flag.String("kid", "bench", "the key's id (two tokens of different keys can share a JWKS: merge the files' keys)")
	flag.Parse()
	if *jwksPath == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: token -jwks FILE [-roles r1,r2] [-territories t1,t2] [-sub S] [-ttl D]")
		os.Exit(2)
	}
	if err := run(*jwksPath, *roles, *territories, *sub, *kid, *ttl); err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		os.Exit(1)
	}
}

func run(jwksPath, roles, territories, sub, kid string, ttl time.Duration) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	enc := base64.RawURLEncoding
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "EC", "crv": "P-256", "kid": kid,
		"alg": "ES256", "use": "sig", "x": enc.EncodeToString(key.X.FillBytes(make([]byte, 32))),
		"y": enc.EncodeToString(key.Y.FillBytes(make([]byte, 32)))}}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(jwksPath, jwks, 0o644); err != nil {
		return err
	}
	claims := jwt.MapClaims{"iss": "https://bench.invalid", "aud": "arbiter-bench", "sub": sub,
		"exp": time.Now().Add(ttl).Unix(), "roles": split(roles), "territories": split(territories)}
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		return err
	}
	fmt.Println(s)
	return nil
}

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}
