package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/demo"
	"github.com/arbiter-nba/arbiter/internal/redistest"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
)

// httpAPI is a client of a test server's HTTP/JSON API: plain HTTP, or
// HTTPS trusting the test PKI's certificate.
type httpAPI struct {
	base   string
	client *http.Client
}

func newHTTPAPI(t *testing.T, ts *testServer, p *testPKI) httpAPI {
	t.Helper()
	if ts.HTTPAddr() == "" {
		t.Fatal("the server serves no HTTP API")
	}
	api := httpAPI{base: "http://" + ts.HTTPAddr(), client: &http.Client{Timeout: 10 * time.Second}}
	if p != nil {
		api.base = "https://" + ts.HTTPAddr()
		api.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.certPool}}
	}
	t.Cleanup(api.client.CloseIdleConnections)
	return api
}

// do sends a request (body: JSON, or none when empty) with a bearer token
// when one is given, and returns the status code and the body.
func (a httpAPI) do(t *testing.T, method, path, body, token string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, a.base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return resp.StatusCode, data
}

// rpcStatus decodes an error body as a google.rpc.Status (with its
// details, by their registered types).
func rpcStatus(t *testing.T, body []byte) *spb.Status {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v\n%s", err, body)
	}
	return &st
}

// violations are the field violations of a status's BadRequest detail,
// by field.
func violations(t *testing.T, st *spb.Status) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range st.GetDetails() {
		var br errdetails.BadRequest
		if d.MessageIs(&br) {
			if err := d.UnmarshalTo(&br); err != nil {
				t.Fatal(err)
			}
			for _, v := range br.GetFieldViolations() {
				out[v.GetField()] = v.GetDescription()
			}
		}
	}
	return out
}

// A decision over REST: JSON in, JSON out with the proto's field names,
// the recommendations ranked; the same server answers gRPC meanwhile.
func TestHTTPDecide(t *testing.T) {
	eachBackend(t, func(t *testing.T, b redistest.Backend) {
		ts := start(t, b, 50, "-http-listen", "127.0.0.1:0")
		api := newHTTPAPI(t, ts, nil)
		code, body := api.do(t, "POST", "/v1/recipients/HCP-000042:decide", `{"limit": 3, "explain": true}`, "")
		if code != http.StatusOK {
			t.Fatalf("decide: HTTP %d: %s", code, body)
		}
		var d map[string]any
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatalf("decide: not JSON: %v\n%s", err, body)
		}
		for _, field := range []string{"decision_id", "recommendations", "suppressed", "model_version", "definitions_version", "decision_time"} {
			if _, ok := d[field]; !ok {
				t.Errorf("decide: no %q in %s", field, body)
			}
		}
		if _, ok := d["decisionId"]; ok {
			t.Errorf("decide: JSON names are lowerCamelCase, want the proto's: %s", body)
		}
		if id, _ := d["decision_id"].(string); id == "" {
			t.Errorf("decide: decision_id %v, want an id", d["decision_id"])
		}
		recs, _ := d["recommendations"].([]any)
		if len(recs) == 0 || len(recs) > 3 {
			t.Fatalf("decide: %d recommendations, want 1 to 3: %s", len(recs), body)
		}
		prev := 0.0
		for i, r := range recs {
			rec, _ := r.(map[string]any)
			if rank, _ := rec["rank"].(float64); rank != float64(i+1) {
				t.Errorf("recommendation %d: rank %v, want %d", i, rec["rank"], i+1)
			}
			score, _ := rec["score"].(float64)
			if i > 0 && score > prev {
				t.Errorf("recommendation %d: score %v above the one before (%v)", i, score, prev)
			}
			prev = score
			if id, _ := rec["action_id"].(string); id == "" {
				t.Errorf("recommendation %d: no action_id: %v", i, rec)
			}
			if ch, _ := rec["channel"].(string); !strings.HasPrefix(ch, "CHANNEL_") {
				t.Errorf("recommendation %d: channel %v, want the enum's name", i, rec["channel"])
			}
			if _, ok := rec["context_weight"]; !ok {
				t.Errorf("recommendation %d: no context_weight: %v", i, rec)
			}
		}
		// The gRPC listener serves the same server meanwhile.
		if _, err := ts.client.Decide(t.Context(), demo.HCPID(42), client.DecideOptions{Limit: 3}); err != nil {
			t.Errorf("gRPC beside HTTP: %v", err)
		}
	})
}

// A request the server refuses answers HTTP 400 with a google.rpc.Status
// whose BadRequest detail names the field, as over gRPC; an unknown HCP
// 404; a body that is not the request's JSON 400; a path of no RPC 404.
func TestHTTPErrors(t *testing.T) {
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	api := newHTTPAPI(t, ts, nil)

	code, body := api.do(t, "POST", "/v1/recipients/HCP-000042:decide", `{"limit": 200}`, "")
	if code != http.StatusBadRequest {
		t.Fatalf("limit 200: HTTP %d, want 400: %s", code, body)
	}
	st := rpcStatus(t, body)
	if st.GetCode() != 3 {
		t.Errorf("limit 200: code %d, want 3 (INVALID_ARGUMENT)", st.GetCode())
	}
	if v := violations(t, st); v["limit"] == "" {
		t.Errorf("limit 200: field violations %v, want one for limit: %s", v, body)
	}
	if !bytes.Contains(body, []byte(`"field_violations"`)) || !bytes.Contains(body, []byte(`"@type":"type.googleapis.com/google.rpc.BadRequest"`)) {
		t.Errorf("limit 200: want the detail with its @type and snake_case names: %s", body)
	}

	// A nested field's path, as over gRPC.
	code, body = api.do(t, "POST", "/v1/events",
		`{"event": {"event_id": "e-1", "hcp_id": "HCP-000001", "type": "EVENT_TYPE_OPENED", "channel": "CHANNEL_EMAIL"}}`, "")
	if code != http.StatusBadRequest {
		t.Fatalf("event without occurred_at: HTTP %d, want 400: %s", code, body)
	}
	if v := violations(t, rpcStatus(t, body)); v["event.occurred_at"] == "" {
		t.Errorf("event without occurred_at: field violations %v, want event.occurred_at", v)
	}

	// A path variable is validated like the field it fills.
	code, body = api.do(t, "GET", "/v1/recipients/bad%7Bid", "", "")
	if code != http.StatusBadRequest {
		t.Fatalf("malformed hcp_id: HTTP %d, want 400: %s", code, body)
	}
	if v := violations(t, rpcStatus(t, body)); v["hcp_id"] == "" {
		t.Errorf("malformed hcp_id: field violations %v, want hcp_id", v)
	}

	code, body = api.do(t, "GET", "/v1/recipients/HCP-999999", "", "")
	if code != http.StatusNotFound || rpcStatus(t, body).GetCode() != 5 {
		t.Errorf("unknown HCP: HTTP %d, %s; want 404, code 5 (NOT_FOUND)", code, body)
	}

	for _, bad := range []string{`{"limt": 3}`, `{"limit": "three"}`, `{`} {
		code, body = api.do(t, "POST", "/v1/recipients/HCP-000042:decide", bad, "")
		if code != http.StatusBadRequest || rpcStatus(t, body).GetCode() != 3 {
			t.Errorf("body %s: HTTP %d, %s; want 400, code 3", bad, code, body)
		}
	}

	if code, body = api.do(t, "GET", "/v1/nothing-here", "", ""); code != http.StatusNotFound {
		t.Errorf("a path of no RPC: HTTP %d, want 404: %s", code, body)
	}

	// Past the rate limit (one call in 1000 s, with a burst of one, per
	// client address): 429, RESOURCE_EXHAUSTED, with the retry hint.
	limited := start(t, embedded, 50, "-http-listen", "127.0.0.1:0", "-rate-limit", "0.001", "-rate-burst", "1")
	lapi := newHTTPAPI(t, limited, nil)
	if code, body = lapi.do(t, "GET", "/v1/recipients/HCP-000001/consent", "", ""); code != http.StatusOK {
		t.Fatalf("first call: HTTP %d: %s", code, body)
	}
	code, body = lapi.do(t, "GET", "/v1/recipients/HCP-000001/consent", "", "")
	if code != http.StatusTooManyRequests {
		t.Fatalf("past the rate limit: HTTP %d, want 429: %s", code, body)
	}
	st = rpcStatus(t, body)
	var retry errdetails.RetryInfo
	if st.GetCode() != 8 || len(st.GetDetails()) == 0 || st.GetDetails()[0].UnmarshalTo(&retry) != nil || retry.GetRetryDelay().AsDuration() <= 0 {
		t.Errorf("past the rate limit: %s; want code 8 with a RetryInfo", body)
	}
}

// Over HTTPS with authentication on, the gRPC server's interceptors
// decide: no token is 401, a token without a role the RPC allows 403, a
// rep tool outside the HCP's territory 404, and inside it 200.
func TestHTTPAuthentication(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 50, append(p.flags(), "-http-listen", "127.0.0.1:0")...)
	api := newHTTPAPI(t, ts, p)
	hcp := demo.HCPID(42)
	path := "/v1/recipients/" + hcp + ":decide"
	rep := func(territory string) string {
		return p.token(t, []string{"rep_tool"}, func(c jwt.MapClaims, _ map[string]any) { c["territories"] = []string{territory} })
	}
	for _, c := range []struct {
		name       string
		token      string
		code       int
		statusCode int32
	}{
		{"no token", "", http.StatusUnauthorized, 16},
		{"a forged token", p.token(t, []string{"rep_tool"}, func(c jwt.MapClaims, _ map[string]any) { c["forged"] = true }), http.StatusUnauthorized, 16},
		{"a data feed (Decide is not its)", p.token(t, []string{"data_feed"}, nil), http.StatusForbidden, 7},
		{"a rep tool of another territory", rep(demo.Territory(43)), http.StatusNotFound, 5},
		{"a rep tool of the HCP's territory", rep(demo.Territory(42)), http.StatusOK, 0},
	} {
		code, body := api.do(t, "POST", path, `{}`, c.token)
		if code != c.code {
			t.Errorf("%s: HTTP %d, want %d: %s", c.name, code, c.code, body)
			continue
		}
		if c.code != http.StatusOK {
			if st := rpcStatus(t, body); st.GetCode() != c.statusCode {
				t.Errorf("%s: code %d, want %d", c.name, st.GetCode(), c.statusCode)
			}
		}
	}
	// The OpenAPI document is public, like the health check.
	if code, body := api.do(t, "GET", "/openapi.json", "", ""); code != http.StatusOK {
		t.Errorf("openapi.json with authentication on: HTTP %d: %s", code, body)
	}
}

// /openapi.json is the OpenAPI 3 document, with a path for every unary
// RPC; and every unary RPC of the API has a google.api.http path (a new
// one cannot be left out of the HTTP API by mistake).
func TestHTTPOpenAPI(t *testing.T) {
	ts := start(t, embedded, 5, "-http-listen", "127.0.0.1:0")
	api := newHTTPAPI(t, ts, nil)
	code, body := api.do(t, "GET", "/openapi.json", "", "")
	if code != http.StatusOK {
		t.Fatalf("openapi.json: HTTP %d: %s", code, body)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("openapi.json is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3") {
		t.Errorf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	ops := map[string]bool{}
	for _, methods := range doc.Paths {
		for _, op := range methods {
			if id, ok := op["operationId"].(string); ok {
				ops[id] = true
			}
		}
	}
	services := nbapb.File_nba_v1_nba_proto.Services()
	for i := range services.Len() {
		svc := services.Get(i)
		for j := range svc.Methods().Len() {
			m := svc.Methods().Get(j)
			rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
			streaming := m.IsStreamingClient() || m.IsStreamingServer()
			switch {
			case streaming && rule != nil:
				t.Errorf("%s streams and has an HTTP path: vanguard serves streams over Connect and gRPC-Web only (docs/http.md)", m.FullName())
			case !streaming && rule == nil:
				t.Errorf("%s has no google.api.http path", m.FullName())
			case !streaming && !ops[operationID(m)]:
				t.Errorf("%s is not in the OpenAPI document (make proto)", m.FullName())
			}
		}
	}
}

func operationID(m protoreflect.MethodDescriptor) string {
	return fmt.Sprintf("%s_%s", m.Parent().Name(), m.Name())
}

// A server stream over HTTP/1.1: DecideBatch in the Connect protocol
// (REST does not stream), one enveloped JSON request, one enveloped JSON
// message per HCP in order, then the end of the stream.
func TestHTTPServerStream(t *testing.T) {
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	api := newHTTPAPI(t, ts, nil)
	req := []byte(`{"hcp_ids": ["HCP-000001", "HCP-999999", "HCP-000042"], "limit": 2}`)
	var env bytes.Buffer
	env.WriteByte(0)
	_ = binary.Write(&env, binary.BigEndian, uint32(len(req)))
	env.Write(req)
	hreq, err := http.NewRequest("POST", api.base+"/nba.v1.DecisionService/DecideBatch", &env)
	if err != nil {
		t.Fatal(err)
	}
	hreq.Header.Set("Content-Type", "application/connect+json")
	resp, err := api.client.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/connect+json" {
		t.Fatalf("DecideBatch over Connect: HTTP %d, %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	var items []map[string]any
	for {
		var head [5]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			t.Fatalf("after %d messages: %v (no end of stream)", len(items), err)
		}
		msg := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(r, msg); err != nil {
			t.Fatal(err)
		}
		if head[0]&2 != 0 { // the end of the stream: an error, if any, and trailers
			var end struct {
				Error *struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(msg, &end); err != nil || end.Error != nil {
				t.Fatalf("end of stream: %s (%v)", msg, err)
			}
			break
		}
		var item map[string]any
		if err := json.Unmarshal(msg, &item); err != nil {
			t.Fatalf("message %d: %v: %s", len(items), err, msg)
		}
		items = append(items, item)
	}
	want := []string{"HCP-000001", "HCP-999999", "HCP-000042"}
	if len(items) != len(want) {
		t.Fatalf("%d items, want %d", len(items), len(want))
	}
	for i, item := range items {
		if item["hcp_id"] != want[i] || item["index"] != float64(i) {
			t.Errorf("item %d: hcp_id %v, index %v; want %s, %d", i, item["hcp_id"], item["index"], want[i], i)
		}
		decision, _ := item["decision"].(map[string]any)
		itemErr, _ := item["error"].(map[string]any)
		switch {
		case want[i] == "HCP-999999" && (itemErr == nil || itemErr["code"] != float64(5)):
			t.Errorf("unknown HCP: error %v, want code 5", item["error"])
		case want[i] != "HCP-999999" && (decision == nil || decision["decision_id"] == ""):
			t.Errorf("item %d: no decision: %v", i, item)
		}
	}
}

// The HTTP listener follows the gRPC listener's rules: off loopback, TLS
// and authentication (or the insecure flags); arbiter demo serves it on
// 127.0.0.1:8080 unless told otherwise; a production server only when
// asked.
func TestHTTPListenConfig(t *testing.T) {
	noEnv := func(string) string { return "" }
	redis := []string{"-redis-addr", "127.0.0.1:1"}
	for _, c := range []struct {
		cmd  string
		args []string
		want string // a part of the error; empty: none
	}{
		{"serve", []string{"-http-listen", "0.0.0.0:8080"}, "http-listen: 0.0.0.0:8080 is not a loopback address and there is no TLS"},
		{"serve", []string{"-http-listen", "0.0.0.0:8080", "-insecure-plaintext"}, "http-listen: 0.0.0.0:8080 is not a loopback address and there is no authentication"},
		{"serve", []string{"-http-listen", "0.0.0.0:8080", "-insecure-plaintext", "-insecure-no-auth"}, ""},
		{"serve", []string{"-http-listen", "8080"}, "http-listen: want host:port"},
		{"serve", []string{"-http-listen", "127.0.0.1:8080"}, ""},
	} {
		args := c.args
		if c.cmd == "serve" {
			args = append(append([]string{}, c.args...), redis...)
		}
		_, err := parseConfig(c.cmd, args, noEnv)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %v: %v", c.cmd, c.args, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s %v: error %v, want one saying %q", c.cmd, c.args, err, c.want)
		}
	}
	if cfg, err := parseConfig("demo", nil, noEnv); err != nil || cfg.HTTPListen != "127.0.0.1:8080" {
		t.Errorf("arbiter demo: HTTP on %q (%v), want 127.0.0.1:8080", cfg.HTTPListen, err)
	}
	if cfg, err := parseConfig("demo", []string{"-http-listen", ""}, noEnv); err != nil || cfg.HTTPListen != "" {
		t.Errorf("arbiter demo -http-listen '': HTTP on %q (%v), want off", cfg.HTTPListen, err)
	}
	if cfg, err := parseConfig("serve", redis, noEnv); err != nil || cfg.HTTPListen != "" {
		t.Errorf("arbiter serve: HTTP on %q (%v), want off", cfg.HTTPListen, err)
	}
	env := func(k string) string {
		if k == "ARBITER_HTTP_LISTEN" {
			return "127.0.0.1:9090"
		}
		return ""
	}
	if cfg, err := parseConfig("serve", redis, env); err != nil || cfg.HTTPListen != "127.0.0.1:9090" {
		t.Errorf("ARBITER_HTTP_LISTEN: HTTP on %q (%v), want 127.0.0.1:9090", cfg.HTTPListen, err)
	}
}

// Shutting down stops the HTTP listener with the gRPC server: a request
// after Close finds no server, rather than a listener whose calls all fail.
func TestHTTPStopsWithTheServer(t *testing.T) {
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	api := newHTTPAPI(t, ts, nil)
	if code, body := api.do(t, "POST", "/v1/recipients/HCP-000042:decide", `{"limit": 1}`, ""); code != http.StatusOK {
		t.Fatalf("decide before shutdown: HTTP %d: %s", code, body)
	}
	addr := ts.HTTPAddr()
	if err := ts.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		conn.Close()
		t.Fatalf("the HTTP listener %s still accepts connections after Close", addr)
	}
}

// Before anything reads a body: a compressed body is refused (it would
// unpack before authentication, past the body limit), and a server
// without authentication answers only requests to and from loopback, so
// that a web page cannot call it (directly or by rebinding a name).
func TestHTTPGuards(t *testing.T) {
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	base := "http://" + ts.HTTPAddr()
	hc := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	do := func(mod func(*http.Request)) int {
		t.Helper()
		req, err := http.NewRequest("POST", base+"/v1/recipients/HCP-000042:decide", strings.NewReader(`{"limit": 1}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		mod(req)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := do(func(*http.Request) {}); code != http.StatusOK {
		t.Fatalf("a plain loopback request: HTTP %d", code)
	}
	if code := do(func(r *http.Request) { r.Header.Set("Origin", "http://localhost:8080") }); code != http.StatusOK {
		t.Errorf("a request from a loopback page: HTTP %d, want 200", code)
	}
	for name, mod := range map[string]func(*http.Request){
		"gzip body":      func(r *http.Request) { r.Header.Set("Content-Encoding", "gzip") },
		"connect gzip":   func(r *http.Request) { r.Header.Set("Connect-Content-Encoding", "gzip") },
		"foreign origin": func(r *http.Request) { r.Header.Set("Origin", "https://evil.example") },
		"foreign host":   func(r *http.Request) { r.Host = "rebound.evil.example:8080" },
	} {
		want := http.StatusForbidden
		if strings.Contains(name, "gzip") {
			want = http.StatusUnsupportedMediaType
		}
		if code := do(mod); code != want {
			t.Errorf("%s: HTTP %d, want %d", name, code, want)
		}
	}
}

// A unary call whose body does not arrive in time loses its connection:
// a slow client cannot hold it, and its goroutine, for ever.
func TestHTTPSlowBodyIsCut(t *testing.T) {
	old := httpBodyTimeout
	httpBodyTimeout = 300 * time.Millisecond
	t.Cleanup(func() { httpBodyTimeout = old })
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0")
	conn, err := net.DialTimeout("tcp", ts.HTTPAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Headers, and half of a body that never ends.
	if _, err := fmt.Fprintf(conn, "POST /v1/recipients/HCP-000042:decide HTTP/1.1\r\nHost: 127.0.0.1\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"limit\":"); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// The server answers (an error) or closes; either way the read ends
	// well before this test's own 10 s deadline.
	buf := make([]byte, 4096)
	for {
		_, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server still waits for the body after 10 s")
			}
			return // closed (EOF or reset)
		}
	}
}
