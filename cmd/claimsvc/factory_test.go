package main

// The factory's client commands (claim, import, labels, status) as a factory
// runs them: the claimsvc binary (this test binary, re-executed as main)
// against a real claimsvc, set up as an operator must (API keys and a data
// key), delivering to the ThingsBoard emulator.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	multiqr "github.com/makiuchi-d/gozxing/multi/qrcode"

	"github.com/claimsvc/claimsvc/internal/pgtest"
	"github.com/claimsvc/claimsvc/internal/tbemu"
)

// asMain is the variable that makes this test binary run claimsvc's main.
const asMain = "CLAIMSVC_TEST_RUN_MAIN"

// claimsvcCmd returns the claimsvc binary (this test binary run as main) with
// args, its environment given by env alone (plus PATH).
func claimsvcCmd(t *testing.T, ctx context.Context, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.Env = []string{asMain + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// runClaimsvc runs the binary to its end and returns its exit code and output.
func runClaimsvc(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := claimsvcCmd(t, ctx, env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// operator is a claimsvc set up as in production: an API key (its SHA-256 in
// CLAIMSVC_API_KEYS) and a data key, delivering to emu over MQTT with emu's
// REST API for the tracker.
type operator struct {
	svc *service
	key string
	emu *tbemu.Emulator
}

func startOperated(t *testing.T) *operator {
	t.Helper()
	emu := startEmulator(t, "127.0.0.1:0")
	key := randomHex(t, 24)
	sum := sha256.Sum256([]byte(key))
	data := make([]byte, 32)
	_, _ = rand.Read(data)
	env := map[string]string{
		"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + emu.MQTTAddr(),
		"CLAIMSVC_TB_URL": emu.HTTPURL(), "CLAIMSVC_TB_API_KEY": emu.DemoAPIKey(), "CLAIMSVC_TB_POLL_INTERVAL": "1s",
		"CLAIMSVC_API_KEYS": hex.EncodeToString(sum[:]), "CLAIMSVC_DATA_KEY": base64.StdEncoding.EncodeToString(data),
		"CLAIMSVC_LOG_LEVEL": "info",
	}
	return &operator{svc: startService(t, env), key: key, emu: emu}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// env is what a factory tool's environment holds.
func (o *operator) env() map[string]string {
	return map[string]string{"CLAIMSVC_URL": o.svc.url, "CLAIMSVC_API_KEY": o.key}
}

// devices adds n devices to the emulator and writes them as a devices CSV
// (token, deviceName, durationMs; no secrets: --generate-secrets).
func (o *operator) devices(t *testing.T, prefix string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("deviceName,token,durationMs\n")
	for i := range n {
		name, token := fmt.Sprintf("%s %04d", prefix, i), fmt.Sprintf("%s_TOKEN_%06d", strings.ToUpper(prefix), i)
		if _, err := o.emu.AddDevice(name, token); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s,%s,3600000\n", name, token)
	}
	path := filepath.Join(t.TempDir(), "devices.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// total asks GET /stats (with the key) how many claims there are.
func (o *operator) stats(t *testing.T) map[string]any {
	t.Helper()
	code, out, errs := runClaimsvc(t, o.env(), "status", "--json")
	if code != 0 {
		t.Fatalf("status: %d %s %s", code, out, errs)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

func readResults(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		out = append(out, m)
	}
	return out
}

// TestImportKilledHalfwayThenRunAgain: a factory imports 500 devices with
// generated secrets; the import is killed (SIGKILL) half way; the same
// command again ends with exactly 500 claims, each with the secret of the
// results file (a new secret would have been refused with 409).
func TestImportKilledHalfwayThenRunAgain(t *testing.T) {
	t.Parallel()
	op := startOperated(t)
	csvPath := op.devices(t, "Line", 500)
	results := strings.TrimSuffix(csvPath, ".csv") + ".results.csv"

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := claimsvcCmd(t, ctx, op.env(), "import", "--generate-secrets", "--chunk", "20", csvPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sent := regexp.MustCompile(`^import: (\d+)/500 rows sent`)
	killedAt := 0
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if m := sent.FindStringSubmatch(sc.Text()); m != nil {
			if n, _ := strconv.Atoi(m[1]); n >= 240 {
				killedAt = n
				_ = cmd.Process.Kill()
				break
			}
		}
	}
	_ = cmd.Wait()
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	if killedAt == 0 || killedAt == 500 {
		t.Fatalf("the import was not killed half way (at %d rows)", killedAt)
	}
	before := op.stats(t)["total"].(float64)
	t.Logf("killed after %d rows were answered; claimsvc holds %v claims", killedAt, before)
	if before < float64(killedAt) || before >= 500 {
		t.Fatalf("claims after the kill: %v", before)
	}
	// The secrets were on disk before anything was sent.
	pre := readResults(t, results)
	if len(pre) != 500 || pre[0]["secretKey"] == "" || pre[499]["secretKey"] == "" {
		t.Fatalf("results file after the kill: %d rows %v", len(pre), pre[0])
	}

	code, out, errs := runClaimsvc(t, op.env(), "import", "--generate-secrets", "--chunk", "20", csvPath)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errs)
	}
	m := regexp.MustCompile(`500 rows in .*: (\d+) created, (\d+) already stored, 0 refused, 0 invalid, 0 not sent`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("second run's summary:\n%s", out)
	}
	created, replayed := atoi(m[1]), atoi(m[2])
	if created+replayed != 500 || float64(replayed) != before {
		t.Fatalf("second run: %d created, %d already stored (claimsvc held %v)", created, replayed, before)
	}
	if st := op.stats(t); st["total"] != float64(500) {
		t.Fatalf("claims after the second run: %v", st["total"])
	}
	post := readResults(t, results)
	ids := map[string]bool{}
	for i, r := range post {
		if r["secretKey"] != pre[i]["secretKey"] || r["claimId"] == "" || (r["result"] != "created" && r["result"] != "replayed") ||
			r["tokenHint"] == "" || strings.Contains(r["tokenHint"], "TOKEN_0") {
			t.Fatalf("row %d: %v (before: %v)", i, r, pre[i])
		}
		ids[r["claimId"]] = true
	}
	if len(ids) != 500 {
		t.Fatalf("%d distinct claims", len(ids))
	}
	// And once more: nothing new.
	if code, out, _ := runClaimsvc(t, op.env(), "import", "--generate-secrets", csvPath); code != 0 || !strings.Contains(out, "0 created, 500 already stored") {
		t.Fatalf("third run: %d %s", code, out)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// TestImportReportsBadRowsAndGoesOn: bad rows by line number, the others
// stored, exit 6; without the API key, 401 and exit 1.
func TestImportReportsBadRowsAndGoesOn(t *testing.T) {
	t.Parallel()
	op := startOperated(t)
	path := filepath.Join(t.TempDir(), "mixed.csv")
	body := "token,secretKey,delivery,deviceName\n" +
		"DHT11_DEMO_TOKEN,s1,,\n" +
		"bad token,s2,,\n" +
		"T1_TEST_TOKEN,s3,attribute,\n" + // attribute without a device name
		"T2_TEST_TOKEN,s4,bogus,\n" +
		"RASPBERRY_PI_DEMO_TOKEN,s5,mqtt,Raspberry Pi Demo Device\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runClaimsvc(t, op.env(), "import", path)
	if code != 6 || !strings.Contains(out, "5 rows in") || !strings.Contains(out, "2 created") || !strings.Contains(out, "3 invalid") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"line 3: token", "line 4: deviceName", "line 5: delivery"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	res := readResults(t, strings.TrimSuffix(path, ".csv")+".results.csv")
	if len(res) != 5 || res[0]["result"] != "created" || res[1]["result"] != "invalid" || res[4]["result"] != "created" || res[0]["secretKey"] != "" {
		t.Fatalf("results: %v", res)
	}
	noKey := op.env()
	delete(noKey, "CLAIMSVC_API_KEY")
	if code, out, errs := runClaimsvc(t, noKey, "status"); code != 1 || !strings.Contains(errs, "401") {
		t.Fatalf("status without a key: %d %s %s", code, out, errs)
	}
	if code, _, errs := runClaimsvc(t, map[string]string{"CLAIMSVC_URL": op.svc.url, "CLAIMSVC_API_KEY": "wrong"}, "status"); code != 1 || !strings.Contains(errs, "403") {
		t.Fatalf("status with a wrong key: %d %s", code, errs)
	}
	if code, out, _ := runClaimsvc(t, op.env(), "status"); code != 0 || !regexp.MustCompile(`(?m)^\s+pending\s+\d+`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^\s+total\s+2\b`).MatchString(out) {
		t.Fatalf("status: %d\n%s", code, out)
	}
}

// TestClaimWaitExitCodes: claim --wait exits 0 on delivered, 4 on rejected,
// and 1 on a 409; the secret and the token never appear in the output.
func TestClaimWaitExitCodes(t *testing.T) {
	t.Parallel()
	op := startOperated(t)
	code, out, errs := runClaimsvc(t, op.env(), "claim", "--wait", "10s", "--device-name", "DHT11 Demo Device", "--delivery", "attribute",
		"--duration", "7d", "--secret", "factory-secret-9", "DHT11_DEMO_TOKEN")
	if code != 0 || !regexp.MustCompile(`(?m)^status\s+delivered$`).MatchString(out) || strings.Contains(out+errs, "factory-secret-9") ||
		strings.Contains(out+errs, "DHT11_DEMO_TOKEN") || !strings.Contains(out, "DHT1…EN") {
		t.Fatalf("delivered: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = runClaimsvc(t, op.env(), "claim", "--wait", "10s", "--json", "NO_SUCH_DEVICE_TOKEN_1")
	var v map[string]any
	if code != 4 || json.Unmarshal([]byte(out), &v) != nil || v["status"] != "rejected" {
		t.Fatalf("rejected: exit %d\n%s\n%s", code, out, errs)
	}
	// The same command again: the same claim (a replay), exit 0.
	code, out, _ = runClaimsvc(t, op.env(), "claim", "--wait", "10s", "--device-name", "DHT11 Demo Device", "--delivery", "attribute",
		"--duration", "7d", "--secret", "factory-secret-9", "DHT11_DEMO_TOKEN")
	if code != 0 || !strings.Contains(out, "the same request was made before") {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	// A device-side claim (its secret read from a file, out of the process
	// list), then another secret while it is held: claimsvc refuses (409:
	// ThingsBoard would ignore it), exit 1.
	secretFile := filepath.Join(t.TempDir(), "secret.txt")
	if err := os.WriteFile(secretFile, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runClaimsvc(t, op.env(), "claim", "--wait", "10s", "--json", "--secret-file", secretFile, "RASPBERRY_PI_DEMO_TOKEN")
	if code != 0 || !strings.Contains(out, `"hasSecret": true`) {
		t.Fatalf("mqtt: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runClaimsvc(t, op.env(), "claim", "--wait", "10s", "--secret", "other", "RASPBERRY_PI_DEMO_TOKEN")
	if code != 1 || !strings.Contains(errs, "409") {
		t.Fatalf("conflict: exit %d\n%s", code, errs)
	}
	// A generated secret is printed with the claim, for the label, and on
	// stderr before the request (an answer lost after the commit must not
	// lose it); the token is read from stdin.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := claimsvcCmd(t, ctx, op.env(), "claim", "--generate-secret", "-")
	cmd.Stdin = strings.NewReader("T1_TEST_TOKEN\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	raw, err := cmd.Output()
	printed := regexp.MustCompile(`(?m)^secret\s+([2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4}-[2-9A-Z]{4})\s+\(generated`).FindSubmatch(raw)
	if err != nil || printed == nil || !regexp.MustCompile(`(?m)^status\s+pending$`).Match(raw) {
		t.Fatalf("generated: %v\n%s", err, raw)
	}
	if !strings.HasPrefix(stderr.String(), "generated secret: "+string(printed[1])) {
		t.Fatalf("the generated secret is not on stderr first: %q", stderr.String())
	}
	if code, _, errs := runClaimsvc(t, op.env(), "claim"); code != 2 || !strings.Contains(errs, "TOKEN") {
		t.Fatalf("usage: %d %s", code, errs)
	}
}

// TestLabelsQRCodesDecodeToEachRow prints labels for the results of an
// import with generated secrets, rasterises the PDF as a printer would
// (pdftoppm) and decodes every QR code back to its row.
func TestLabelsQRCodesDecodeToEachRow(t *testing.T) {
	t.Parallel()
	pdftoppm, err := exec.LookPath("pdftoppm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("pdftoppm (Debian's poppler-utils) is missing: scripts/deps.sh installs it")
		}
		t.Skip("needs pdftoppm (Debian's poppler-utils; sudo scripts/deps.sh)")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "devices.results.csv")
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"row", "deviceName", "tokenHint", "claimId", "result", "status", "problem", "secretKey"})
	want := map[string]bool{}
	for i := range 30 {
		name, secret := fmt.Sprintf("Thermostat \"T%02d\" & Co", i), fmt.Sprintf("S%02d-%s", i, randomHex(t, 4))
		_ = w.Write([]string{strconv.Itoa(i + 2), name, fmt.Sprintf("TOKE…%02d", i), "", "created", "pending", "", secret})
		q, _ := json.Marshal(map[string]string{"deviceName": name, "secretKey": secret})
		want[string(q)] = true
	}
	// A row claimsvc refused has a secret ThingsBoard does not: no label.
	_ = w.Write([]string{"40", "Refused One", "TOKE…99", "", "refused", "", "conflict", "SECRET-NOT-STORED"})
	w.Flush()
	if err := os.WriteFile(in, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "labels.pdf")
	code, stdout, errs := runClaimsvc(t, nil, "labels", "--grid", "3x7", in, "-o", out)
	if code != 6 || !strings.Contains(stdout, "30 labels on 2 A4 pages") || !strings.Contains(errs, "line 32: claimsvc did not store this claim") {
		t.Fatalf("labels: %d %s %s", code, stdout, errs)
	}
	got := decodeQRCodes(t, pdftoppm, out)
	for _, q := range got {
		// The JSON's keys may come in any order: compare as maps.
		var m map[string]string
		if err := json.Unmarshal([]byte(q), &m); err != nil {
			t.Fatalf("QR code %q is not JSON", q)
		}
		norm, _ := json.Marshal(m)
		if !want[string(norm)] {
			t.Errorf("QR code %q is no row's", q)
		}
		delete(want, string(norm))
	}
	if len(want) != 0 {
		t.Fatalf("%d rows without a readable QR code (read %d)", len(want), len(got))
	}

	// A URL of the company's own claim page, US Letter.
	code, _, errs = runClaimsvc(t, nil, "labels", "--paper", "Letter", "--grid", "2x5",
		"--qr-template", "https://iot.example.com/claim?device={deviceName}&secret={secretKey}", "-o", out, in)
	if code != 6 {
		t.Fatalf("labels with a template: %d %s", code, errs)
	}
	urls := decodeQRCodes(t, pdftoppm, out)
	if len(urls) != 30 || !strings.HasPrefix(urls[0], "https://iot.example.com/claim?device=Thermostat+%22T") {
		t.Fatalf("template codes: %d %q", len(urls), urls[:min(2, len(urls))])
	}
}

// decodeQRCodes rasterises every page of pdf at 150 dpi and returns every QR
// code found, sorted.
func decodeQRCodes(t *testing.T, pdftoppm, pdf string) []string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(pdftoppm, "-r", "150", "-png", pdf, filepath.Join(dir, "page")).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v %s", err, out)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "page*.png"))
	if len(pages) == 0 {
		t.Fatal("pdftoppm made no page")
	}
	var codes []string
	for _, p := range pages {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		bmp, err := gozxing.NewBinaryBitmapFromImage(img)
		if err != nil {
			t.Fatal(err)
		}
		res, err := multiqr.NewQRCodeMultiReader().DecodeMultiple(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true})
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(p), err)
		}
		for _, r := range res {
			codes = append(codes, r.GetText())
		}
	}
	sort.Strings(codes)
	return codes
}
