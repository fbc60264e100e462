package main

// The API as an integrator meets it: both standard Go generators take
// api/openapi.yaml as shipped, what they produce compiles and vets, and a
// program written on the generated clients runs the README's flow against a
// real claimsvc (docs/design.md §2.9).

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// clientTestDir is the module the generated clients are compiled in: its
// go.mod and go.sum pin their runtime modules, and flow/ is the program.
const clientTestDir = "../../api/clienttest"

// TestGeneratedClients runs oapi-codegen and ogen (pinned in tools/go.mod)
// on the spec into a temporary copy of api/clienttest (the generated code is
// never committed), builds and vets it there, and runs the flow program
// against claimsvc and the ThingsBoard emulator.
//
// With CLAIMSVC_CLIENTTEST_TIDY=1 it also runs go mod tidy in that module and
// writes go.mod and go.sum back: do that after changing a generator's version.
func TestGeneratedClients(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go command on PATH to run the generators and build what they produce")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	for _, f := range []string{"go.mod", "go.sum", "flow/main.go"} {
		copyFile(t, filepath.Join(clientTestDir, f), filepath.Join(mod, f))
	}
	goCmd := func(dir string, extra []string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-mod=readonly"}, extra...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		t.Logf("go %s: %s", strings.Join(args[:min(len(args), 4)], " "), time.Since(start).Round(time.Millisecond))
		return out.String()
	}
	spec := filepath.Join(root, "api", "openapi.yaml")
	goCmd(root, nil, "tool", "-modfile=tools/go.mod", "oapi-codegen", "-generate", "types,client", "-package", "oapi",
		"-o", filepath.Join(mod, "oapi", "client.go"), spec)
	out := goCmd(root, nil, "tool", "-modfile=tools/go.mod", "ogen", "-package", "ogen", "-target", filepath.Join(mod, "ogen"), "-clean", spec)
	for _, bad := range []string{"not canonical", "unsupported", "ERROR"} {
		if strings.Contains(out, bad) {
			t.Errorf("ogen says %q about the spec:\n%s", bad, out)
		}
	}
	if os.Getenv("CLAIMSVC_CLIENTTEST_TIDY") == "1" {
		goCmd(mod, []string{"GOFLAGS=-mod=mod"}, "mod", "tidy")
		copyFile(t, filepath.Join(mod, "go.mod"), filepath.Join(clientTestDir, "go.mod"))
		copyFile(t, filepath.Join(mod, "go.sum"), filepath.Join(clientTestDir, "go.sum"))
	}
	goCmd(mod, nil, "vet", "./...")
	flow := filepath.Join(mod, "flow.bin")
	goCmd(mod, nil, "build", "-o", flow, "./flow")

	emu := startEmulator(t, "127.0.0.1:0")
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr(),
		"CLAIMSVC_TB_URL": emu.HTTPURL(), "CLAIMSVC_TB_API_KEY": emu.DemoAPIKey()})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, flow)
	cmd.Env = append(os.Environ(), "CLAIMSVC_URL="+svc.url, "CLAIMSVC_API_KEY="+testAPIKey)
	got, err := cmd.CombinedOutput()
	t.Logf("flow:\n%s", got)
	if err != nil {
		t.Fatalf("the flow on the generated clients failed: %v", err)
	}
	for _, want := range []string{"claim: 200 delivered", "replay: 200 Idempotent-Replayed=true", "key reused: 422 urn:claimsvc:problem:idempotency-key-reused",
		"hold rule: 409", "batch: 200 created=2 replayed=0 failed=0", "batch again (NDJSON): 200 created=0 replayed=2", "polled:", "ogen: hold rule 409"} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the flow did not say %q", want)
		}
	}
	if strings.Contains(string(got), testAPIKey) {
		t.Error("the flow printed the API key")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
