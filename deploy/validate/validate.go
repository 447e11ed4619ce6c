// Package validate checks Arbiter's deployment files offline: the
// Prometheus alerting rules (deploy/alerts.yaml) with Prometheus's own rule
// parser, and the Kubernetes manifests (deploy/k8s), their kustomization
// and the Compose file (deploy/compose.yaml) against JSON schemas vendored
// in schemas/ (see schemas/SOURCES.md). Nothing is downloaded when it runs.
//
// It is a module of its own so that the server's module does not carry
// Prometheus's dependencies: `cd deploy/validate && go test ./...`.
package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// Severities are the values an alert's severity label may take.
var Severities = []string{"critical", "warning", "info"}

// PrometheusSeries are the series Prometheus records itself (per scrape
// target), which no exporter's source names.
var PrometheusSeries = []string{"up"}

// Rules parses a Prometheus rule file's content with rulefmt, the parser
// Prometheus loads rule files with (which parses every expression and
// template), and checks what rulefmt does not: every alert has a severity
// of Severities and summary, description and runbook annotations, and
// every metric an expression reads is known to known (the server's
// source). It returns the metric names the expressions read, sorted.
func Rules(content []byte, known func(metric string) bool) ([]string, []error) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.Parse(content, false, model.LegacyValidation, p, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(errs) > 0 {
		return nil, errs
	}
	if len(groups.Groups) == 0 {
		return nil, []error{errors.New("no rule groups")}
	}
	var metrics []string
	for _, g := range groups.Groups {
		if len(g.Rules) == 0 {
			errs = append(errs, fmt.Errorf("group %s: no rules", g.Name))
		}
		for _, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			where := fmt.Sprintf("group %s, rule %s", g.Name, name)
			if r.Alert != "" {
				if !slices.Contains(Severities, r.Labels["severity"]) {
					errs = append(errs, fmt.Errorf("%s: severity label %q, want one of %v", where, r.Labels["severity"], Severities))
				}
				for _, a := range []string{"summary", "description", "runbook"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						errs = append(errs, fmt.Errorf("%s: no %s annotation", where, a))
					}
				}
			}
			names, err := MetricNames(p, r.Expr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
				continue
			}
			for _, m := range names {
				if !known(m) {
					errs = append(errs, fmt.Errorf("%s: metric %s is not exported by the server (not in its source): a typo?", where, m))
				}
				if !slices.Contains(metrics, m) {
					metrics = append(metrics, m)
				}
			}
		}
	}
	slices.Sort(metrics)
	return metrics, errs
}

// MetricNames returns the metric names a PromQL expression selects.
func MetricNames(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel {
					name = m.Value
				}
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		} else if !slices.Contains(names, name) {
			names = append(names, name)
		}
		return nil
	})
	return names, bad
}

// SourceMetrics returns a test for metric names: true for a name of
// PrometheusSeries, and for one that appears as a whole word in a .go file
// under root (skipping deploy/, where these checks live, and hidden
// directories), with a histogram's or summary's series suffix (_bucket,
// _count, _sum) taken off first when the full name does not appear. The
// server's own metrics are named in its source where they are registered;
// the gRPC provider's (grpc_server_handled_total) in the test that checks
// the server exports them.
func SourceMetrics(root string) (func(string) bool, error) {
	var src bytes.Buffer
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			if rel == "deploy" || (rel != "." && strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
			src.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if src.Len() == 0 {
		return nil, fmt.Errorf("no Go source under %s", root)
	}
	words := map[string]bool{}
	for _, w := range regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`).FindAll(src.Bytes(), -1) {
		words[string(w)] = true
	}
	return func(name string) bool {
		if slices.Contains(PrometheusSeries, name) || words[name] {
			return true
		}
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && words[base] {
				return true
			}
		}
		return false
	}, nil
}

// Documents splits a YAML stream into its documents, each converted to
// the JSON data model the schemas validate (numbers as json.Number),
// skipping empty ones (a stream that starts with ---).
func Documents(data []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []any
	for i := 1; ; i++ {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if v == nil {
			continue
		}
		j, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("document %d: not representable as JSON: %w", i, err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		docs = append(docs, inst)
	}
}

// Schemas compiles the vendored schemas from dir: the Kubernetes ones by
// apiVersion and kind, the Compose specification's and the
// kustomization's. Nothing is fetched: a $ref to anything not vendored is
// an error.
type Schemas struct {
	kube                   map[string]*jsonschema.Schema // "apiVersion kind"
	Compose, Kustomization *jsonschema.Schema
}

// KubeVersion is the Kubernetes version of the vendored schemas.
const KubeVersion = "v1.31.0"

// kubeSchemas maps the kinds the manifests use to their schema files
// (yannh/kubernetes-json-schema's names, standalone-strict: every $ref
// inlined and additionalProperties false, so a misspelt field fails).
var kubeSchemas = map[string]string{
	"v1 ConfigMap":                           "configmap-v1.json",
	"v1 Secret":                              "secret-v1.json",
	"v1 Service":                             "service-v1.json",
	"apps/v1 Deployment":                     "deployment-apps-v1.json",
	"policy/v1 PodDisruptionBudget":          "poddisruptionbudget-policy-v1.json",
	"autoscaling/v2 HorizontalPodAutoscaler": "horizontalpodautoscaler-autoscaling-v2.json",
}

// LoadSchemas compiles the schemas vendored in dir.
func LoadSchemas(dir string) (*Schemas, error) {
	s := &Schemas{kube: map[string]*jsonschema.Schema{}}
	compile := func(file string) (*jsonschema.Schema, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		doc, err := jsonschema.UnmarshalJSON(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		c := jsonschema.NewCompiler()
		// Only what is added here: no file or network loading.
		c.UseLoader(noLoader{})
		url := "file:///" + filepath.ToSlash(file)
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return sch, nil
	}
	var err error
	for key, file := range kubeSchemas {
		if s.kube[key], err = compile(filepath.Join(dir, "kubernetes", KubeVersion+"-standalone-strict", file)); err != nil {
			return nil, err
		}
	}
	if s.Compose, err = compile(filepath.Join(dir, "compose-spec.json")); err != nil {
		return nil, err
	}
	if s.Kustomization, err = compile(filepath.Join(dir, "kustomization.json")); err != nil {
		return nil, err
	}
	return s, nil
}

type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("%s is not vendored (nothing is fetched)", url)
}

// Manifest validates one Kubernetes object against the schema of its
// apiVersion and kind; a kind without a vendored schema is an error, not
// a pass. It returns the object's "kind/name".
func (s *Schemas) Manifest(doc any) (string, error) {
	obj, ok := doc.(map[string]any)
	if !ok {
		return "", errors.New("not a Kubernetes object (a YAML mapping)")
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	name := kind + "/" + str(obj, "metadata", "name")
	if ns := str(obj, "metadata", "namespace"); ns != "" {
		return name, fmt.Errorf("%s: metadata.namespace %q: the manifests are namespace-less (kustomize or kubectl -n sets it)", name, ns)
	}
	sch := s.kube[apiVersion+" "+kind]
	if sch == nil {
		return name, fmt.Errorf("%s: no vendored schema for apiVersion %q kind %q (vendor it in schemas/kubernetes)", name, apiVersion, kind)
	}
	if err := sch.Validate(doc); err != nil {
		return name, fmt.Errorf("%s: %w", name, err)
	}
	return name, nil
}

// str returns the string at path in nested mappings, or "".
func str(v any, path ...string) string {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}
