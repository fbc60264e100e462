// Package deploy holds the deployment files' checks. Docker cannot run on the
// project's machines, so docker-compose.yml and the Dockerfile are kept
// correct by review and by these tests, which parse them and check the
// wiring that a typo would break. The Helm chart is rendered and validated
// against the Kubernetes API (helm_test.go), and the alert rules and the
// dashboard are checked with promtool (monitoring_test.go).
package deploy

import (
	"bufio"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/claimsvc/claimsvc/internal/config"
)

type compose struct {
	Name     string `yaml:"name"`
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		EnvFile     []string          `yaml:"env_file"`
		Ports       []string          `yaml:"ports"`
		Restart     string            `yaml:"restart"`
		Volumes     []string          `yaml:"volumes"`
		ReadOnly    bool              `yaml:"read_only"`
		SecurityOpt []string          `yaml:"security_opt"`
		CapDrop     []string          `yaml:"cap_drop"`
		StopGrace   string            `yaml:"stop_grace_period"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck *struct {
			Test        []string `yaml:"test"`
			Interval    string   `yaml:"interval"`
			Timeout     string   `yaml:"timeout"`
			Retries     int      `yaml:"retries"`
			StartPeriod string   `yaml:"start_period"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

func load(t *testing.T) compose {
	t.Helper()
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true) // a misspelt key is an error, as in docker compose
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

func TestComposeWiring(t *testing.T) {
	t.Parallel()
	c := load(t)
	for _, name := range []string{"db", "thingsboard", "migrate", "claimsvc"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %s missing", name)
		}
	}
	// Every dependency condition can be met.
	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s depends on unknown service %s", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", name, dep, dep)
			case d.Condition == "service_completed_successfully" && target.Restart != "no":
				t.Errorf("%s waits for %s to complete, but %s restarts", name, dep, dep)
			case d.Condition == "":
				t.Errorf("%s depends on %s without a condition (a start-order race)", name, dep)
			}
		}
	}
	svc := c.Services["claimsvc"]
	want := map[string]string{"db": "service_healthy", "migrate": "service_completed_successfully", "thingsboard": "service_healthy"}
	for dep, cond := range want {
		if svc.DependsOn[dep].Condition != cond {
			t.Errorf("claimsvc depends_on %s: %q, want %q", dep, svc.DependsOn[dep].Condition, cond)
		}
	}
	if !slices.Equal(svc.Healthcheck.Test, []string{"CMD", "/claimsvc", "healthcheck"}) {
		t.Errorf("claimsvc healthcheck %v: want the binary's own probe (distroless has no shell)", svc.Healthcheck.Test)
	}
	if len(svc.Command) == 0 || svc.Command[0] != "serve" || c.Services["migrate"].Command[0] != "migrate" {
		t.Errorf("commands: claimsvc %v, migrate %v", svc.Command, c.Services["migrate"].Command)
	}

	// MQTT goes to ThingsBoard's published MQTT port.
	mq, err := url.Parse(svc.Environment["CLAIMSVC_MQTT_URL"])
	if err != nil || mq.Hostname() != "thingsboard" || mq.Port() != "1883" {
		t.Errorf("CLAIMSVC_MQTT_URL %q: want tcp://thingsboard:1883", svc.Environment["CLAIMSVC_MQTT_URL"])
	}
	if !slices.ContainsFunc(c.Services["thingsboard"].Ports, func(p string) bool { return strings.HasSuffix(p, ":1883") }) {
		t.Error("thingsboard does not publish 1883")
	}
	// The database URL matches the db service's credentials, for both users of it.
	db := c.Services["db"].Environment
	for _, name := range []string{"claimsvc", "migrate"} {
		u, err := url.Parse(c.Services[name].Environment["CLAIMSVC_DATABASE_URL"])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pw, _ := u.User.Password()
		if u.Hostname() != "db" || u.User.Username() != db["POSTGRES_USER"] || pw != db["POSTGRES_PASSWORD"] || u.Path != "/"+db["POSTGRES_DB"] {
			t.Errorf("%s CLAIMSVC_DATABASE_URL does not match the db service", name)
		}
	}

	// Every CLAIMSVC_ variable named anywhere is a real setting, and the
	// env file the services read has an example that sets the data key.
	known := config.EnvVars()
	for name, s := range c.Services {
		for k := range s.Environment {
			if strings.HasPrefix(k, "CLAIMSVC_") && !slices.Contains(known, k) {
				t.Errorf("%s sets unknown setting %s", name, k)
			}
		}
		for _, f := range s.EnvFile {
			ex, err := os.Open(filepath.Join("..", f+".example"))
			if err != nil {
				t.Errorf("%s reads %s, but %s.example is missing", name, f, f)
				continue
			}
			sc := bufio.NewScanner(ex)
			hasKey := false
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" || line[0] == '#' {
					continue
				}
				k, _, _ := strings.Cut(line, "=")
				if !slices.Contains(known, k) {
					t.Errorf("%s.example sets unknown setting %s", f, k)
				}
				hasKey = hasKey || k == "CLAIMSVC_DATA_KEY"
			}
			ex.Close()
			if !hasKey {
				t.Errorf("%s.example does not set CLAIMSVC_DATA_KEY", f)
			}
		}
	}
}

// TestDockerfile checks the image build: multi-stage, static, non-root, the
// binary's own healthcheck, and that it copies every directory the binary's
// packages live in.
func TestDockerfile(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	var froms, copies []string
	for _, line := range strings.Split(df, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, line)
		case "COPY":
			if !strings.HasPrefix(f[1], "--from") {
				copies = append(copies, f[1:len(f)-1]...)
			}
		}
	}
	if len(froms) < 2 {
		t.Error("not a multi-stage build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "USER 65532:65532", `CMD ["/claimsvc", "healthcheck"]`, `ENTRYPOINT ["/claimsvc"]`, "-trimpath"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %s", want)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "github.com/claimsvc/claimsvc/cmd/claimsvc").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, "github.com/claimsvc/claimsvc/")
		if !ok {
			continue
		}
		top := strings.Split(rel, "/")[0]
		if !slices.Contains(copies, top) && !slices.Contains(copies, ".") {
			t.Errorf("the binary needs %s, but the Dockerfile does not COPY %s", pkg, top)
		}
	}
}

// TestComposeIsSafeByDefault: the stack publishes every port on loopback
// only, and its example settings enable no insecure opt-out: claimsvc refuses
// to start until the operator sets a data key and API keys.
func TestComposeIsSafeByDefault(t *testing.T) {
	t.Parallel()
	c := load(t)
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s publishes %q on every interface; publish it on 127.0.0.1", name, p)
			}
		}
		for k, v := range s.Environment {
			if strings.HasPrefix(k, "CLAIMSVC_INSECURE_") {
				t.Errorf("%s sets %s=%s", name, k, v)
			}
		}
	}
	b, err := os.ReadFile("claimsvc.env.example")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line == "" || line[0] == '#' {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		set[k] = v
	}
	for _, k := range []string{"CLAIMSVC_DATA_KEY", "CLAIMSVC_API_KEYS"} {
		if v, ok := set[k]; !ok || v != "" {
			t.Errorf("claimsvc.env.example must name %s with an empty value for the operator to fill (got %q)", k, v)
		}
	}
	for k := range set {
		if strings.HasPrefix(k, "CLAIMSVC_INSECURE_") {
			t.Errorf("claimsvc.env.example sets %s", k)
		}
	}
	if set["CLAIMSVC_REQUIRE_API_KEY"] == "" {
		t.Error("claimsvc.env.example does not show CLAIMSVC_REQUIRE_API_KEY")
	}
}
