package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/weaviate/weaviate-go-client/v4/weaviate"
	"github.com/weaviate/weaviate-go-client/v4/weaviate/graphql"
	"github.com/weaviate/weaviate/entities/models"
	"github.com/xling-ir/xling/internal/localweaviate"
	"github.com/xling-ir/xling/internal/weaviatetest"
	"github.com/xling-ir/xling/vectorizer/vectorizertest"
)

// prometheusTool finds Debian's prometheus or promtool (make deps installs
// them); without it the test skips, except on CI.
func prometheusTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return p
}

// writeRules writes the chart's PrometheusRule (rendered with the
// operator's API) as a Prometheus rule file.
func writeRules(t *testing.T, m *manifests, path string) {
	t.Helper()
	type rule struct {
		Alert       string            `json:"alert"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	type group struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	var file struct {
		Groups []group `json:"groups"`
	}
	for _, r := range m.rules {
		for _, g := range r.Spec.Groups {
			out := group{Name: g.Name}
			for _, x := range g.Rules {
				rr := rule{Alert: x.Alert, Expr: x.Expr.String(), Labels: x.Labels, Annotations: x.Annotations}
				if x.For != nil {
					rr.For = string(*x.For)
				}
				out.Rules = append(out.Rules, rr)
			}
			file.Groups = append(file.Groups, out)
		}
	}
	if len(file.Groups) == 0 {
		t.Fatal("the chart rendered no alert rules")
	}
	b, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAlertRules checks the chart's alerts with promtool: the rule file is
// valid, and the unit tests in testdata/sidecar_alerts_test.yml see each
// alert firing, and not firing, on synthetic series.
func TestAlertRules(t *testing.T) {
	promtool := prometheusTool(t, "promtool")
	dir := t.TempDir()
	writeRules(t, render(t, operatorAPI), filepath.Join(dir, "rules.yml"))
	tests, err := os.ReadFile("testdata/sidecar_alerts_test.yml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// TestPrometheusScrapesTheSidecar runs Debian's Prometheus against a live
// sidecar and the real Weaviate that vectorises through it (with
// PROMETHEUS_MONITORING_ENABLED), under nearText searches and direct
// traffic, with the chart's alert rules loaded, and asserts that every
// dashboard panel (the Weaviate row included) and every alert expression
// returns data, and that no alert fires.
func TestPrometheusScrapesTheSidecar(t *testing.T) {
	prometheus := prometheusTool(t, "prometheus")
	m := render(t, operatorAPI)
	dir := t.TempDir()
	writeRules(t, m, filepath.Join(dir, "rules.yml"))

	addr := startServe(t, libtorchBinary(t), "--model", vectorizertest.Tiny(t))
	weaviateMetrics := freeAddr(t)
	_, port, _ := strings.Cut(weaviateMetrics, ":")
	wv := weaviatetest.Start(t, localweaviate.Options{Modules: []string{"text2vec-transformers"}, Env: map[string]string{
		"TRANSFORMERS_INFERENCE_API": "http://" + addr, "PROMETHEUS_MONITORING_ENABLED": "true", "PROMETHEUS_MONITORING_PORT": port}})
	client, err := weaviate.NewClient(weaviate.Config{Host: wv.Host, Scheme: "http"})
	if err != nil {
		t.Fatal(err)
	}
	weaviatetest.ImportVectorized(t, client, "Passage", []*models.Property{{Name: "text", DataType: []string{"text"}}},
		[]map[string]any{{"text": "Berlin is the capital of Germany."}, {"text": "El Nilo es el río más largo de África."}, {"text": "北京是中国的首都。"}})

	// The labels Kubernetes service discovery would give the chart's
	// Deployment in namespace search, and Weaviate in namespace weaviate, as
	// the rules and the dashboard select.
	promAddr := freeAddr(t)
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [rules.yml]
scrape_configs:
  - job_name: xl-xling
    static_configs:
      - targets: [%q]
        labels: {namespace: search, pod: xl-xling-7c9d-abcde}
  - job_name: weaviate
    static_configs:
      - targets: [%q]
        labels: {namespace: weaviate, pod: weaviate-0}
`, addr, weaviateMetrics)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := exec.Command(prometheus, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+promAddr)
	var promLog bytes.Buffer
	prom.Stdout, prom.Stderr = &promLog, &promLog
	if err := prom.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = prom.Process.Kill()
		_ = prom.Wait()
		if t.Failed() {
			t.Logf("prometheus:\n%.4000s", promLog.String())
		}
	}()

	// Traffic: queries and passages, one by one and concurrently, for 15 s
	// (the dashboard's rates need two scrapes within their window).
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := []string{"query", "passage"}[w%2]
			for i := 0; ctx.Err() == nil; i++ {
				body := fmt.Sprintf(`{"text":"text %d of worker %d","config":{"task_type":%q}}`, i, w, kind)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/vectors", strings.NewReader(body))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	// nearText searches: Weaviate asks the sidecar for each query's vector.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			near := client.GraphQL().NearTextArgBuilder().WithConcepts([]string{fmt.Sprintf("capital city %d", i)})
			_, _ = client.GraphQL().Get().WithClassName("Passage").WithNearText(near).WithLimit(2).
				WithFields(graphql.Field{Name: "text"}).Do(ctx)
		}
	}()
	wg.Wait()

	query := func(expr string) (int, error) {
		resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(expr))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct{ Result []json.RawMessage }
		}
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return 0, err
		}
		if r.Status != "success" {
			return 0, fmt.Errorf("%s", r.Error)
		}
		return len(r.Data.Result), nil
	}
	// Grafana's variables, as the dashboard would send them.
	grafana := strings.NewReplacer(`$namespace`, `search`, `$weaviate_namespace`, `weaviate`, `$pod`, `.+`, `$__rate_interval`, `30s`)
	// An alert's expression without its threshold is what must return data:
	// the comparison filters it out while all is well. absent(x) returns
	// data only when x is missing, so x itself must.
	threshold := regexp.MustCompile(`(?s)^\s*(.*?)\s*(?:>|==)\s*[0-9.]+\s*$`)
	absent := regexp.MustCompile(`(?s)^absent\((.*)\)$`)
	var exprs []string
	for _, e := range m.prometheusQL {
		e = grafana.Replace(e)
		if s := threshold.FindStringSubmatch(e); s != nil {
			e = s[1]
		}
		if s := absent.FindStringSubmatch(e); s != nil {
			e = s[1]
		}
		exprs = append(exprs, e)
	}
	for _, e := range exprs {
		n, err := query(e)
		switch {
		case err != nil:
			t.Errorf("query %q: %v", e, err)
		case n == 0:
			t.Errorf("no data for %q", e)
		default:
			t.Logf("%d series: %.120s", n, strings.Join(strings.Fields(e), " "))
		}
	}

	resp, err := http.Get("http://" + promAddr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, Health, State, LastError string }
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&rules); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			seen++
			if r.Health != "ok" || r.State != "inactive" {
				t.Errorf("alert %s: health %q (%s), state %q; want ok and inactive under light load", r.Name, r.Health, r.LastError, r.State)
			}
		}
	}
	if seen != 4 {
		t.Errorf("Prometheus loaded %d alert rules, want the chart's 4", seen)
	}
}

// libtorchBinary builds the libtorch xling once and returns its path.
func libtorchBinary(t *testing.T) string {
	t.Helper()
	if _, stderr, err := xling(t, "", "version"); err != nil {
		t.Fatalf("xling version: %v\n%s", err, stderr)
	}
	return libtorchBuild.path
}
