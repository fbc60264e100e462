package main

// The operator console driven as a person drives it: headless Chromium
// (Debian's chromium, through chromedp) against a real claimsvc set up as an
// operator must (API keys, a data key), delivering to the ThingsBoard
// emulator. Screenshots of each page are saved under the test's temp dir
// (the path is logged); CLAIMSVC_SCREENSHOTS=DIR keeps them in DIR instead
// (`make screenshots` refreshes docs/console.png that way).

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/claimsvc/claimsvc/internal/pgtest"
)

// browser starts headless Chromium with its own profile, reaching nothing
// but 127.0.0.1, or skips (fails under CI=true) when it is not installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing: scripts/deps.sh installs it (Debian's chromium)")
		}
		t.Skip("needs Chromium (Debian's chromium; sudo scripts/deps.sh)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 860),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel2 := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel2)
	if err := chromedp.Do(bctx); err != nil { // starts the browser: no timeout on this context
		t.Fatalf("start %s: %v", exe, err)
	}
	// Confirmations (cancel, retry) are accepted as a person would.
	dialogs := chromedp.Events(bctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(bctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	ctx, cancel3 := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(cancel3)
	return ctx
}

// screens saves full-page screenshots, numbered in order.
type screens struct {
	t   *testing.T
	dir string
	n   int
}

func newScreens(t *testing.T) *screens {
	dir := os.Getenv("CLAIMSVC_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", dir)
	return &screens{t: t, dir: dir}
}

func (s *screens) take(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, t)
		if err != nil {
			return err
		}
		s.n++
		return os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name)), png, 0o644)
	})
}

// waitText waits until sel's text matches re (the page refreshes itself).
func waitText(sel string, re *regexp.Regexp, within time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		deadline := time.Now().Add(within)
		var last string
		for {
			txt, err := chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel))(ctx, t)
			if err == nil && re.MatchString(txt) {
				return nil
			}
			last = txt
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %q after %s, want %s", sel, last, within, re)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})
}

// TestConsoleInTheBrowser: log in with the API key, upload a CSV of 50
// devices, watch them become delivered, open one, make a claim that cannot be
// sent (the MQTT broker is away) and cancel it, and see the cancellation in
// its audit trail, by the console.
func TestConsoleInTheBrowser(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	shots := newScreens(t)

	emu := startEmulator(t, "127.0.0.1:0")
	key := randomHex(t, 24)
	sum := sha256.Sum256([]byte(key))
	data := make([]byte, 32)
	_, _ = rand.Read(data)
	// Attribute claims go to ThingsBoard's REST API (the emulator); the
	// MQTT broker is away, so an mqtt claim stays pending.
	svc := startService(t, map[string]string{
		"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_MQTT_URL": "tcp://" + freeAddr(t),
		"CLAIMSVC_TB_URL": emu.HTTPURL(), "CLAIMSVC_TB_API_KEY": emu.DemoAPIKey(), "CLAIMSVC_TB_POLL_INTERVAL": "1s",
		"CLAIMSVC_API_KEYS": hex.EncodeToString(sum[:]), "CLAIMSVC_DATA_KEY": base64.StdEncoding.EncodeToString(data),
		"CLAIMSVC_LOG_LEVEL": "info", "CLAIMSVC_MQTT_CONNECT_TIMEOUT": "1s",
	})
	var csv strings.Builder
	csv.WriteString("token,deviceName,secretKey,durationMs,delivery\n")
	for i := range 50 {
		name, token := fmt.Sprintf("Console Sensor %02d", i), fmt.Sprintf("CONSOLE_SENSOR_TOKEN_%02d", i)
		if _, err := emu.AddDevice(name, token); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&csv, "%s,%s,SECRET-%02d-%s,7d,attribute\n", token, name, i, randomHex(t, 3))
	}
	csvPath := filepath.Join(t.TempDir(), "line-7.csv")
	if err := os.WriteFile(csvPath, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	run := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	value := func(a chromedp.Action[string]) string {
		t.Helper()
		v, err := chromedp.Run(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	run("login page",
		chromedp.Navigate(svc.url+"/ui/claims"),
		chromedp.WaitVisible(chromedp.CSS(`#key`)),
		shots.take("login"))
	if loc := value(chromedp.Location()); !strings.Contains(loc, "/ui/login?next=") {
		t.Fatalf("without a session: %s", loc)
	}
	run("wrong key",
		chromedp.SendKeys(chromedp.CSS(`#key`), "not-the-key"),
		chromedp.Submit(chromedp.CSS(`#key`)),
		waitText(`.flash.err`, regexp.MustCompile(`not accepted`), 10*time.Second))
	run("log in",
		chromedp.SendKeys(chromedp.CSS(`#key`), key),
		chromedp.Submit(chromedp.CSS(`#key`)),
		chromedp.WaitVisible(chromedp.CSS(`form.filters`)), // back where it was going
		chromedp.Navigate(svc.url+"/ui/import"),
		chromedp.WaitVisible(chromedp.CSS(`#file`)),
		chromedp.SetUploadFiles(chromedp.CSS(`#file`), []string{csvPath}),
		chromedp.Submit(chromedp.CSS(`#file`)),
		chromedp.WaitVisible(chromedp.CSS(`progress.bar`)),
		waitText(`#import-state`, regexp.MustCompile(`^done$`), 30*time.Second),
		waitText(`[data-status=delivered]`, regexp.MustCompile(`^50$`), 60*time.Second),
		shots.take("import"))
	t.Logf("import page: %s", value(chromedp.Location()))

	run("the claims, by name",
		chromedp.Navigate(svc.url+"/ui/claims?device=console+sensor+4"),
		chromedp.WaitVisible(chromedp.CSS(`table.list`)),
		shots.take("claims"),
		chromedp.Click(chromedp.CSS(`table.list tbody tr:first-child td:nth-child(2) a`)),
		chromedp.WaitVisible(chromedp.CSS(`ol.timeline`)),
		waitText(`h1`, regexp.MustCompile(`delivered\s*Console Sensor 49`), 10*time.Second),
		waitText(`ol.timeline`, regexp.MustCompile(`accepted\s*by console \(key [0-9a-f]{8}\)`), 5*time.Second),
		shots.take("delivered-claim"))

	run("a new claim that stays pending",
		chromedp.Navigate(svc.url+"/ui/new"),
		chromedp.WaitVisible(chromedp.CSS(`#token`)),
		chromedp.SendKeys(chromedp.CSS(`#token`), "T2_TEST_TOKEN"),
		chromedp.SendKeys(chromedp.CSS(`#deviceName`), "Thermostat T2"),
		chromedp.SendKeys(chromedp.CSS(`#secretKey`), "console-secret-77"),
		chromedp.SetValue(chromedp.CSS(`#delivery`), "mqtt"),
		shots.take("new-claim"),
		chromedp.Submit(chromedp.CSS(`#token`)),
		waitText(`.flash.ok`, regexp.MustCompile(`stored`), 10*time.Second),
		waitText(`h1`, regexp.MustCompile(`pending\s*Thermostat T2`), 5*time.Second))
	if html := value(chromedp.OuterHTML(chromedp.CSS(`html`))); strings.Contains(html, "T2_TEST_TOKEN") || strings.Contains(html, "console-secret-77") {
		t.Fatal("the claim's page shows the token or the secret")
	}
	run("cancel it",
		chromedp.Click(chromedp.CSS(`form[action$="/cancel"] button`)),
		waitText(`.flash.ok`, regexp.MustCompile(`cancelled`), 10*time.Second),
		waitText(`h1`, regexp.MustCompile(`cancelled\s*Thermostat T2`), 5*time.Second),
		waitText(`ol.timeline li:last-child`, regexp.MustCompile(`cancelled\s*by console \(key [0-9a-f]{8}\)`), 5*time.Second),
		shots.take("cancelled-claim"))

	run("overview",
		chromedp.Navigate(svc.url+"/ui/"),
		waitText(`.tile.s-delivered .n`, regexp.MustCompile(`^50$`), 10*time.Second),
		waitText(`.tile.s-cancelled .n`, regexp.MustCompile(`^1$`), 5*time.Second),
		waitText(`ul.deps`, regexp.MustCompile(`mqtt down`), 10*time.Second),
		shots.take("overview"))
	html := value(chromedp.OuterHTML(chromedp.CSS(`html`)))
	for i := range 50 {
		if strings.Contains(html, fmt.Sprintf("CONSOLE_SENSOR_TOKEN_%02d", i)) {
			t.Fatal("the overview shows a token")
		}
	}
	// The keyboard: "g c" goes to the claims, "j" selects the first row, Enter opens it.
	run("keyboard",
		chromedp.KeyEvent("g"), chromedp.KeyEvent("c"),
		chromedp.WaitVisible(chromedp.CSS(`form.filters`)),
		chromedp.KeyEvent("j"), chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(chromedp.CSS(`ol.timeline`)))
	if loc := value(chromedp.Location()); !regexp.MustCompile(`/ui/claims/[0-9a-f-]{36}$`).MatchString(loc) {
		t.Fatalf("keyboard navigation ended at %s", loc)
	}
	// The audit trail says it through the API too.
	if files, _ := filepath.Glob(filepath.Join(shots.dir, "*.png")); len(files) < 7 {
		t.Fatalf("%d screenshots", len(files))
	}
	run("log out",
		chromedp.Click(chromedp.CSS(`.who form button`)),
		chromedp.WaitVisible(chromedp.CSS(`#key`)))
}

// TestConsoleDemoNeedsNoLogin is the demo case: no API key configured, the
// console is open (as the API's operator routes are), still with CSRF on
// its forms, and acts as "console".
func TestConsoleDemoNeedsNoLogin(t *testing.T) {
	t.Parallel()
	svc := startService(t, map[string]string{"CLAIMSVC_DATABASE_URL": pgtest.NewDatabase(t), "CLAIMSVC_DEMO": "true",
		"CLAIMSVC_DEMO_MQTT_ADDR": freeAddr(t), "CLAIMSVC_DEMO_HTTP_ADDR": freeAddr(t), "CLAIMSVC_API_KEYS": ""})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		t.Helper()
		res, err := c.Get(svc.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	code, body := get("/ui/new")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("new claim form: %d", code)
	}
	form := url.Values{"token": {"DHT11_DEMO_TOKEN"}, "secretKey": {"demo-console"}, "deviceName": {"DHT11 Demo Device"}}
	res, err := c.PostForm(svc.url+"/ui/new", form) // no CSRF token: refused
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("without CSRF: %d", res.StatusCode)
	}
	form.Set("csrf", m[1])
	res, err = c.PostForm(svc.url+"/ui/new", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	id := regexp.MustCompile(`/ui/claims/([0-9a-f-]{36})\?done=created`).FindStringSubmatch(res.Request.URL.String())
	if res.StatusCode != 200 || id == nil || strings.Contains(string(b), "DHT11_DEMO_TOKEN") || strings.Contains(string(b), "demo-console") {
		t.Fatalf("created: %d %s", res.StatusCode, res.Request.URL)
	}
	v := svc.waitStatus(t, id[1], "delivered", 10*time.Second)
	_, events := svc.get(t, "/claims/"+id[1]+"/events")
	if v["deviceName"] != "DHT11 Demo Device" || !strings.Contains(events, `"kind":"accepted","actor":"console"`) {
		t.Fatalf("claim %v, events %s", v, events)
	}
}
