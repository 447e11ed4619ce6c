package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/arbiter-nba/arbiter/access"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// Authenticator turns a bearer token into a Principal (authn.Verifier).
// Every failure is one error: the caller is not told which check failed.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*access.Principal, error)
}

// WithAuthenticator makes every call but health checks present a bearer
// token (the "authorization: Bearer <token>" header) that a verifies, from
// a Principal with a role the method allows. Without it the server is open
// to anyone who can reach it: for the demo on loopback, and tests.
func WithAuthenticator(a Authenticator) Option { return func(s *Server) { s.authn = a } }

// WithClientCertPrincipals makes a client certificate that the TLS
// listener verified (mutual TLS) a way to authenticate, for a call without
// a bearer token: the Principal's subject is "x509:" and the certificate's
// subject common name (so it never passes for a token's subject), and its
// roles are the organizational units named "arbiter-role:<role>"
// ("arbiter-role:data_feed"): a CA that also signs certificates for other
// purposes grants no role by accident. The listener must verify client
// certificates (tls.Config.ClientCAs).
func WithClientCertPrincipals() Option { return func(s *Server) { s.certPrincipals = true } }

// certPrincipal is the Principal of the verified client certificate of
// ctx's connection, if there is one.
func certPrincipal(ctx context.Context) (*access.Principal, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil, false
	}
	leaf := info.State.VerifiedChains[0][0]
	if leaf.Subject.CommonName == "" {
		return nil, false
	}
	pr := &access.Principal{Subject: "x509:" + leaf.Subject.CommonName}
	for _, ou := range leaf.Subject.OrganizationalUnit {
		name, ok := strings.CutPrefix(ou, "arbiter-role:")
		if !ok {
			continue
		}
		if r, ok := access.ParseRole(name); ok {
			pr.Roles = append(pr.Roles, r)
		}
	}
	return pr, true
}

// Deny by default: the roles that may call a method come from its
// allowed_roles option in the API (proto/nba/v1/access.proto); a method
// without one may be called by nobody. Health is open (load balancers);
// server reflection is for admins.
var (
	errUnauthenticated = status.Error(codes.Unauthenticated, "missing or invalid credentials")
	errDenied          = status.Error(codes.PermissionDenied, "not allowed for this caller")
)

// allowedRoles returns, for every method of the services registered on g,
// the roles that may call it ("/nba.v1.DecisionService/Decide" -> roles).
// Health's methods are open (nil); reflection's, the admin's.
func allowedRoles(g *grpc.Server) map[string][]access.Role {
	out := map[string][]access.Role{}
	for svc, info := range g.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			switch {
			case svc == healthpb.Health_ServiceDesc.ServiceName:
				out[full] = nil
			case strings.HasPrefix(svc, "grpc.reflection."):
				out[full] = []access.Role{access.Admin}
			default:
				out[full] = methodRoles(svc, m.Name)
			}
		}
	}
	return out
}

// methodRoles reads a method's allowed_roles option; none for a method
// without it, or not found.
func methodRoles(service, method string) []access.Role {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return []access.Role{}
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return []access.Role{}
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return []access.Role{}
	}
	roles := []access.Role{}
	for _, r := range proto.GetExtension(md.Options(), nbapb.E_AllowedRoles).([]nbapb.Role) {
		roles = append(roles, access.Role(r))
	}
	return roles
}

// authorize returns ctx with the caller's Principal, or the status that
// refuses the call: Unauthenticated without a valid token, PermissionDenied
// for a role the method does not allow (and for a method that allows
// none).
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	roles, known := s.allowed[method]
	if known && roles == nil {
		return ctx, nil // open: health
	}
	var p *access.Principal
	switch token := bearer(ctx); {
	case token != "" && s.authn != nil:
		var err error
		if p, err = s.authn.Authenticate(ctx, token); err != nil {
			return nil, errUnauthenticated
		}
	case token == "" && s.certPrincipals:
		var ok bool
		if p, ok = certPrincipal(ctx); !ok {
			return nil, errUnauthenticated
		}
	default:
		return nil, errUnauthenticated
	}
	for _, r := range roles {
		if p.Has(r) {
			return access.NewContext(ctx, p), nil
		}
	}
	return nil, errDenied
}

// bearer returns the request's bearer token, or "".
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if scheme, token, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			return strings.TrimSpace(token)
		}
	}
	return ""
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, principalStream{ss, ctx})
}

// principalStream is a stream whose context carries the Principal.
type principalStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s principalStream) Context() context.Context { return s.ctx }
