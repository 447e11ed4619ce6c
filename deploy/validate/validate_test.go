package validate

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The repository's root and the deployment files, from this directory.
const (
	root       = "../.."
	deployDir  = ".."
	k8sDir     = "../k8s"
	schemasDir = "schemas"
)

// secretsFile holds placeholder Secrets: validated, but deliberately not
// in the kustomization (applying it would overwrite real secrets).
const secretsFile = "secrets.yaml"

var (
	schemasOnce sync.Once
	schemas     *Schemas
	schemasErr  error
)

func loadSchemas(t *testing.T) *Schemas {
	t.Helper()
	schemasOnce.Do(func() { schemas, schemasErr = LoadSchemas(schemasDir) })
	if schemasErr != nil {
		t.Fatal(schemasErr)
	}
	return schemas
}

func sourceMetrics(t *testing.T) func(string) bool {
	t.Helper()
	known, err := SourceMetrics(root)
	if err != nil {
		t.Fatal(err)
	}
	return known
}

func TestAlertRules(t *testing.T) {
	content, err := os.ReadFile(filepath.Join(deployDir, "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	metrics, errs := Rules(content, sourceMetrics(t))
	for _, err := range errs {
		t.Error(err)
	}
	t.Logf("metrics used: %s", strings.Join(metrics, ", "))
	// What the alerts are for: each must be watched.
	for _, want := range []string{
		"grpc_server_handled_total",     // UNAVAILABLE: Redis unreachable
		"arbiter_decisions_total",       // decisions stopped
		"arbiter_shed_total",            // admission control
		"arbiter_rate_limited_total",    // callers' rate limits
		"arbiter_receipts_total",        // receipts dropped, failed
		"arbiter_suppressions_total",    // consent_unknown rising
		"arbiter_decide_seconds_bucket", // p99 over budget
	} {
		if !slices.Contains(metrics, want) {
			t.Errorf("no alert reads %s", want)
		}
	}
}

// TestBrokenRulesFail: the checks catch what they are for.
func TestBrokenRulesFail(t *testing.T) {
	known := sourceMetrics(t)
	const good = `groups:
  - name: g
    rules:
      - alert: A
        expr: sum(rate(arbiter_shed_total[5m])) > 1
        labels: {severity: warning}
        annotations: {summary: s, description: d, runbook: r}
`
	if _, errs := Rules([]byte(good), known); len(errs) > 0 {
		t.Fatalf("the good rule fails: %v", errs)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"PromQL syntax", "sum(rate(arbiter_shed_total[5m])) > 1", "sum(rate(arbiter_shed_total[5m]) > 1", "could not parse expression"},
		{"misspelt metric", "arbiter_shed_total", "arbiter_sheds_total", "arbiter_sheds_total is not exported"},
		{"misspelt field", "expr:", "exprr:", "exprr"},
		{"bad duration", "labels: {severity: warning}", "for: 5 minutes\n        labels: {severity: warning}", "5 minutes"},
		{"no severity", "{severity: warning}", "{team: x}", "severity label"},
		{"unknown severity", "{severity: warning}", "{severity: urgent}", "severity label"},
		{"no runbook", ", runbook: r}", "}", "no runbook annotation"},
		{"broken template", "summary: s,", "summary: '{{ $value ',", "summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(good, tc.from, tc.to, 1)
			if bad == good {
				t.Fatalf("the case changes nothing")
			}
			_, errs := Rules([]byte(bad), known)
			if len(errs) == 0 {
				t.Fatalf("no error for\n%s", bad)
			}
			if !strings.Contains(joinErrors(errs), tc.want) {
				t.Errorf("errors %q do not mention %q", joinErrors(errs), tc.want)
			}
		})
	}
}

func joinErrors(errs []error) string {
	var s []string
	for _, err := range errs {
		s = append(s, err.Error())
	}
	return strings.Join(s, "; ")
}

var (
	manifestsOnce  sync.Once
	manifestObjs   map[string]map[string]any
	manifestFiles  []string
	manifestErrors []error
)

// manifests returns every object of every YAML file in deploy/k8s (but
// the kustomization) by "kind/name", and the files' names. Each object is
// validated against its schema: TestKubernetesManifests reports those
// errors; the other tests check what they can of the objects regardless.
func manifests(t *testing.T) (map[string]map[string]any, []string) {
	t.Helper()
	s := loadSchemas(t)
	manifestsOnce.Do(func() {
		manifestObjs = map[string]map[string]any{}
		files, err := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
		if err != nil {
			manifestErrors = append(manifestErrors, err)
			return
		}
		for _, file := range files {
			base := filepath.Base(file)
			if base == "kustomization.yaml" {
				continue
			}
			manifestFiles = append(manifestFiles, base)
			data, err := os.ReadFile(file)
			if err != nil {
				manifestErrors = append(manifestErrors, err)
				continue
			}
			docs, err := Documents(data)
			if err != nil {
				manifestErrors = append(manifestErrors, fmt.Errorf("%s: %w", base, err))
				continue
			}
			if len(docs) == 0 {
				manifestErrors = append(manifestErrors, fmt.Errorf("%s: no object", base))
			}
			for _, doc := range docs {
				name, err := s.Manifest(doc)
				if err != nil {
					manifestErrors = append(manifestErrors, fmt.Errorf("%s: %w", base, err))
				}
				obj, ok := doc.(map[string]any)
				if !ok {
					continue
				}
				if manifestObjs[name] != nil {
					manifestErrors = append(manifestErrors, fmt.Errorf("%s: %s defined twice", base, name))
				}
				manifestObjs[name] = obj
			}
		}
	})
	return manifestObjs, manifestFiles
}

func TestKubernetesManifests(t *testing.T) {
	objs, _ := manifests(t)
	for _, err := range manifestErrors {
		t.Error(err)
	}
	for _, want := range []string{"Deployment/arbiter", "Service/arbiter", "PodDisruptionBudget/arbiter",
		"HorizontalPodAutoscaler/arbiter", "ConfigMap/arbiter-config"} {
		if objs[want] == nil {
			t.Errorf("no %s", want)
		}
	}
	t.Logf("%d objects checked against the Kubernetes %s schemas", len(objs), KubeVersion)
}

func TestKustomization(t *testing.T) {
	s := loadSchemas(t)
	data, err := os.ReadFile(filepath.Join(k8sDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Documents(data)
	if err != nil || len(docs) != 1 {
		t.Fatalf("kustomization.yaml: %d documents, %v", len(docs), err)
	}
	if err := s.Kustomization.Validate(docs[0]); err != nil {
		t.Fatal(err)
	}
	var resources []string
	for _, r := range list(docs[0], "resources") {
		resources = append(resources, r.(string))
	}
	_, files := manifests(t)
	want := slices.DeleteFunc(slices.Clone(files), func(f string) bool { return f == secretsFile })
	slices.Sort(resources)
	if !slices.Equal(resources, want) {
		t.Errorf("kustomization resources %v, want every manifest but %s: %v", resources, secretsFile, want)
	}
}

func TestCompose(t *testing.T) {
	s := loadSchemas(t)
	data, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Documents(data)
	if err != nil || len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents, %v", len(docs), err)
	}
	if err := s.Compose.Validate(docs[0]); err != nil {
		t.Fatal(err)
	}
	// The server listens off loopback in its container: without TLS and
	// authentication it refuses to start unless told so, explicitly.
	cmd := strings.Join(strs(list(docs[0], "services", "arbiter", "command")), " ")
	for _, flag := range []string{"-insecure-plaintext", "-insecure-no-auth"} {
		if !strings.Contains(cmd, flag) {
			t.Errorf("the arbiter service's command %q lacks %s", cmd, flag)
		}
	}
	redis := strings.Join(strs(list(docs[0], "services", "redis", "command")), " ")
	if !strings.Contains(redis, "--appendonly yes") || !strings.Contains(redis, "--appendfsync everysec") {
		t.Errorf("redis command %q: want --appendonly yes --appendfsync everysec", redis)
	}
	// Definitions mounted from the checkout exist.
	for _, v := range strs(list(docs[0], "services", "arbiter", "volumes")) {
		if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "../") {
			if _, err := os.Stat(filepath.Join(deployDir, src)); err != nil {
				t.Errorf("volume %s: %v", v, err)
			}
		}
	}
}

// TestBrokenDocumentsFail: a schema catches a misspelt field, a value of
// the wrong type, a kind it does not know.
func TestBrokenDocumentsFail(t *testing.T) {
	s := loadSchemas(t)
	const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  replicas: 3
  selector: {matchLabels: {app: d}}
  template:
    metadata: {labels: {app: d}}
    spec:
      containers:
        - name: c
          image: i
          ports: [{containerPort: 50051}]
`
	docs, err := Documents([]byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Manifest(docs[0]); err != nil {
		t.Fatalf("the good deployment fails: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"misspelt field", "replicas: 3", "replica: 3", "replica"},
		{"wrong type", "replicas: 3", "replicas: three", "replicas"},
		{"misspelt nested field", "containerPort: 50051", "containerport: 50051", "containerport"},
		{"unknown kind", "kind: Deployment", "kind: Deploymnet", "no vendored schema"},
		{"unknown apiVersion", "apps/v1", "apps/v1beta1", "no vendored schema"},
		{"namespaced", "metadata: {name: d}", "metadata: {name: d, namespace: prod}", "namespace-less"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Documents([]byte(strings.Replace(deployment, tc.from, tc.to, 1)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Manifest(docs[0])
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, doc     string
		kustomization bool
	}{
		{"compose: misspelt service field", "services:\n  a:\n    imagee: redis:7\n", false},
		{"compose: wrong type", "services:\n  a:\n    image: redis:7\n    ports: 6379\n", false},
		{"kustomization: misspelt field", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresource: [a.yaml]\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := Documents([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			sch := s.Compose
			if tc.kustomization {
				sch = s.Kustomization
			}
			if err := sch.Validate(docs[0]); err == nil {
				t.Errorf("no error for\n%s", tc.doc)
			}
		})
	}
	if _, err := Documents([]byte("a: [1, 2\n")); err == nil {
		t.Error("no error for malformed YAML")
	}
}

// TestEnvironment: every ARBITER_* variable the deployment sets is one the
// server reads (a misspelt one would be silently ignored).
func TestEnvironment(t *testing.T) {
	known := serverVariables(t)
	check := func(where, name string) {
		if strings.HasPrefix(name, "ARBITER_") && !known[name] {
			t.Errorf("%s sets %s, which the server does not read", where, name)
		}
	}
	objs, _ := manifests(t)
	for name := range mapping(objs["ConfigMap/arbiter-config"], "data") {
		check("ConfigMap arbiter-config", name)
	}
	for _, e := range list(container(t, objs), "env") {
		check("Deployment arbiter", str(e, "name"))
	}
	data, err := os.ReadFile(filepath.Join(deployDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := Documents(data)
	if err != nil {
		t.Fatal(err)
	}
	for svc, v := range mapping(docs[0], "services") {
		for name := range mapping(v, "environment") {
			check("compose service "+svc, name)
		}
	}
}

// serverVariables returns the ARBITER_* variables cmd/arbiter reads: its
// env("NAME", ...) calls (ARBITER_ + NAME) and literal names.
func serverVariables(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "cmd", "arbiter", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/arbiter sources: %v", err)
	}
	known := map[string]bool{}
	envCall := regexp.MustCompile(`\benv\("([A-Z0-9_]+)"`)
	literal := regexp.MustCompile(`"(ARBITER_[A-Z0-9_]+)"`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range envCall.FindAllSubmatch(b, -1) {
			known["ARBITER_"+string(m[1])] = true
		}
		for _, m := range literal.FindAllSubmatch(b, -1) {
			known[string(m[1])] = true
		}
	}
	if !known["ARBITER_REDIS_ADDR"] || !known["ARBITER_LISTEN"] {
		t.Fatalf("found no server variables in cmd/arbiter (%d)", len(known))
	}
	return known
}

// TestDeploymentWiring checks what the schemas cannot: that the objects
// refer to each other, the probes ask for the right services, the files
// the configuration names are mounted, and the shutdown fits the grace.
func TestDeploymentWiring(t *testing.T) {
	objs, _ := manifests(t)
	dep := objs["Deployment/arbiter"]
	c := container(t, objs)
	pod := mapping(dep, "spec", "template", "spec")
	podLabels := mapping(dep, "spec", "template", "metadata", "labels")
	matches := func(what string, sel map[string]any) {
		if len(sel) == 0 {
			t.Errorf("%s: empty selector", what)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s: selects %s=%v, the pods have %v", what, k, v, podLabels[k])
			}
		}
	}
	matches("Deployment selector", mapping(dep, "spec", "selector", "matchLabels"))
	matches("Service selector", mapping(objs["Service/arbiter"], "spec", "selector"))
	matches("PodDisruptionBudget selector", mapping(objs["PodDisruptionBudget/arbiter"], "spec", "selector", "matchLabels"))
	hpa := objs["HorizontalPodAutoscaler/arbiter"]
	if str(hpa, "spec", "scaleTargetRef", "kind") != "Deployment" || str(hpa, "spec", "scaleTargetRef", "name") != "arbiter" {
		t.Errorf("the HPA scales %v, not Deployment/arbiter", mapping(hpa, "spec", "scaleTargetRef"))
	}

	// Ports: the Service's target ports are the container's, by name.
	portNames := map[string]string{}
	for _, p := range list(c, "ports") {
		portNames[str(p, "name")] = number(p, "containerPort")
	}
	for want, port := range map[string]string{"grpc": "50051", "http": "8080", "metrics": "9464"} {
		if portNames[want] != port {
			t.Errorf("container port %s is %q, want %s", want, portNames[want], port)
		}
	}
	for _, p := range list(objs["Service/arbiter"], "spec", "ports") {
		if _, ok := portNames[str(p, "targetPort")]; !ok {
			t.Errorf("Service port %s targets %q, not a container port name", str(p, "name"), str(p, "targetPort"))
		}
	}

	// Non-root, read-only.
	if mapping(pod, "securityContext")["runAsNonRoot"] != true || mapping(c, "securityContext")["runAsNonRoot"] != true {
		t.Error("runAsNonRoot is not true")
	}
	if sc := mapping(c, "securityContext"); sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false {
		t.Errorf("container securityContext %v: want readOnlyRootFilesystem true, allowPrivilegeEscalation false", sc)
	}

	// Probes: liveness and startup ask for the server's own status ("");
	// readiness for the decision service, which a Redis blip turns
	// NOT_SERVING (readiness, not a restart).
	readiness := readinessService(t)
	for probe, want := range map[string]string{"startupProbe": "", "livenessProbe": "", "readinessProbe": readiness} {
		if got, ok := probeService(mapping(c, probe)); !ok {
			t.Errorf("%s: neither a gRPC probe nor arbiterctl health", probe)
		} else if got != want {
			t.Errorf("%s asks for service %q, want %q", probe, got, want)
		}
	}

	// Shutdown: the drain, then the grace (in which the queued receipts are
	// written) must end before the kubelet's SIGKILL, with 5 s to spare.
	cm := mapping(objs["ConfigMap/arbiter-config"], "data")
	drain, err1 := time.ParseDuration(cm["ARBITER_SHUTDOWN_DRAIN"].(string))
	grace, err2 := time.ParseDuration(cm["ARBITER_SHUTDOWN_GRACE"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("shutdown durations: %v, %v", err1, err2)
	}
	var tgps time.Duration
	if n, err := json.Number(number(pod, "terminationGracePeriodSeconds")).Int64(); err == nil {
		tgps = time.Duration(n) * time.Second
	}
	if need := drain + grace + 5*time.Second; tgps <= need {
		t.Errorf("terminationGracePeriodSeconds %v, want more than drain %v + grace %v + 5s to spare", tgps, drain, grace)
	}

	// Every file the configuration names is in a mounted Secret, under
	// that key; so is the probes' CA.
	mounts := map[string]map[string]bool{} // mount path -> keys
	volumes := map[string]map[string]any{}
	for _, v := range list(pod, "volumes") {
		volumes[str(v, "name")] = v.(map[string]any)
	}
	secretKeys := func(name string) map[string]bool {
		keys := map[string]bool{}
		sec := objs["Secret/"+name]
		if sec == nil {
			t.Errorf("no Secret %s (%s)", name, secretsFile)
			return keys
		}
		for k := range mapping(sec, "stringData") {
			keys[k] = true
		}
		for k := range mapping(sec, "data") {
			keys[k] = true
		}
		return keys
	}
	for _, m := range list(c, "volumeMounts") {
		v := volumes[str(m, "name")]
		if v == nil {
			t.Errorf("volumeMount %s: no such volume", str(m, "name"))
			continue
		}
		secret := str(v, "secret", "secretName")
		if secret == "" {
			continue
		}
		keys := secretKeys(secret)
		files := map[string]bool{}
		if items := list(v, "secret", "items"); len(items) > 0 {
			for _, it := range items {
				if !keys[str(it, "key")] {
					t.Errorf("volume %s: Secret %s has no key %s", str(m, "name"), secret, str(it, "key"))
				}
				files[str(it, "path")] = true
			}
		} else {
			files = keys
		}
		mounts[str(m, "mountPath")] = files
	}
	mounted := func(what, path string) {
		dir, file := filepath.Split(path)
		if !mounts[strings.TrimSuffix(dir, "/")][file] {
			t.Errorf("%s names %s, which no mounted Secret holds", what, path)
		}
	}
	for k, v := range cm {
		if s, _ := v.(string); strings.HasPrefix(s, "/etc/arbiter/") {
			mounted("ConfigMap "+k, s)
		}
	}
	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		args := strs(list(c, probe, "exec", "command"))
		if i := slices.Index(args, "-tls-ca"); i >= 0 && i+1 < len(args) {
			mounted(probe+" -tls-ca", args[i+1])
		}
	}
	for _, e := range list(c, "env") {
		if ref := mapping(e, "valueFrom", "secretKeyRef"); ref != nil && !secretKeys(str(ref, "name"))[str(ref, "key")] {
			t.Errorf("env %s: Secret %s has no key %s", str(e, "name"), str(ref, "name"), str(ref, "key"))
		}
	}
	for _, ef := range list(c, "envFrom") {
		if name := str(ef, "configMapRef", "name"); name != "" && objs["ConfigMap/"+name] == nil {
			t.Errorf("envFrom: no ConfigMap %s", name)
		}
	}
}

// TestSecretsArePlaceholders: secrets.yaml must never hold a real secret.
func TestSecretsArePlaceholders(t *testing.T) {
	objs, _ := manifests(t)
	n := 0
	for name, obj := range objs {
		if str(obj, "kind") != "Secret" {
			continue
		}
		if len(mapping(obj, "data")) > 0 {
			t.Errorf("%s: data (base64) would hide what it holds: use stringData placeholders", name)
		}
		for k, v := range mapping(obj, "stringData") {
			n++
			if s, _ := v.(string); k != "username" && !strings.Contains(s, "REPLACE-ME") {
				t.Errorf("%s: %s is not a REPLACE-ME placeholder", name, k)
			}
		}
	}
	if n == 0 {
		t.Error("no Secret placeholders")
	}
}

// readinessService is the decision service's full name, from the proto.
func readinessService(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "proto", "nba", "v1", "nba.proto"))
	if err != nil {
		t.Fatal(err)
	}
	pkg := regexp.MustCompile(`(?m)^package ([a-z0-9.]+);`).FindSubmatch(b)
	if pkg == nil || !regexp.MustCompile(`(?m)^service DecisionService\b`).Match(b) {
		t.Fatal("nba.proto: no package or no DecisionService")
	}
	return string(pkg[1]) + ".DecisionService"
}

// probeService returns the health service a probe asks for: a native gRPC
// probe's service, or arbiterctl health's -service.
func probeService(probe map[string]any) (string, bool) {
	if g := mapping(probe, "grpc"); g != nil {
		return str(g, "service"), true
	}
	args := strs(list(probe, "exec", "command"))
	if len(args) < 2 || !strings.HasSuffix(args[0], "arbiterctl") || args[1] != "health" {
		return "", false
	}
	if i := slices.Index(args, "-service"); i >= 0 && i+1 < len(args) {
		return args[i+1], true
	}
	return "", true
}

// container returns the Deployment's arbiter container.
func container(t *testing.T, objs map[string]map[string]any) map[string]any {
	t.Helper()
	for _, c := range list(objs["Deployment/arbiter"], "spec", "template", "spec", "containers") {
		if str(c, "name") == "arbiter" {
			return c.(map[string]any)
		}
	}
	t.Fatal("Deployment/arbiter has no container named arbiter")
	return nil
}

func get(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func mapping(v any, path ...string) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func strs(l []any) []string {
	var s []string
	for _, v := range l {
		if x, ok := v.(string); ok {
			s = append(s, x)
		}
	}
	return s
}

// number returns the number at path as its decimal text, or "".
func number(v any, path ...string) string {
	n, _ := get(v, path...).(json.Number)
	return string(n)
}

// TestDockerfile checks deploy/Dockerfile without a Docker daemon: the
// stages, the static build, a non-root final stage, the ports, an
// exec-form HEALTHCHECK running arbiterctl health, and that every file
// copied from the build context exists and is not in .dockerignore.
func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	type instr struct{ op, args string }
	var ins []instr
	var cur string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur == "" && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if c, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur += c + " "
			continue
		}
		cur += trimmed
		op, args, _ := strings.Cut(cur, " ")
		ins = append(ins, instr{strings.ToUpper(op), strings.TrimSpace(args)})
		cur = ""
	}
	var froms []string
	var final []instr // the last stage's instructions
	args := map[string]string{}
	var runs string
	for _, in := range ins {
		switch in.op {
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "FROM":
			froms = append(froms, in.args)
			final = nil
		case "RUN":
			runs += in.args + "\n"
		}
		final = append(final, in)
	}
	if len(froms) < 2 {
		t.Fatalf("stages %v: want a build stage and a final one", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:") {
		t.Errorf("build stage FROM %s: want golang", froms[0])
	}
	// The image's Go is the go.mod's major.minor.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	image := strings.Fields(strings.ReplaceAll(froms[0], "${GO_VERSION}", args["GO_VERSION"]))[0]
	if goVersion == nil || image != "golang:"+string(goVersion[1]) {
		t.Errorf("build stage image %s, want golang:%s (go.mod)", image, goVersion[1])
	}
	last := froms[len(froms)-1]
	if last != "gcr.io/distroless/static-debian12:nonroot" && last != "scratch" {
		t.Errorf("final stage FROM %s: want distroless static nonroot or scratch", last)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/arbiter ", "./cmd/arbiterctl"} {
		if !strings.Contains(strings.Join(strings.Fields(string(data)), " "), want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	if !strings.Contains(runs, "go build") {
		t.Error("no go build")
	}
	var user, healthcheck, entrypoint string
	var exposed []string
	for _, in := range final {
		switch in.op {
		case "USER":
			user = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		case "HEALTHCHECK":
			healthcheck = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		}
	}
	if u, _, _ := strings.Cut(user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("final stage USER %q: want a non-root user", user)
	}
	for _, p := range []string{"50051", "8080", "9464"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}
	_, cmd, _ := strings.Cut(healthcheck, "CMD ")
	var probe []string
	if err := json.Unmarshal([]byte(cmd), &probe); err != nil || len(probe) < 2 || probe[0] != "/usr/local/bin/arbiterctl" || probe[1] != "health" {
		t.Errorf("HEALTHCHECK %q: want the exec form of /usr/local/bin/arbiterctl health (distroless has no shell)", healthcheck)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Errorf("ENTRYPOINT %q: want the exec form", entrypoint)
	}

	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var ignored []string
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored = append(ignored, l)
		}
	}
	for _, in := range ins {
		if in.op != "COPY" || strings.Contains(in.args, "--from=") {
			continue
		}
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if strings.HasPrefix(src, "--") || src == "." {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
			for _, pat := range ignored {
				if src == pat || strings.HasPrefix(src, strings.TrimSuffix(pat, "/")+"/") {
					t.Errorf("COPY %s: excluded by .dockerignore (%s)", src, pat)
				}
			}
		}
	}
}

// TestSchemaChecksums: the vendored schemas are the files SOURCES.md lists.
func TestSchemaChecksums(t *testing.T) {
	sources, err := os.ReadFile(filepath.Join(schemasDir, "SOURCES.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([0-9a-f]{64})  (\S+)$`).FindAllSubmatch(sources, -1) {
		listed[string(m[2])] = string(m[1])
	}
	var files []string
	err = filepath.WalkDir(schemasDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".json") {
			rel, _ := filepath.Rel(schemasDir, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(listed) {
		t.Errorf("%d schema files, SOURCES.md lists %d", len(files), len(listed))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(schemasDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(b)); listed[f] != sum {
			t.Errorf("%s: SHA-256 %s, SOURCES.md says %q", f, sum, listed[f])
		}
	}
}
