package deploy

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/claimsvc/claimsvc/deploy/kubeschema"
	"github.com/claimsvc/claimsvc/internal/config"
)

// The schemas the chart is validated against come through the Go module
// proxy, pinned by version and checksum (docs/operations.md §5): Kubernetes'
// own OpenAPI document, and the Prometheus Operator's ServiceMonitor CRD.
const (
	kubernetesModule  = "k8s.io/kubernetes"
	kubernetesVersion = "v1.37.2"
	kubernetesSum     = "h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE="
	kubernetesSpec    = "api/openapi-spec/swagger.json"

	promOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	promOperatorVersion = "v0.85.0"
	promOperatorSum     = "h1:M5xLCLEoaW2IJfnuCwFzzpL+jSVQu3KGT84Pye+fW8s="
	serviceMonitorCRD   = "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"

	chartDir = "helm/claimsvc"
)

// comingSettings are settings other branches are adding now (the lead's
// contracts); the chart may name them before config knows them.
var comingSettings = []string{
	"CLAIMSVC_TB_URL", "CLAIMSVC_TB_API_KEY", "CLAIMSVC_TB_USERNAME", "CLAIMSVC_TB_PASSWORD", "CLAIMSVC_TB_CA_FILE",
	"CLAIMSVC_TB_POLL_INTERVAL", "CLAIMSVC_DELIVERY", "CLAIMSVC_TB_CLAIM_CACHE_TTL",
	"CLAIMSVC_DATA_KEY_FILE", "CLAIMSVC_TB_PASSWORD_FILE", "CLAIMSVC_TB_API_KEY_FILE", "CLAIMSVC_DATABASE_URL_FILE",
	"CLAIMSVC_DATA_KEYS", "CLAIMSVC_INSECURE_NO_API_KEYS",
}

// secretSettings never appear in a ConfigMap or as a literal value: claimsvc's
// secrets, and the API keys' digests, which the chart keeps in the Secret too.
var secretSettings = append(config.SecretEnvVars(), "CLAIMSVC_API_KEYS")

// TestChartKnowsEverySecret: the chart's lists of secret settings, and of
// those it can pass as files (secrets.asFiles), are claimsvc's own; a secret
// missing from them would be accepted in the ConfigMap, or sit in the
// environment with asFiles.
func TestChartKnowsEverySecret(t *testing.T) {
	t.Parallel()
	tpl, err := os.ReadFile("helm/claimsvc/templates/_helpers.tpl")
	if err != nil {
		t.Fatal(err)
	}
	list := func(name string) []string {
		_, rest, ok := strings.Cut(string(tpl), `{{- define "`+name+`" -}}`)
		if !ok {
			t.Fatalf("_helpers.tpl defines no %s", name)
		}
		line := strings.TrimSpace(strings.SplitN(strings.TrimSpace(rest), "\n", 2)[0])
		var out []string
		for _, s := range strings.Split(strings.Trim(line, "[]"), ",") {
			out = append(out, strings.TrimSpace(s))
		}
		slices.Sort(out)
		return out
	}
	want := slices.Sorted(slices.Values(config.SecretEnvVars()))
	if got := list("claimsvc.fileSettings"); !slices.Equal(got, want) {
		t.Errorf("claimsvc.fileSettings = %v, want claimsvc's secrets %v (each has a _FILE variable)", got, want)
	}
	if got := list("claimsvc.secretSettings"); !slices.Equal(got, slices.Sorted(slices.Values(secretSettings))) {
		t.Errorf("claimsvc.secretSettings = %v, want %v", got, secretSettings)
	}
}

func inCI() bool { return os.Getenv("CI") == "true" }

// need skips, or fails under CI=true, when a tool is missing.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

var toolPaths sync.Map // name → path of the built tool

// tool runs a pinned tool of tools/go.mod from the repository root. The
// executable comes from `go tool -n` (built once, then cached by Go), and is
// run directly: asking go tool each time costs seconds.
func tool(t *testing.T, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	path, ok := toolPaths.Load(name)
	if !ok {
		if _, err := exec.LookPath("go"); err != nil {
			need(t, "go is not on PATH")
		}
		// Only stdout is the path: on a fresh module cache go also reports
		// its downloads, on stderr.
		cmd := exec.Command("go", "tool", "-modfile=tools/go.mod", "-n", name)
		cmd.Dir = ".."
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			need(t, "cannot build %s from tools/go.mod (make tools builds it once): %v\n%s", name, err, stderr.String())
		}
		path = strings.TrimSpace(string(out))
		toolPaths.Store(name, path)
	}
	cmd := exec.Command(path.(string), args...)
	cmd.Dir = ".."
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return out, nil
}

// moduleFile reads a file of a pinned module from the module cache,
// downloading the module through the proxy when it is not there yet.
func moduleFile(t *testing.T, module, version, sum, file string) []byte {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", module+"@"+version)
	cmd.Dir = t.TempDir() // outside the project: nothing to add to go.mod
	out, err := cmd.Output()
	var info struct{ Dir, Sum, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil || err != nil || info.Error != "" {
		need(t, "cannot get %s@%s through the Go module proxy (run make tools once with network): %v %s", module, version, err, info.Error)
	}
	if info.Sum != sum {
		t.Fatalf("%s@%s has checksum %s, want the pinned %s", module, version, info.Sum, sum)
	}
	b, err := os.ReadFile(filepath.Join(info.Dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schemas writes the strict JSON schemas and returns kubeconform's
// -schema-location template for them.
func schemas(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	n, err := kubeschema.FromSwagger(moduleFile(t, kubernetesModule, kubernetesVersion, kubernetesSum, kubernetesSpec), dir)
	if err != nil {
		t.Fatal(err)
	}
	files, err := kubeschema.FromCRD(moduleFile(t, promOperatorModule, promOperatorVersion, promOperatorSum, serviceMonitorCRD), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("schemas: %d Kubernetes %s kinds, %v", n, kubernetesVersion, files)
	return filepath.Join(dir, "{{ .ResourceKind }}{{ .KindSuffix }}.json")
}

// object is one rendered manifest.
type object map[string]any

// get walks a path of keys and list indexes: get("spec", "template", "spec", "containers", 0).
func (o object) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

func (o object) str(path ...any) string { s, _ := o.get(path...).(string); return s }
func (o object) id() string             { return o.str("kind") + "/" + o.str("metadata", "name") }

func render(t *testing.T, valuesFile string) ([]byte, []object) {
	t.Helper()
	args := []string{"helm", "template", "claimsvc", "deploy/" + chartDir, "--namespace", "iot"}
	if valuesFile != "" {
		args = append(args, "-f", "deploy/"+chartDir+"/"+valuesFile)
	}
	out, err := tool(t, nil, args[0], args[1:]...)
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var m map[string]any // not object: yaml.v3 would give nested maps that type too
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("rendered YAML: %v", err)
		}
		if m != nil {
			objs = append(objs, object(m))
		}
	}
	return out, objs
}

// TestHelmChart renders the chart with its default values and with the
// example values in ci/, validates every object with kubeconform against the
// Kubernetes API (strict: no unknown field), and checks what the chart
// promises: replicas, probes, non-root, read-only root, resources, the PDB
// and the Service selecting exactly the serving pods, the migration hook,
// settings that exist, and secrets only in Secrets.
func TestHelmChart(t *testing.T) {
	start := time.Now()
	if _, err := tool(t, nil, "helm", "version"); err != nil {
		t.Fatalf("helm version: %v", err)
	}
	t.Logf("helm ready in %s", time.Since(start).Round(time.Millisecond))
	location := schemas(t)

	cases := []struct {
		values string
		kinds  []string
	}{
		{"", []string{"ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Service", "ServiceAccount"}},
		{"ci/production-values.yaml", []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Job", "PodDisruptionBudget", "Service", "ServiceAccount", "ServiceMonitor"}},
		{"ci/trial-values.yaml", []string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"}},
	}
	for _, c := range cases {
		name := c.values
		if name == "" {
			name = "defaults"
		}
		t.Run(strings.TrimSuffix(filepath.Base(name), ".yaml"), func(t *testing.T) {
			args := []string{"helm", "lint", "--strict", "deploy/" + chartDir}
			if c.values != "" {
				args = append(args, "-f", "deploy/"+chartDir+"/"+c.values)
			}
			if out, err := tool(t, nil, args[0], args[1:]...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
			manifests, objs := render(t, c.values)
			kubeconform(t, location, manifests, len(objs))
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.str("kind"))
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, c.kinds) {
				t.Errorf("kinds %v, want %v", kinds, c.kinds)
			}
			checkChart(t, objs)
		})
	}
}

func kubeconform(t *testing.T, location string, manifests []byte, want int) {
	t.Helper()
	out, err := tool(t, manifests, "kubeconform", "-strict", "-verbose", "-output", "json",
		"-kubernetes-version", strings.TrimPrefix(kubernetesVersion, "v"), "-schema-location", location, "-")
	var res struct {
		Resources []struct{ Kind, Name, Status, Msg string } `json:"resources"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		t.Fatalf("kubeconform: %v %v\n%s", err, jerr, out)
	}
	valid := 0
	for _, r := range res.Resources {
		if r.Status == "statusValid" {
			valid++
		} else {
			t.Errorf("kubeconform: %s/%s: %s %s", r.Kind, r.Name, r.Status, r.Msg)
		}
	}
	if err != nil || valid != want {
		t.Errorf("kubeconform: %d of %d objects valid (%v)", valid, want, err)
	}
}

func checkChart(t *testing.T, objs []object) {
	t.Helper()
	byKind := map[string]object{}
	for _, o := range objs {
		byKind[o.str("kind")] = o
	}
	dep, cm := byKind["Deployment"], byKind["ConfigMap"]
	if dep == nil || cm == nil {
		t.Fatal("no Deployment or ConfigMap")
	}
	pod := object(dep.get("spec", "template").(map[string]any))
	podLabels := dep.get("spec", "template", "metadata", "labels").(map[string]any)
	ctr := object(pod.get("spec", "containers", 0).(map[string]any))

	// Replicas: at least 2, fixed or by the HPA.
	if hpa := byKind["HorizontalPodAutoscaler"]; hpa != nil {
		if n, _ := hpa.get("spec", "minReplicas").(int); n < 2 {
			t.Errorf("HPA minReplicas %d, want ≥ 2", n)
		}
		if dep.get("spec", "replicas") != nil {
			t.Error("with an HPA the Deployment must not set replicas (each upgrade would reset them)")
		}
	} else if n, _ := dep.get("spec", "replicas").(int); n < 2 {
		t.Errorf("replicas %d, want ≥ 2", n)
	}
	// Probes on the named port, on the right paths.
	if ctr.str("ports", 0, "name") != "http" || ctr.get("ports", 0, "containerPort") != 8080 || cm.str("data", "CLAIMSVC_HTTP_ADDR") != ":8080" {
		t.Error("the container port must be 8080, named http, and claimsvc must listen there")
	}
	for probe, path := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz"} {
		if ctr.str(probe, "httpGet", "path") != path || ctr.str(probe, "httpGet", "port") != "http" {
			t.Errorf("%s: want GET %s on port http, got %v", probe, path, ctr.get(probe))
		}
	}
	// Non-root, read-only, nothing extra.
	checkLocked(t, "Deployment", pod, ctr)
	if pod.get("spec", "automountServiceAccountToken") != false {
		t.Error("the pods need no Kubernetes API token")
	}
	for _, r := range []string{"requests", "limits"} {
		if ctr.get("resources", r, "memory") == nil {
			t.Errorf("resources.%s.memory unset", r)
		}
	}
	if ctr.get("resources", "requests", "cpu") == nil {
		t.Error("resources.requests.cpu unset (the scheduler and the HPA count it)")
	}
	grace, _ := pod.get("spec", "terminationGracePeriodSeconds").(int)
	if sd, err := time.ParseDuration(cm.str("data", "CLAIMSVC_SHUTDOWN_TIMEOUT")); err == nil && time.Duration(grace)*time.Second <= sd {
		t.Errorf("terminationGracePeriodSeconds %d must exceed CLAIMSVC_SHUTDOWN_TIMEOUT %s", grace, sd)
	}
	// Selectors: the Service and the PDB take the serving pods, never the migration Job's.
	var jobLabels map[string]any
	if job := byKind["Job"]; job != nil {
		jobLabels = job.get("spec", "template", "metadata", "labels").(map[string]any)
		jpod := object(job.get("spec", "template").(map[string]any))
		jctr := object(jpod.get("spec", "containers", 0).(map[string]any))
		checkLocked(t, "Job", jpod, jctr)
		if hook := job.str("metadata", "annotations", "helm.sh/hook"); hook != "pre-install,pre-upgrade" {
			t.Errorf("migration Job hook %q, want pre-install,pre-upgrade", hook)
		}
		if args, _ := jctr.get("args").([]any); len(args) != 1 || args[0] != "migrate" {
			t.Errorf("migration Job args %v", args)
		}
		if cm.str("data", "CLAIMSVC_MIGRATE") != "false" {
			t.Error("with the migration Job the pods must not migrate")
		}
		if jpod.str("spec", "serviceAccountName") != "" {
			t.Error("the Job runs before install: the chart's ServiceAccount does not exist yet")
		}
	} else if cm.str("data", "CLAIMSVC_MIGRATE") != "true" {
		t.Error("without the migration Job the pods must migrate")
	}
	for _, sel := range []struct {
		what string
		m    any
	}{
		{"Service", byKind["Service"].get("spec", "selector")},
		{"PodDisruptionBudget", byKind["PodDisruptionBudget"].get("spec", "selector", "matchLabels")},
		{"Deployment", dep.get("spec", "selector", "matchLabels")},
	} {
		m, _ := sel.m.(map[string]any)
		if len(m) == 0 || !matches(m, podLabels) || (jobLabels != nil && matches(m, jobLabels)) {
			t.Errorf("%s selector %v: must select the serving pods %v and not the Job's %v", sel.what, m, podLabels, jobLabels)
		}
	}
	if byKind["Service"].str("spec", "ports", 0, "targetPort") != "http" {
		t.Error("the Service must target the port named http")
	}
	if sm := byKind["ServiceMonitor"]; sm != nil {
		m, _ := sm.get("spec", "selector", "matchLabels").(map[string]any)
		svcLabels, _ := byKind["Service"].get("metadata", "labels").(map[string]any)
		if !matches(m, svcLabels) || sm.str("spec", "endpoints", 0, "port") != "http" || sm.str("spec", "endpoints", 0, "path") != "/metrics" {
			t.Errorf("ServiceMonitor must scrape the Service's port http at /metrics: %v", sm.get("spec"))
		}
	}

	// Settings: each one exists; secrets are never literal values.
	known := append(config.EnvVars(), comingSettings...)
	for k := range cm.get("data").(map[string]any) {
		if !slices.Contains(known, k) {
			t.Errorf("ConfigMap sets unknown setting %s", k)
		}
		if slices.Contains(secretSettings, k) {
			t.Errorf("ConfigMap holds the secret %s", k)
		}
	}
	secretName := ""
	if s := byKind["Secret"]; s != nil {
		secretName = s.str("metadata", "name")
	}
	env, _ := ctr.get("env").([]any)
	names := map[string]bool{}
	for _, e := range env {
		e := object(e.(map[string]any))
		name := e.str("name")
		names[name] = true
		if !slices.Contains(known, name) {
			t.Errorf("env sets unknown setting %s", name)
		}
		if slices.Contains(secretSettings, name) && e.get("valueFrom", "secretKeyRef") == nil {
			t.Errorf("%s must come from a Secret", name)
		}
		if ref := e.str("valueFrom", "secretKeyRef", "name"); ref != "" && secretName != "" && ref != secretName {
			t.Errorf("%s refers to Secret %s, the chart makes %s", name, ref, secretName)
		}
		if file, ok := strings.CutSuffix(name, "_FILE"); ok && slices.Contains(secretSettings, file) {
			if !strings.HasPrefix(e.str("value"), "/etc/claimsvc/secrets/") || !mountedReadOnly(ctr, "/etc/claimsvc/secrets") {
				t.Errorf("%s=%s: not in the read-only Secret mount", name, e.str("value"))
			}
		}
	}
	for _, required := range []string{"CLAIMSVC_DATABASE_URL", "CLAIMSVC_DATA_KEY"} {
		if !names[required] && !names[required+"_FILE"] {
			t.Errorf("the pods do not get %s from the Secret", required)
		}
	}
	// An inline Secret's values appear nowhere else.
	if s := byKind["Secret"]; s != nil {
		for key, v := range s.get("data").(map[string]any) {
			plain := base64Decode(t, v.(string))
			for _, o := range objs {
				if o.str("kind") == "Secret" {
					continue
				}
				if b, _ := yaml.Marshal(map[string]any(o)); bytes.Contains(b, []byte(plain)) {
					t.Errorf("the value of secret key %s appears in %s", key, o.id())
				}
			}
		}
	}
}

// checkLocked: non-root, read-only root filesystem, no privilege, no capability.
func checkLocked(t *testing.T, what string, pod, ctr object) {
	t.Helper()
	if pod.get("spec", "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: runAsNonRoot unset", what)
	}
	if pod.str("spec", "securityContext", "seccompProfile", "type") != "RuntimeDefault" {
		t.Errorf("%s: no RuntimeDefault seccomp profile", what)
	}
	sc := object(ctr.get("securityContext").(map[string]any))
	if sc.get("readOnlyRootFilesystem") != true || sc.get("allowPrivilegeEscalation") != false {
		t.Errorf("%s: want a read-only root filesystem and no privilege escalation: %v", what, sc)
	}
	if drop, _ := sc.get("capabilities", "drop").([]any); !slices.Contains(drop, any("ALL")) {
		t.Errorf("%s: capabilities must drop ALL", what)
	}
}

func matches(selector, labels map[string]any) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func mountedReadOnly(ctr object, path string) bool {
	mounts, _ := ctr.get("volumeMounts").([]any)
	for _, m := range mounts {
		m := object(m.(map[string]any))
		if m.str("mountPath") == path && m.get("readOnly") == true {
			return true
		}
	}
	return false
}

func base64Decode(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestHelmChartRefuses: values that would be unsafe fail to render, saying why.
func TestHelmChartRefuses(t *testing.T) {
	for _, c := range []struct{ set, want string }{
		{"config.CLAIMSVC_DATA_KEY=abc", "config.CLAIMSVC_DATA_KEY is a secret"},
		{"secrets.keys.CLAIMSVC_DATA_KEY=null", "secrets.keys.CLAIMSVC_DATA_KEY (or the keyring, CLAIMSVC_DATA_KEYS) is required"},
		{"secrets.keys.CLAIMSVC_DATA_KEYS=data-keys", "keep one"},
		{"config.CLAIMSVC_MIGRATE=false", "set by the chart"},
		{"secrets.keys.CLAIMSVC_API_KEYS=null", "CLAIMSVC_INSECURE_NO_API_KEYS"},
		{"secrets.create=true", "secrets.create is true but secrets.values has no"},
		{"secrets.keys.CLAIMSVC_PPROF_ADDR=x", "not a secret setting"},
		{"autoscaling.enabled=true,autoscaling.minReplicas=1", "minReplicas below 2"},
	} {
		out, err := tool(t, nil, "helm", "template", "claimsvc", "deploy/"+chartDir, "--set", c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--set %s: want an error saying %q, got %v\n%s", c.set, c.want, err, out)
		}
	}
	// The explicit opt-out renders.
	if _, err := tool(t, nil, "helm", "template", "claimsvc", "deploy/"+chartDir, "--set", "secrets.keys.CLAIMSVC_API_KEYS=null",
		"--set-string", "config.CLAIMSVC_INSECURE_NO_API_KEYS=true"); err != nil {
		t.Errorf("CLAIMSVC_INSECURE_NO_API_KEYS=true: %v", err)
	}
	// A data-key rotation (docs/operations.md): the keyring instead of the key.
	out, err := tool(t, nil, "helm", "template", "claimsvc", "deploy/"+chartDir, "--set", "secrets.keys.CLAIMSVC_DATA_KEY=null",
		"--set", "secrets.keys.CLAIMSVC_DATA_KEYS=data-keys")
	if err != nil || !bytes.Contains(out, []byte("name: CLAIMSVC_DATA_KEYS")) || bytes.Contains(out, []byte("name: CLAIMSVC_DATA_KEY\n")) {
		t.Errorf("the keyring instead of the key: %v\n%s", err, out)
	}
	// A database URL from a file the operator mounts reaches the migration
	// Job too, with the volume.
	out, err = tool(t, nil, "helm", "template", "claimsvc", "deploy/"+chartDir, "--set", "secrets.keys.CLAIMSVC_DATABASE_URL=null",
		"--set", "config.CLAIMSVC_DATABASE_URL_FILE=/etc/db/url", "--set", "extraVolumes[0].name=db",
		"--set", "extraVolumes[0].secret.secretName=db", "--set", "extraVolumeMounts[0].name=db", "--set", "extraVolumeMounts[0].mountPath=/etc/db")
	_, job, _ := bytes.Cut(out, []byte("kind: Job"))
	if err != nil || !bytes.Contains(job, []byte("name: CLAIMSVC_DATABASE_URL_FILE")) || !bytes.Contains(job, []byte("mountPath: /etc/db")) {
		t.Errorf("the migration Job without the URL file: %v\n%s", err, out)
	}
	// A number in config is passed as written, not as a float.
	out, err = tool(t, nil, "helm", "template", "claimsvc", "deploy/"+chartDir, "--set", "config.CLAIMSVC_DEFAULT_DURATION_MS=86400000")
	if err != nil || !bytes.Contains(out, []byte(`CLAIMSVC_DEFAULT_DURATION_MS: "86400000"`)) {
		t.Errorf("a number in config: %v\n%s", err, out)
	}
}
