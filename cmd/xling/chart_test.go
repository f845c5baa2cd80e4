package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/xling-ir/xling/internal/buildbin"
	"github.com/xling-ir/xling/internal/cli"
	"github.com/xling-ir/xling/sidecar"
	"github.com/xling-ir/xling/vectorizer"
)

const chartDir = "../../charts/xling"

// helm finds the helm that `make helm` builds; without one the chart tests
// skip, except on CI where that is a set-up failure.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := buildbin.Find("helm", "XLING_HELM_BIN", "helm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// manifests holds a rendered chart decoded into the Kubernetes API types.
type manifests struct {
	deployments  []appsv1.Deployment
	services     []corev1.Service
	jobs         []batchv1.Job
	pdbs         []policyv1.PodDisruptionBudget
	hpas         []autoscalingv2.HorizontalPodAutoscaler
	netpols      []networkingv1.NetworkPolicy
	configMaps   []corev1.ConfigMap
	monitors     []monitoringv1.ServiceMonitor
	rules        []monitoringv1.PrometheusRule
	accounts     []corev1.ServiceAccount
	claims       []corev1.PersistentVolumeClaim
	kinds        map[string]int
	prometheusQL []string // every PromQL expression: rules and dashboard panels
}

// decodeStrict decodes one YAML document into out, failing on any field
// the API type does not have.
func decodeStrict[T any](t *testing.T, doc []byte, list *[]T) {
	t.Helper()
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		t.Fatalf("decode %T strictly: %v\n%s", v, err, doc)
	}
	*list = append(*list, v)
}

// render lints the chart with the values args (-f, --set), renders it, with
// the Prometheus Operator's API when operator is set, and decodes the result.
func render(t *testing.T, operator bool, values ...string) *manifests {
	t.Helper()
	helm(t, append([]string{"lint", "--strict", chartDir}, values...)...)
	args := append([]string{"template", "xl", chartDir, "--namespace", "search"}, values...)
	if operator {
		args = append(args, "--api-versions", "monitoring.coreos.com/v1")
	}
	out := helm(t, args...)
	m := &manifests{kinds: map[string]int{}}
	for _, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(out), -1) {
		var head struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue
		}
		m.kinds[head.Kind]++
		b := []byte(doc)
		switch head.APIVersion + "/" + head.Kind {
		case "apps/v1/Deployment":
			decodeStrict(t, b, &m.deployments)
		case "v1/Service":
			decodeStrict(t, b, &m.services)
		case "batch/v1/Job":
			decodeStrict(t, b, &m.jobs)
		case "policy/v1/PodDisruptionBudget":
			decodeStrict(t, b, &m.pdbs)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			decodeStrict(t, b, &m.hpas)
		case "networking.k8s.io/v1/NetworkPolicy":
			decodeStrict(t, b, &m.netpols)
		case "v1/ConfigMap":
			decodeStrict(t, b, &m.configMaps)
		case "monitoring.coreos.com/v1/ServiceMonitor":
			decodeStrict(t, b, &m.monitors)
		case "monitoring.coreos.com/v1/PrometheusRule":
			decodeStrict(t, b, &m.rules)
		case "v1/ServiceAccount":
			decodeStrict(t, b, &m.accounts)
		case "v1/PersistentVolumeClaim":
			decodeStrict(t, b, &m.claims)
		default:
			t.Fatalf("the chart renders %s %s, which the test does not know", head.APIVersion, head.Kind)
		}
	}
	for _, r := range m.rules {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				m.prometheusQL = append(m.prometheusQL, rule.Expr.String())
			}
		}
	}
	for _, cm := range m.configMaps {
		for name, text := range cm.Data {
			var dash struct {
				Panels []struct {
					Title   string
					Targets []struct{ Expr string }
				}
			}
			if err := yaml.Unmarshal([]byte(text), &dash); err != nil {
				t.Fatalf("dashboard %s: %v", name, err)
			}
			if len(dash.Panels) == 0 {
				t.Fatalf("dashboard %s has no panels", name)
			}
			for _, p := range dash.Panels {
				for _, tg := range p.Targets {
					m.prometheusQL = append(m.prometheusQL, tg.Expr)
				}
			}
		}
	}
	return m
}

func TestChartDefaults(t *testing.T) {
	m := render(t, false)
	checkChart(t, m)
	if len(m.deployments) != 1 || len(m.jobs) != 0 || len(m.monitors) != 0 {
		t.Errorf("defaults: %d deployments, %d jobs, %d service monitors; want 1, 0, 0 (no Prometheus Operator API)", len(m.deployments), len(m.jobs), len(m.monitors))
	}
}

func TestChartEverythingOn(t *testing.T) {
	m := render(t, true, "-f", filepath.Join(chartDir, "ci", "all-on.yaml"))
	checkChart(t, m)
	want := map[string]int{"Deployment": 2, "Service": 2, "Job": 2, "PodDisruptionBudget": 2, "HorizontalPodAutoscaler": 2,
		"NetworkPolicy": 2, "ServiceMonitor": 1, "PrometheusRule": 1, "ConfigMap": 1, "ServiceAccount": 1}
	for kind, n := range want {
		if m.kinds[kind] != n {
			t.Errorf("%d %s, want %d", m.kinds[kind], kind, n)
		}
	}
	if len(m.claims) != 0 {
		t.Errorf("with model.persistence.existingClaim the chart must not create a claim; it made %d", len(m.claims))
	}
	// The split serves each model from its own Deployment, as Weaviate's
	// TRANSFORMERS_PASSAGE_/QUERY_INFERENCE_API expect.
	models := map[string]string{}
	for _, d := range m.deployments {
		fs := parseContainer(t, d.Spec.Template.Spec.Containers[0])
		models[d.Name] = fs.Lookup("model").Value.String()
		if q := fs.Lookup("query-model").Value.String(); q != "" {
			t.Errorf("%s: a split Deployment serves one model, but has --query-model %s", d.Name, q)
		}
	}
	if models["xl-xling-passage"] != "/models/runs/hybrid/model" || models["xl-xling-query"] != "/models/runs/hybrid-query/model" {
		t.Errorf("split deployments serve %v", models)
	}
	for _, mon := range m.monitors {
		for _, ep := range mon.Spec.Endpoints {
			if ep.Path != "/metrics" || ep.Port != "http" {
				t.Errorf("ServiceMonitor scrapes %s on port %q; the sidecar serves /metrics on http", ep.Path, ep.Port)
			}
		}
		sel, err := metav1.LabelSelectorAsSelector(&mon.Spec.Selector)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range m.services {
			if !sel.Matches(labels.Set(s.Labels)) {
				t.Errorf("ServiceMonitor does not select Service %s", s.Name)
			}
		}
	}
}

func TestChartQueryModelInOneDeployment(t *testing.T) {
	m := render(t, false, "--set", "model.queryDir=q", "--set", "networkPolicy.enabled=false", "--set", "model.persistence.create=false")
	checkChart(t, m)
	fs := parseContainer(t, m.deployments[0].Spec.Template.Spec.Containers[0])
	if got := fs.Lookup("query-model").Value.String(); got != "/models/q" {
		t.Errorf("--query-model %q, want /models/q", got)
	}
	if v := m.deployments[0].Spec.Template.Spec.Volumes[0]; v.EmptyDir == nil {
		t.Errorf("without a claim the model volume should be an emptyDir, got %+v", v.VolumeSource)
	}
}

// checkChart asserts what must hold for any values.
func checkChart(t *testing.T, m *manifests) {
	t.Helper()
	probe := sidecarForProbes(t)
	podLabels := map[string]map[string]string{}
	for _, d := range m.deployments {
		pod := d.Spec.Template
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			t.Errorf("%s: selector %v does not match its pod labels %v (%v)", d.Name, d.Spec.Selector.MatchLabels, pod.Labels, err)
		}
		podLabels[d.Name] = pod.Labels
		checkSecurity(t, "Deployment "+d.Name, pod.Spec)
		c := pod.Spec.Containers[0]
		fs := parseContainer(t, c)
		if c.Args[0] != "serve" {
			t.Fatalf("%s runs xling %s, want serve", d.Name, c.Args[0])
		}
		_, port, _ := strings.Cut(fs.Lookup("addr").Value.String(), ":")
		if len(c.Ports) != 1 || fmt.Sprint(c.Ports[0].ContainerPort) != port {
			t.Errorf("%s: container ports %+v, but xling serve listens on %q", d.Name, c.Ports, port)
		}
		for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s probe", d.Name, name)
				continue
			}
			if got := resolvePort(t, c, p.HTTPGet.Port); got != c.Ports[0].ContainerPort {
				t.Errorf("%s: %s probe on port %d, container listens on %d", d.Name, name, got, c.Ports[0].ContainerPort)
			}
			if code := probe(p.HTTPGet.Path); code != http.StatusOK {
				t.Errorf("%s: %s probe path %s answers %d on a warm sidecar", d.Name, name, p.HTTPGet.Path, code)
			}
		}
		if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path != "/.well-known/ready" {
			t.Errorf("%s: readiness probes %s; only /.well-known/ready says the model is loaded", d.Name, c.ReadinessProbe.HTTPGet.Path)
		}
		for _, ic := range pod.Spec.InitContainers {
			if ic.Image == c.Image {
				parseContainer(t, ic)
			}
		}
	}
	// Every Service, PDB, HPA and NetworkPolicy points at a Deployment's pods.
	matchesPods := func(what string, sel labels.Selector) {
		for _, l := range podLabels {
			if sel.Matches(labels.Set(l)) {
				return
			}
		}
		t.Errorf("%s selects no Deployment's pods", what)
	}
	for _, s := range m.services {
		matchesPods("Service "+s.Name, labels.SelectorFromSet(s.Spec.Selector))
		d := deploymentFor(m, s.Spec.Selector)
		if d == nil {
			continue
		}
		for _, p := range s.Spec.Ports {
			if got := resolvePort(t, d.Spec.Template.Spec.Containers[0], p.TargetPort); got != d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort {
				t.Errorf("Service %s targets port %d, the container listens on %d", s.Name, got, d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort)
			}
		}
	}
	for _, p := range m.pdbs {
		sel, _ := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		matchesPods("PodDisruptionBudget "+p.Name, sel)
	}
	for _, n := range m.netpols {
		sel, _ := metav1.LabelSelectorAsSelector(&n.Spec.PodSelector)
		matchesPods("NetworkPolicy "+n.Name, sel)
		if len(n.Spec.Ingress) == 0 || !slices.Contains(n.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("NetworkPolicy %s does not restrict ingress", n.Name)
		}
		for _, rule := range n.Spec.Ingress {
			if len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s has a rule open to every pod", n.Name)
			}
		}
	}
	for _, h := range m.hpas {
		if _, ok := podLabels[h.Spec.ScaleTargetRef.Name]; !ok || h.Spec.ScaleTargetRef.Kind != "Deployment" {
			t.Errorf("HPA %s scales %s %s, not one of the chart's Deployments", h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
	}
	for _, j := range m.jobs {
		checkSecurity(t, "Job "+j.Name, j.Spec.Template.Spec)
		for _, c := range append(j.Spec.Template.Spec.InitContainers, j.Spec.Template.Spec.Containers...) {
			parseContainer(t, c)
		}
	}
	checkMetricNames(t, m.prometheusQL)
}

// checkSecurity asserts a restrictive pod: non-root, no service account
// token, and every container with a read-only root, no privilege
// escalation and every capability dropped.
func checkSecurity(t *testing.T, what string, pod corev1.PodSpec) {
	t.Helper()
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.RunAsUser == nil || *pod.SecurityContext.RunAsUser == 0 {
		t.Errorf("%s: pod may run as root: %+v", what, pod.SecurityContext)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("%s mounts a service account token it does not need", what)
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no securityContext", what, c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s/%s: writable root filesystem", what, c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: privilege escalation allowed", what, c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s/%s: privileged", what, c.Name)
		case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s/%s: capabilities %+v, want drop ALL and add none", what, c.Name, sc.Capabilities)
		}
	}
}

func resolvePort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, p.StrVal)
	return -1
}

func deploymentFor(m *manifests, sel map[string]string) *appsv1.Deployment {
	for i, d := range m.deployments {
		if labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			return &m.deployments[i]
		}
	}
	return nil
}

// parseContainer checks a container's command line (parseCommand) and its
// xling variables: each is the fallback of one of the command's flags (the
// API key, of --api-key-file), and a value the flag accepts.
func parseContainer(t *testing.T, c corev1.Container) *flag.FlagSet {
	t.Helper()
	fs := parseCommand(t, c.Args)
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "XLING_") || e.Name == "XLING_WEAVIATE_API_KEY" {
			continue
		}
		var reads *flag.Flag
		fs.VisitAll(func(f *flag.Flag) {
			if cli.EnvName(f.Usage) == e.Name {
				reads = f
			}
		})
		if reads == nil {
			t.Errorf("container %s sets %s, which no flag of xling %s reads", c.Name, e.Name, fs.Name())
			continue
		}
		if e.ValueFrom == nil && !onCommandLine[reads.Name] {
			if err := reads.Value.Set(e.Value); err != nil {
				t.Errorf("container %s: %s=%q is not a valid --%s: %v", c.Name, e.Name, e.Value, reads.Name, err)
			}
		}
	}
	return fs
}

// parseCommand checks that args name an xling subcommand and that its flags
// accept the rest, returning the parsed flags. Every command defines its
// flags before it parses, and -h stops it there, so it is run with -h to
// collect them and nothing else happens.
func parseCommand(t *testing.T, args []string) *flag.FlagSet {
	t.Helper()
	for _, c := range commands() {
		words := strings.Fields(c.Name)
		if len(args) < len(words) || !slices.Equal(args[:len(words)], words) {
			continue
		}
		fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := c.Run(context.Background(), fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("xling %s -h: %v, want flag.ErrHelp", c.Name, err)
		}
		if err := fs.Parse(args[len(words):]); err != nil {
			t.Errorf("xling %s does not accept %q: %v", c.Name, args[len(words):], err)
		}
		return fs
	}
	t.Fatalf("xling has no subcommand %q", args)
	return nil
}

// sidecarForProbes serves a warm sidecar with a stand-in encoder and
// returns a function giving the status of a GET on a path.
func sidecarForProbes(t *testing.T) func(path string) int {
	t.Helper()
	srv := newTestSidecar(t)
	return func(path string) int {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code
	}
}

// constEncoder stands in for a model: the chart tests need the sidecar's
// routes and metrics, not real vectors.
type constEncoder struct{}

func (constEncoder) Workers() int { return 1 }

func (constEncoder) Tokenize(text string, _ vectorizer.Kind) (vectorizer.Tokens, error) {
	return vectorizer.Tokens{IDs: []int64{1, 2, 3}}, nil
}

func (constEncoder) EncodeTokens(_ context.Context, toks []vectorizer.Tokens, _ vectorizer.Kind) ([][]float32, error) {
	out := make([][]float32, len(toks))
	for i := range out {
		out[i] = []float32{0.6, 0.8}
	}
	return out, nil
}

func (constEncoder) Dims() int { return 2 }

func newTestSidecar(t *testing.T) *sidecar.Server {
	t.Helper()
	opts := sidecar.DefaultOptions()
	opts.Passage = sidecar.Model{Encoder: constEncoder{}, Name: "const", Type: "bert", Pooling: "masked_mean", MaxTokens: 8}
	srv, err := sidecar.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if err := srv.Warm(context.Background()); err != nil {
		t.Fatal(err)
	}
	return srv
}

// checkMetricNames asserts that every metric the PromQL expressions name is
// one the sidecar's registry exports, after the sidecar has served a request
// so that every labelled series exists.
func checkMetricNames(t *testing.T, exprs []string) {
	t.Helper()
	srv := newTestSidecar(t)
	rec := httptest.NewRecorder()
	body := `{"text":"hello","config":{"pooling_strategy":"masked_mean","task_type":"query"}}`
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/vectors", strings.NewReader(body)))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST /vectors: %d %s", rec.Code, rec.Body)
	}
	fams, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]dto.MetricType{}
	for _, f := range fams {
		exported[f.GetName()] = f.GetType()
	}
	name := regexp.MustCompile(`\b(?:xling|process|go)_[a-z_]+\b`)
	seen := 0
	for _, e := range exprs {
		for _, n := range name.FindAllString(e, -1) {
			seen++
			if _, ok := exported[n]; ok {
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
			if typ, ok := exported[base]; ok && typ == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s is not exported by the sidecar (in %q)", n, e)
		}
	}
	if len(exprs) > 0 && seen == 0 {
		t.Errorf("no metric names found in %d expressions", len(exprs))
	}
}
