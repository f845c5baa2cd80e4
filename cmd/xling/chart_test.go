package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	kubeflowv1 "github.com/kubeflow/training-operator/pkg/apis/kubeflow.org/v1"
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
	"github.com/xling-ir/xling/internal/c10d"
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
	pytorchJobs  []kubeflowv1.PyTorchJob
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

// operatorAPI is the Prometheus Operator's API, for render.
var operatorAPI = []string{"monitoring.coreos.com/v1"}

// render lints the chart with the values args (-f, --set), renders it as
// for a cluster that also serves the API versions apis (e.g. operatorAPI),
// and decodes the result.
func render(t *testing.T, apis []string, values ...string) *manifests {
	t.Helper()
	helm(t, append([]string{"lint", "--strict", chartDir}, values...)...)
	args := append([]string{"template", "xl", chartDir, "--namespace", "search"}, values...)
	for _, api := range apis {
		args = append(args, "--api-versions", api)
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
		case "kubeflow.org/v1/PyTorchJob":
			decodeStrict(t, b, &m.pytorchJobs)
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
	m := render(t, nil)
	checkChart(t, m)
	if len(m.deployments) != 1 || len(m.jobs) != 0 || len(m.monitors) != 0 {
		t.Errorf("defaults: %d deployments, %d jobs, %d service monitors; want 1, 0, 0 (no Prometheus Operator API)", len(m.deployments), len(m.jobs), len(m.monitors))
	}
}

func TestChartEverythingOn(t *testing.T) {
	m := render(t, operatorAPI, "-f", filepath.Join(chartDir, "ci", "all-on.yaml"))
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
	m := render(t, nil, "--set", "model.queryDir=q", "--set", "networkPolicy.enabled=false", "--set", "model.persistence.create=false")
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

// TestChartDistributedTraining renders both forms of a 3-rank training run:
// a Kubeflow PyTorchJob where the cluster serves it, else an Indexed Job
// with a headless Service. Either way every rank must get exactly the
// variables xling train reads (c10d.Env), rank 0 must be reachable where
// MASTER_ADDR and MASTER_PORT say, and the train flags must parse.
func TestChartDistributedTraining(t *testing.T) {
	values := []string{"--set", "train.enabled=true", "--set", "data.existingClaim=data", "--set", "train.distributed.workers=3"}
	checkTrainFlags := func(c corev1.Container) {
		fs := parseContainer(t, c)
		if got := fs.Lookup("dist-timeout").Value.String(); got != "10m0s" {
			t.Errorf("%s: --dist-timeout %s, want the chart's 10m", c.Name, got)
		}
		if got := fs.Lookup("nproc").Value.String(); got != "1" {
			t.Errorf("%s: --nproc %s: a pod is one rank, the launcher is the cluster", c.Name, got)
		}
	}

	// With the training operator's API: one PyTorchJob.
	m := render(t, []string{"kubeflow.org/v1/PyTorchJob"}, values...)
	if len(m.pytorchJobs) != 1 || len(m.jobs) != 0 {
		t.Fatalf("with kubeflow.org/v1: %d PyTorchJobs and %d Jobs, want 1 and 0", len(m.pytorchJobs), len(m.jobs))
	}
	job := m.pytorchJobs[0]
	ranks := int32(0)
	for role, spec := range job.Spec.PyTorchReplicaSpecs {
		ranks += *spec.Replicas
		pod := spec.Template.Spec
		checkSecurity(t, "PyTorchJob "+string(role), pod)
		c := pod.Containers[0]
		// The operator finds its container by this name and reads
		// MASTER_PORT from the port of this name.
		if c.Name != kubeflowv1.PyTorchJobDefaultContainerName {
			t.Errorf("%s: container %q, the operator wants %q", role, c.Name, kubeflowv1.PyTorchJobDefaultContainerName)
		}
		if len(c.Ports) != 1 || c.Ports[0].Name != kubeflowv1.PyTorchJobDefaultPortName || c.Ports[0].ContainerPort != 29500 {
			t.Errorf("%s: ports %+v, want %s 29500", role, c.Ports, kubeflowv1.PyTorchJobDefaultPortName)
		}
		for _, e := range c.Env {
			if slices.Contains(c10d.Env, e.Name) {
				t.Errorf("%s sets %s itself: the operator sets torchrun's variables", role, e.Name)
			}
		}
		checkTrainFlags(c)
	}
	if master := job.Spec.PyTorchReplicaSpecs[kubeflowv1.PyTorchJobReplicaTypeMaster]; master == nil || *master.Replicas != 1 || ranks != 3 {
		t.Errorf("PyTorchJob: %d ranks with master %+v, want 3 with one master", ranks, master)
	}
	// What the operator sets, for a PyTorchJob without elastic policy
	// (training-operator v1.8, pkg/controller.v1/pytorch/envvar.go): xling
	// must read every one, and needs nothing else (LOCAL_RANK defaults to
	// RANK).
	operatorSets := map[string]string{"MASTER_ADDR": "xl-xling-train-master-0", "MASTER_PORT": "29500", "WORLD_SIZE": "3", "RANK": "1"}
	cfg, ok, err := c10d.FromEnv(func(k string) string { return operatorSets[k] })
	if err != nil || !ok || cfg.WorldSize != 3 || cfg.Rank != 1 || cfg.LocalRank != 1 || cfg.MasterAddr != "xl-xling-train-master-0" || cfg.MasterPort != 29500 {
		t.Errorf("the operator's variables read as %+v, %v, %v", cfg, ok, err)
	}

	// Without it: an Indexed Job and a headless Service.
	m = render(t, nil, values...)
	if len(m.jobs) != 1 || len(m.pytorchJobs) != 0 {
		t.Fatalf("without kubeflow.org/v1: %d Jobs and %d PyTorchJobs, want 1 and 0", len(m.jobs), len(m.pytorchJobs))
	}
	j := m.jobs[0]
	if j.Spec.CompletionMode == nil || *j.Spec.CompletionMode != batchv1.IndexedCompletion || *j.Spec.Completions != 3 || *j.Spec.Parallelism != 3 {
		t.Fatalf("Job %s: completion mode %v, completions %v, parallelism %v; want Indexed, 3, 3", j.Name, j.Spec.CompletionMode, j.Spec.Completions, j.Spec.Parallelism)
	}
	pod := j.Spec.Template
	c := pod.Spec.Containers[0]
	checkTrainFlags(c)
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if slices.Contains(c10d.Env, e.Name) {
			env[e.Name] = e
		}
	}
	if len(env) != len(c10d.Env) {
		t.Errorf("the Indexed Job sets %v of torchrun's variables; xling train reads %v", slices.Collect(maps.Keys(env)), c10d.Env)
	}
	if r := env["RANK"].ValueFrom; r == nil || r.FieldRef == nil || r.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("RANK must be the pod's completion index, got %+v", env["RANK"])
	}
	// Rank 0 is pod <job>-0, found through the headless Service as
	// <job>-0.<subdomain>, listening on the port MASTER_PORT names.
	var svc *corev1.Service
	for i := range m.services {
		if m.services[i].Name == pod.Spec.Subdomain {
			svc = &m.services[i]
		}
	}
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Fatalf("no headless Service publishing unready pods named by the pods' subdomain %q: %+v", pod.Spec.Subdomain, svc)
	}
	if sel := labels.SelectorFromSet(svc.Spec.Selector); !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("Service %s does not select the training pods", svc.Name)
	}
	if want := j.Name + "-0." + svc.Name; env["MASTER_ADDR"].Value != want {
		t.Errorf("MASTER_ADDR %q, want %q (pod 0 of the Indexed Job)", env["MASTER_ADDR"].Value, want)
	}
	fromEnv := map[string]string{}
	for k, e := range env {
		fromEnv[k] = e.Value
	}
	fromEnv["RANK"] = "2"
	cfg, ok, err = c10d.FromEnv(func(k string) string { return fromEnv[k] })
	if err != nil || !ok || cfg.WorldSize != 3 || cfg.Rank != 2 {
		t.Errorf("the Indexed Job's variables read as %+v, %v, %v", cfg, ok, err)
	}
	if p := c.Ports; len(p) != 1 || int(p[0].ContainerPort) != cfg.MasterPort || svc.Spec.Ports[0].TargetPort.StrVal != p[0].Name {
		t.Errorf("rank 0 listens on %+v, MASTER_PORT is %d, the Service targets %v", p, cfg.MasterPort, svc.Spec.Ports[0].TargetPort)
	}
	checkSecurity(t, "Job "+j.Name, pod.Spec)
}
