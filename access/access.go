// Package access says who a caller is: the Principal an authenticated
// request carries, with its roles and, for a rep tool, its territories.
// Which role may call which RPC is declared in the API (proto method
// options, proto/nba/v1/access.proto) and enforced at the gRPC boundary
// (server/authz.go); how a token becomes a Principal is the authn
// adapter's. This package is part of the pure core: values and a context
// key, no I/O.
//
// # Invariants
//
//   - Deny by default: a Principal without a role may call nothing, and
//     an RPC that declares no role may be called by nobody.
//   - The caller kind that weighs a decision comes from the Principal's
//     role, never from a request field when the caller is authenticated.
//
// # Never
//
//   - Never take a Principal from anything but a verified credential.
//   - Never log a token; a Principal's subject is an id, not a name.
package access

import (
	"context"
	"slices"

	"github.com/arbiter-nba/arbiter"
)

// Role is what a caller may do. Its values are numbered as the API's Role
// enum (a test pins the numbering).
type Role uint8

const (
	RoleUnspecified Role = iota
	// RepTool: decisions, for its territories.
	RepTool
	// MarketingPlatform: decisions, batches and its send events.
	MarketingPlatform
	// DataFeed: events, profiles and imports.
	DataFeed
	// ConsentWriter: consent changes and reads.
	ConsentWriter
	// Auditor: reads of consent history, profiles and definitions.
	Auditor
	// Admin: publishing definitions.
	Admin
	numRoles
)

var roleNames = [numRoles]string{"unspecified", "rep_tool", "marketing_platform", "data_feed", "consent_writer", "auditor", "admin"}

func (r Role) String() string {
	if r < numRoles {
		return roleNames[r]
	}
	return "invalid"
}

// ParseRole returns the role of a name ("rep_tool"), as tokens carry it.
func ParseRole(s string) (Role, bool) {
	for i := Role(1); i < numRoles; i++ {
		if roleNames[i] == s {
			return i, true
		}
	}
	return RoleUnspecified, false
}

// Principal is an authenticated caller.
type Principal struct {
	// Subject identifies the caller (the token's "sub": a system or user
	// id, never a name).
	Subject string
	Roles   []Role
	// Territories a rep tool may decide for (empty: none).
	Territories []string
}

// Has reports whether p has role r.
func (p *Principal) Has(r Role) bool { return slices.Contains(p.Roles, r) }

// CallerKind is the caller kind p's roles make it: a rep tool or a
// marketing platform; unspecified for any other.
func (p *Principal) CallerKind() arbiter.CallerKind {
	switch {
	case p.Has(RepTool):
		return arbiter.CallerRepTool
	case p.Has(MarketingPlatform):
		return arbiter.CallerMarketingPlatform
	}
	return arbiter.CallerUnspecified
}

type principalKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the Principal ctx carries, if any.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
