package main

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/arbiter-nba/arbiter/proto/openapi"
)

// The HTTP/JSON API (-http-listen) is the gRPC server's, transcoded by
// vanguard (connectrpc.com/vanguard): a REST request on a path of the
// protos' google.api.http options, or a Connect or gRPC-Web request on
// /nba.v1.<Service>/<Method>, becomes a gRPC call that vanguard hands to
// the *grpc.Server's own ServeHTTP. So every call, whatever its protocol,
// goes through the server's interceptors and stats handlers:
// authentication (the Authorization header is the call's metadata; a
// client certificate verified by the TLS listener is its peer's),
// authorization by role, admission, rate limits, the maximum deadline,
// validation, error mapping and metrics. (grpc-gateway's in-process
// handlers call the service implementation directly, past the
// interceptors, and do not stream.)
const (
	// maxHTTPBody bounds a request body: a unary request's JSON, or a whole
	// Connect or gRPC-Web stream (a long import or send stream belongs on
	// the gRPC listener). Each message must still fit the gRPC server's
	// limit once transcoded (server.MaxRecvMsgSize).
	maxHTTPBody = 4 << 20
	// maxHTTPHeader bounds a request's headers, as grpc.MaxHeaderListSize
	// does on the gRPC listener: a bearer token takes a few kilobytes.
	maxHTTPHeader = 64 << 10
)

// jsonCodec is the JSON of the HTTP API, REST and Connect alike: the
// protos' field names (snake_case, as in the OpenAPI document and the
// field violations of errors), every field even when it is zero (a
// JSON client sees "allowed": false rather than nothing), enums by name.
// A field the message does not have is refused (InvalidArgument), as
// protojson does by default: a misspelt field is an error, not silently
// ignored.
func jsonCodec(res vanguard.TypeResolver) vanguard.Codec {
	return requestJSON{&vanguard.JSONCodec{
		MarshalOptions:   protojson.MarshalOptions{Resolver: res, UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{Resolver: res},
	}}
}

// requestJSON is the JSON codec, whose decoding errors are the client's:
// a body (or a path or query value) that is not JSON of the request
// message is InvalidArgument, HTTP 400, where vanguard would answer
// Unknown, 500.
type requestJSON struct{ *vanguard.JSONCodec }

func (c requestJSON) Unmarshal(data []byte, msg proto.Message) error {
	return invalidRequest(c.JSONCodec.Unmarshal(data, msg))
}

func (c requestJSON) UnmarshalField(data []byte, msg proto.Message, field protoreflect.FieldDescriptor) error {
	return invalidRequest(c.JSONCodec.UnmarshalField(data, msg, field))
}

func invalidRequest(err error) error {
	if err == nil {
		return nil
	}
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("request JSON: %w", err))
}

// newHTTPHandler returns the HTTP API's handler: the OpenAPI document at
// /openapi.json and /openapi.yaml, the decision explorer's page at
// /explorer/ (explorer.go), and every other path transcoded into a
// call on g (REST, Connect, gRPC-Web; and gRPC itself, passed through).
// Request bodies are bounded by maxHTTPBody.
func newHTTPHandler(g *grpc.Server, authenticated bool) (http.Handler, error) {
	names := make([]string, 0, len(g.GetServiceInfo()))
	for name := range g.GetServiceInfo() {
		names = append(names, name)
	}
	slices.Sort(names)
	services := make([]*vanguard.Service, len(names))
	for i, name := range names {
		services[i] = vanguard.NewService(name, g)
	}
	// The gRPC server decodes protobuf only (server's codec): vanguard
	// turns JSON into it, and passes gRPC requests through.
	transcoder, err := vanguard.NewTranscoder(services, vanguard.WithCodec(jsonCodec),
		vanguard.WithDefaultServiceOptions(vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto)))
	if err != nil {
		return nil, fmt.Errorf("http api: %w", err)
	}
	docJSON, err := openapi.JSON()
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", serveDocument("application/json", docJSON))
	mux.HandleFunc("GET /openapi.yaml", serveDocument("application/yaml", openapi.YAML))
	mux.Handle("GET /explorer/", explorerHandler())
	mux.Handle("GET /explorer", http.RedirectHandler("/explorer/", http.StatusMovedPermanently))
	mux.Handle("/", transcoder)
	return guardRequests(http.MaxBytesHandler(mux, maxHTTPBody), authenticated), nil
}

// guardRequests refuses, before anything reads a body:
//
//   - compressed request bodies (415): the body limit counts compressed
//     bytes, and a small gzip body would unpack to gigabytes before any
//     interceptor (authentication included) sees the call;
//   - without authentication, a request whose Host or Origin is not
//     loopback (403): a web page the user visits must not be able to call
//     a listener that trusts anyone on loopback, directly (a cross-origin
//     POST needs no preflight) or by rebinding its DNS name to 127.0.0.1.
func guardRequests(next http.Handler, authenticated bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Content-Encoding", "Connect-Content-Encoding", "Grpc-Encoding"} {
			if v := r.Header.Get(h); v != "" && !strings.EqualFold(v, "identity") {
				httpError(w, http.StatusUnsupportedMediaType, codes.InvalidArgument, "compressed request bodies are not accepted ("+h+")")
				return
			}
		}
		if unaryBody(r) {
			// A unary call's body is small: it must arrive within
			// httpBodyTimeout, or a slow client holds the connection and
			// its goroutine for as long as it likes. (Streams, Connect's
			// and gRPC's, may take their time.)
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(httpBodyTimeout))
		}
		if !authenticated {
			origin := r.Header.Get("Origin")
			if !loopbackHost(r.Host) || origin != "" && !loopbackOrigin(origin) {
				httpError(w, http.StatusForbidden, codes.PermissionDenied,
					"this server has no authentication and answers only requests to and from loopback (Host and Origin)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// httpBodyTimeout bounds the time a unary call's body may take to arrive.
var httpBodyTimeout = 30 * time.Second

// unaryBody reports whether r carries a unary call's body: REST JSON, or
// Connect's unary protocol (a content type without "+": streams use
// application/connect+json, gRPC application/grpc...).
func unaryBody(r *http.Request) bool {
	if r.Body == nil || r.Body == http.NoBody {
		return false
	}
	ct := r.Header.Get("Content-Type")
	return !strings.HasPrefix(ct, "application/connect+") && !strings.HasPrefix(ct, "application/grpc")
}

// loopbackHost reports whether a Host header names a loopback address or
// localhost (with or without a port).
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func loopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	return err == nil && loopbackHost(u.Host)
}

// httpError answers with a google.rpc.Status JSON body, as the API does.
func httpError(w http.ResponseWriter, httpCode int, code codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpCode)
	b, _ := json.Marshal(map[string]any{"code": int(code), "message": msg})
	_, _ = w.Write(b)
}

func serveDocument(contentType string, doc []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(doc)
	}
}

// newHTTPServer returns the HTTP server of handler: HTTP/1.1 and HTTP/2
// (with TLS when tc is not nil, else HTTP/2 without TLS, "h2c", which gRPC
// and Connect's bidirectional streams need), with timeouts on reading
// headers and idle connections, and at most maxStreams concurrent calls
// per HTTP/2 connection, as on the gRPC listener. Its errors are logged
// without the request: a path may hold an HCP id.
func newHTTPServer(handler http.Handler, tc *tls.Config, maxStreams int, log *slog.Logger) *http.Server {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if tc != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Server{
		Handler:           handler,
		TLSConfig:         tc,
		Protocols:         &protocols,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: maxStreams},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHTTPHeader,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves srv on lis (over TLS when srv has a TLS configuration)
// until srv is shut down.
func serveHTTP(srv *http.Server, lis net.Listener, log *slog.Logger) {
	var err error
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(lis, "", "") // the certificate comes from TLSConfig.GetCertificate
	} else {
		err = srv.Serve(lis)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("HTTP server stopped", "err", err)
	}
}
