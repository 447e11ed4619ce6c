package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/arbiter-nba/arbiter/catalog"
	"github.com/arbiter-nba/arbiter/client"
	"github.com/arbiter-nba/arbiter/consent"
	"github.com/arbiter-nba/arbiter/definitions"
	"github.com/arbiter-nba/arbiter/demo"
	nbapb "github.com/arbiter-nba/arbiter/proto/nba/v1"
	"github.com/arbiter-nba/arbiter/scoring"
)

// writeDefinitions writes a definitions directory: the demo's files, with
// the catalog changed by edit (nil: unchanged), or with catalogJSON as the
// catalog when it is not nil.
func writeDefinitions(t *testing.T, edit func(actions []map[string]any), catalogJSON []byte) string {
	t.Helper()
	dir := t.TempDir()
	cat := catalog.DemoJSON()
	if edit != nil {
		var doc map[string]any
		if err := json.Unmarshal(cat, &doc); err != nil {
			t.Fatal(err)
		}
		var actions []map[string]any
		for _, a := range doc["actions"].([]any) {
			actions = append(actions, a.(map[string]any))
		}
		edit(actions)
		doc["version"] = "demo-edited"
		var err error
		if cat, err = json.Marshal(doc); err != nil {
			t.Fatal(err)
		}
	}
	if catalogJSON != nil {
		cat = catalogJSON
	}
	for name, data := range map[string][]byte{definitions.CatalogFile: cat,
		definitions.ModelFile: scoring.DemoJSON(), definitions.PolicyFile: consent.DefaultPolicyJSON()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The bar of published definitions: two server processes on one Redis,
// under a concurrent Decide load. A publish that withdraws a content item
// returns only when both use it, so every decision that starts after it
// returned suppresses the item, on both; an invalid set is refused and the
// old one keeps serving; no call fails during either publish.
func TestPublishDefinitionsTwoReplicas(t *testing.T) {
	b := singleRedis(t)
	const poll = "50ms"
	a := start(t, b, 100, "-definitions-poll", poll)
	c := start(t, b, 100, "-definitions-poll", poll) // the same key prefix: one fleet
	ctx := context.Background()

	// An HCP and the content action recommended to them first.
	var hcp, withdrawn, before string
	for i := 1; i <= 100 && withdrawn == ""; i++ {
		d, err := a.client.Decide(ctx, demo.HCPID(i), client.DecideOptions{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Recommendations {
			if r.ContentID != "" {
				hcp, withdrawn, before = demo.HCPID(i), r.ActionID, d.DefinitionsVersion
				break
			}
		}
	}
	if withdrawn == "" {
		t.Fatal("no demo HCP is recommended a content action")
	}
	if !strings.HasPrefix(before, "sha256:") {
		t.Fatalf("decision names definitions version %q, want a sha256", before)
	}

	// The load: both servers, all the time, each call noting when it
	// started, what it used and whether it recommended the item.
	type call struct {
		start     time.Time
		server    int
		version   string
		recommend bool
		err       error
	}
	var mu sync.Mutex
	var calls []call
	var published time.Time // set once the publish returned, under mu
	afterPublish := 0
	enough := make(chan struct{}) // closed when 200 decisions started after it
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, srv := range []*testServer{a, c, a, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				cl := call{start: time.Now(), server: i % 2}
				d, err := srv.client.Decide(ctx, hcp, client.DecideOptions{Limit: 50})
				cl.err = err
				if err == nil {
					cl.version = d.DefinitionsVersion
					for _, r := range d.Recommendations {
						cl.recommend = cl.recommend || r.ActionID == withdrawn
					}
				}
				mu.Lock()
				calls = append(calls, cl)
				if !published.IsZero() && cl.start.After(published) {
					if afterPublish++; afterPublish == 200 {
						close(enough)
					}
				}
				mu.Unlock()
			}
		}()
	}

	cfg := a.cfg
	cfg.DefinitionsDir = writeDefinitions(t, func(actions []map[string]any) {
		for _, act := range actions {
			if act["id"] == withdrawn {
				act["approval"].(map[string]any)["status"] = "withdrawn"
			}
		}
	}, nil)
	if err := Publish(ctx, cfg, io.Discard); err != nil {
		t.Fatalf("publish: %v", err)
	}
	mu.Lock()
	published = time.Now()
	mu.Unlock()
	newSet, err := definitions.Load(cfg.DefinitionsDir)
	if err != nil {
		t.Fatal(err)
	}

	// An invalid set is refused whole, and the new one keeps serving.
	cfg.DefinitionsDir = writeDefinitions(t, nil, []byte(`{"version": "broken", "actions": [{"id": "x", "channel": "fax"}]}`))
	err = Publish(ctx, cfg, io.Discard)
	if !definitions.IsInvalid(err) || !strings.Contains(err.Error(), "catalog.json") {
		t.Errorf("publishing an invalid set: %v, want a validation error naming catalog.json", err)
	}
	// Let the load run on past both publishes, then stop it.
	select {
	case <-enough:
	case <-time.After(10 * time.Second):
		t.Error("fewer than 200 decisions started after the publish within 10s")
	}
	close(stop)
	wg.Wait()

	var after [2]int
	for _, cl := range calls {
		if cl.err != nil {
			t.Errorf("a decision failed during the publishes: %v", cl.err)
			continue
		}
		if !cl.start.After(published) {
			continue
		}
		after[cl.server]++
		if cl.recommend || cl.version != newSet.Version {
			t.Errorf("server %d: a decision started %v after the publish returned used %s and recommended the withdrawn item: %v",
				cl.server, cl.start.Sub(published), cl.version, cl.recommend)
		}
	}
	if after[0] == 0 || after[1] == 0 {
		t.Errorf("decisions after the publish: %v per server, want some on both", after)
	}
	if before == newSet.Version {
		t.Errorf("the new set has the old version %s", before)
	}
}

// The production server refuses to start with neither a published set nor
// definitions files, saying what to do.
func TestNoDefinitions(t *testing.T) {
	b := singleRedis(t)
	cfg, err := parseConfig("serve", []string{"-listen", "127.0.0.1:0", "-redis-addr", b.Addrs[0],
		"-redis-prefix", "no-defs-" + strings.ReplaceAll(t.Name(), "/", "-")}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	m := NewMain(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	err = m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "arbiter definitions publish") {
		t.Errorf("Run() = %v, want a refusal naming arbiter definitions publish", err)
	}
}

// arbiter validate names the file and the problem, and the version of a
// valid directory.
func TestValidateCommand(t *testing.T) {
	var out strings.Builder
	if err := Validate(writeDefinitions(t, nil, nil), &out); err != nil {
		t.Fatalf("valid directory: %v", err)
	}
	if !strings.Contains(out.String(), "valid, version sha256:") {
		t.Errorf("output %q, want the version", out.String())
	}
	bad := writeDefinitions(t, nil, []byte(`{"version": "v", "actions": [{"id": "a", "channel": "fax"}]}`))
	if err := os.Remove(filepath.Join(bad, definitions.ModelFile)); err != nil {
		t.Fatal(err)
	}
	err := Validate(bad, io.Discard)
	var e *definitions.Error
	if !errors.As(err, &e) {
		t.Fatalf("invalid directory: %v, want a definitions error", err)
	}
	for _, want := range []string{"model.json: missing", "catalog.json: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q, want it to mention %q", err, want)
		}
	}
}

// DefinitionsService publishes through the API, only when -admin-rpc asks
// for it; an invalid set is InvalidArgument naming the file.
func TestDefinitionsServiceRPC(t *testing.T) {
	off := start(t, embedded, 5)
	conn, err := grpc.NewClient(off.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()
	_, err = nbapb.NewDefinitionsServiceClient(conn).GetActiveDefinitions(ctx, &nbapb.GetActiveDefinitionsRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("without -admin-rpc: %v, want Unimplemented", err)
	}

	// The demo set whole: with the demo's contact policy.
	ts := start(t, embedded, 5, "-admin-rpc", "-definitions-poll", "50ms", "-contact-policy", "../../contact/demo_policy.json", "-rules", "../../rules/demo_rules.json")
	conn, err = grpc.NewClient(ts.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	defs := nbapb.NewDefinitionsServiceClient(conn)
	active, err := defs.GetActiveDefinitions(ctx, &nbapb.GetActiveDefinitionsRequest{})
	if err != nil || active.GetVersion() != definitions.Demo().Version {
		t.Fatalf("GetActiveDefinitions: %v, %v; want the demo set", active.GetVersion(), err)
	}
	files := active.GetFiles()
	files[definitions.CatalogFile] = []byte(`{"version": "v", "actions": [{"id": "a", "channel": "fax"}]}`)
	_, err = defs.PublishDefinitions(ctx, &nbapb.PublishDefinitionsRequest{Files: files})
	if v := client.FieldViolations(err); status.Code(err) != codes.InvalidArgument || !strings.Contains(v["files"], "catalog.json") {
		t.Errorf("publishing an invalid set: %v, violations %v; want InvalidArgument naming catalog.json", err, v)
	}
	// One action's value changed: a new set.
	edited := strings.Replace(string(catalog.DemoJSON()), `"value": 1.0`, `"value": 1.5`, 1)
	if edited == string(catalog.DemoJSON()) {
		t.Fatal("the demo catalog has no value 1.0 to edit")
	}
	files[definitions.CatalogFile] = []byte(edited)
	res, err := defs.PublishDefinitions(ctx, &nbapb.PublishDefinitionsRequest{Files: files})
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if res.GetVersion() == active.GetVersion() || len(res.GetConfirmedReplicas()) != 1 || len(res.GetUnconfirmedReplicas()) != 0 {
		t.Errorf("publish: %+v; want a new version confirmed by the one replica", res)
	}
	d, err := ts.client.Decide(ctx, demo.HCPID(1), client.DecideOptions{})
	if err != nil {
		t.Fatalf("decision after the publish: %v", err)
	}
	if d.DefinitionsVersion != res.GetVersion() {
		t.Errorf("decision after the publish used %q, want %s", d.DefinitionsVersion, res.GetVersion())
	}
}
