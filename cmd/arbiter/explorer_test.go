package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/arbiter-nba/arbiter/demo"
)

// The decision explorer's browser tests drive a real headless Chromium
// (Debian's chromium package) over the DevTools protocol with chromedp.
// With ARBITER_SCREENSHOTS=docs/explorer (a relative directory is the
// repository's) TestExplorer saves its screenshots there: that is how
// docs/explorer/*.png are made.

// explorerWait bounds each wait for the page: the server, the browser and
// the race detector share two CPUs in CI.
const explorerWait = time.Minute

// requireChromium returns the path of the browser to drive. Without one
// the test is skipped on a developer machine, and fails in CI, which
// installs it (.ci/run).
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; CI must install it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed; skipping the browser test (apt-get install chromium)")
	return ""
}

// browser is a headless Chromium tab, and the problems its page reported
// (uncaught exceptions, Content-Security-Policy violations).
type browser struct {
	ctx      context.Context
	mu       sync.Mutex
	problems []string
}

func newBrowser(t *testing.T, flags ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(requireChromium(t)),
		chromedp.WindowSize(1280, 900))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run its sandbox as root (CI's containers)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(opts, flags...)...)
	ctx, cancel := chromedp.NewContext(alloc)
	b := &browser{ctx: ctx}
	// Start the browser (without a timeout: it lives as long as ctx), and
	// collect what the page reports from then on.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		<-done
	})
	return b
}

// do runs steps, each wait bounded by explorerWait.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, explorerWait)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is the text an element shows.
func (b *browser) text(t *testing.T, selector string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, explorerWait)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("text of %s: %v", selector, err)
	}
	return s
}

// count is the number of elements selector matches now.
func (b *browser) count(t *testing.T, selector string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, explorerWait)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int]("document.querySelectorAll("+jsString(selector)+").length"))
	if err != nil {
		t.Fatalf("counting %s: %v", selector, err)
	}
	return n
}

// errors are the problems the page shows in its sections.
func (b *browser) errors(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, explorerWait)
	defer cancel()
	errs, err := chromedp.Run(ctx, chromedp.Evaluate[[]string]("[...document.querySelectorAll('.error')].map((e) => e.textContent)"))
	if err != nil {
		t.Fatalf("reading the page's errors: %v", err)
	}
	return errs
}

// checkClean fails the test if the page threw or broke its policy.
func (b *browser) checkClean(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		t.Errorf("the page reported: %s", p)
	}
}

// screenshot saves the whole page as name.png in $ARBITER_SCREENSHOTS,
// when it is set.
func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	dir := os.Getenv("ARBITER_SCREENSHOTS")
	if dir == "" {
		return
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join("..", "..", dir) // the test runs in cmd/arbiter
	}
	ctx, cancel := context.WithTimeout(b.ctx, explorerWait)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// lookUp types a recipient id into the page and submits it.
func (b *browser) lookUp(t *testing.T, id string) {
	t.Helper()
	b.do(t, "look up "+id,
		chromedp.WaitVisible(chromedp.CSS("#recipient")),
		chromedp.Clear(chromedp.CSS("#recipient")),
		chromedp.SendKeys(chromedp.CSS("#recipient"), id),
		chromedp.Click(chromedp.CSS("#lookup-form button[type=submit]")))
}

// useToken gives the page a bearer token.
func (b *browser) useToken(t *testing.T, token string) {
	t.Helper()
	b.do(t, "give the token",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SetValue(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#token-form button[type=submit]")))
}

// The explorer, against the demo without authentication on loopback: the
// page is served with its policy; a recipient looked up shows ranked
// actions with contribution bars, suppressions with their reasons, the
// consent ledger, touches and journeys; a why-not answer; and a past
// decision's receipt, opened by its id.
func TestExplorer(t *testing.T) {
	// The demo's rules, for its journeys (and no contact policy: quiet
	// hours would depend on the time of day the test runs at).
	ts := start(t, embedded, 50, "-http-listen", "127.0.0.1:0", "-rules", demoRulesFile)
	api := newHTTPAPI(t, ts, nil)
	hcp := demo.HCPID(42)

	// The page's files: the policy on each, the right types, no listing.
	for path, ctype := range map[string]string{
		"/explorer/":             "text/html",
		"/explorer/explorer.js":  "text/javascript",
		"/explorer/explorer.css": "text/css",
		"/explorer/favicon.svg":  "image/svg+xml",
	} {
		resp, err := api.client.Get(api.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Errorf("%s: HTTP %d, %s; want 200, %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ctype)
		}
		if got := resp.Header.Get("Content-Security-Policy"); got != explorerCSP {
			t.Errorf("%s: Content-Security-Policy %q, want %q", path, got, explorerCSP)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", path)
		}
	}
	if !strings.Contains(explorerCSP, "default-src 'self'") || strings.Contains(explorerCSP, "unsafe") {
		t.Errorf("the policy %q is not strict", explorerCSP)
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(noRedirect.CloseIdleConnections)
	if resp, err := noRedirect.Get(api.base + "/explorer"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/explorer/" {
		t.Errorf("/explorer: HTTP %d to %q, want a redirect to /explorer/", resp.StatusCode, resp.Header.Get("Location"))
	}

	// A consent change, so that the ledger holds a record beside the
	// demo's completeness marker.
	captured := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, body := api.do(t, "POST", "/v1/recipients/"+hcp+"/consent", `{"record": {"channel": "CHANNEL_SMS",
		"purpose": "PURPOSE_SERVICE", "status": "CONSENT_STATUS_OPT_IN", "captured_at": "`+captured+`",
		"source": "preference-centre", "captured_by": "explorer-test", "notice_version": "privacy-2026-03"}}`, ""); code != http.StatusOK {
		t.Fatalf("set consent: HTTP %d: %s", code, body)
	}

	b := newBrowser(t)
	b.do(t, "open the page", chromedp.Navigate("http://"+ts.HTTPAddr()+"/explorer/"))
	if state := b.text(t, "#token-state"); !strings.Contains(state, "No token") {
		t.Errorf("token state %q, want none", state)
	}
	b.lookUp(t, hcp)
	b.do(t, "wait for every section",
		chromedp.WaitVisible(chromedp.CSS("#actions .body :is(li.action, .error, .note)")),
		chromedp.WaitVisible(chromedp.CSS("#suppressions .body :is(table, .error, .note)")),
		chromedp.WaitVisible(chromedp.CSS("#consent .body :is(table, .error, .note)")),
		chromedp.WaitVisible(chromedp.CSS("#touches .body :is(ol.timeline, .error)")),
		chromedp.WaitVisible(chromedp.CSS("#touches .counters :is(table, .error, .note)")),
		chromedp.WaitVisible(chromedp.CSS("#journeys .body :is(table, .error, .note)")))
	if errs := b.errors(t); len(errs) > 0 {
		t.Fatalf("the page shows errors: %q", errs)
	}
	if title := b.text(t, "#recipient-title"); title != hcp {
		t.Errorf("title %q, want %s", title, hcp)
	}

	// Ranked actions, each with its reason, score and contribution bars.
	if n := b.count(t, "#actions li.action"); n < 1 || n > 5 {
		t.Errorf("%d ranked actions, want 1 to 5", n)
	}
	if n := b.count(t, "#actions li.action .reason"); n < 1 {
		t.Error("no reason in words for the ranked actions")
	}
	if n := b.count(t, "#actions li.action table.contributions svg.bar rect:is(.up, .down)"); n < 1 {
		t.Error("no contribution bar")
	}
	first := b.text(t, "#actions li.action")
	for _, want := range []string{"#1", "score", "propensity", "×"} {
		if !strings.Contains(first, want) {
			t.Errorf("first action %q: no %q", first, want)
		}
	}
	decisionID := b.text(t, "#decision-id")
	if decisionID == "" {
		t.Fatal("no decision id shown")
	}

	// Suppressions with their reasons in words: the push without consent,
	// the withdrawn claim; those that do not apply, folded away.
	supp := b.text(t, "#suppressions table.suppressed")
	for _, want := range []string{"push-congress-app", "No consent", "email-glucanor-withdrawn-claim", "Content not MLR-approved", "not by itself"} {
		if !strings.Contains(supp, want) {
			t.Errorf("suppressions: no %q in %q", want, supp)
		}
	}
	if n := b.count(t, "#suppressions details table.not-applicable tbody tr"); n < 1 {
		t.Error("no candidates that do not apply (NOT_ELIGIBLE)")
	}

	// The consent ledger: the demo's marker, then the opt-in above.
	if n := b.count(t, "#consent table.ledger tbody tr"); n < 2 {
		t.Errorf("%d ledger rows, want at least 2", n)
	}
	ledger := b.text(t, "#consent table.ledger")
	for _, want := range []string{"completeness marker", "opt in", "sms", "service", "preference-centre", "privacy-2026-03"} {
		if !strings.Contains(ledger, want) {
			t.Errorf("ledger: no %q in %q", want, ledger)
		}
	}

	// Touches (from the decision's receipt), counters, journeys.
	if n := b.count(t, "#touches ol.timeline li"); n < 1 {
		t.Error("no touch or event in the timeline")
	}
	if timeline := b.text(t, "#touches ol.timeline"); !strings.Contains(timeline, "touch, sent") {
		t.Errorf("timeline %q: no sent touch", timeline)
	}
	if n := b.count(t, "#touches table.counters tbody tr"); n < 1 {
		t.Error("no engagement counters")
	}
	if journeys := b.text(t, "#journeys table.journeys"); !strings.Contains(journeys, "Glucanor launch") || !strings.Contains(journeys, "active") {
		t.Errorf("journeys %q: want Glucanor launch, active", journeys)
	}
	b.screenshot(t, "decision")

	// Why not the push? A button per suppressed action.
	b.do(t, "ask why not",
		chromedp.Click(chromedp.CSS(`#suppressions button.why-not[data-action="push-congress-app"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#whynot .body :is(.answer[data-action="push-congress-app"], .error)`)))
	answer := b.text(t, "#whynot .body")
	for _, want := range []string{"Why not push-congress-app?", "may not go", "No consent", "does not clear by itself"} {
		if !strings.Contains(answer, want) {
			t.Errorf("why-not answer: no %q in %q", want, answer)
		}
	}
	b.screenshot(t, "whynot")

	// A past decision by its id: what it answered, and the evidence.
	b.do(t, "open the decision's receipt",
		chromedp.SendKeys(chromedp.CSS("#receipt-id"), decisionID),
		chromedp.Click(chromedp.CSS("#receipt-form button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#receipt .body :is(dl.facts, .error)")))
	receipt := b.text(t, "#receipt .body")
	for _, want := range []string{hcp, "decide", "What it answered", "Evidence"} {
		if !strings.Contains(receipt, want) {
			t.Errorf("receipt: no %q in %q", want, receipt)
		}
	}
	if n := b.count(t, "#receipt table.evidence tbody tr"); n < 1 {
		t.Error("no evidence rows in the receipt")
	}
	if n, m := b.count(t, "#receipt ol.answered li"), b.count(t, "#actions li.action"); n != m {
		t.Errorf("the receipt answered %d actions, the decision showed %d", n, m)
	}
	if errs := b.errors(t); len(errs) > 0 {
		t.Errorf("the page shows errors: %q", errs)
	}
	b.screenshot(t, "receipt")
	b.checkClean(t)
}

// With authentication, the page's calls carry the token it was given,
// and the token's roles and territories govern what it shows: none is
// 401; a rep tool's decides for its territory but may not read the
// consent ledger or the receipts (auditors'), and gets 404 for another
// territory's HCP. The token lasts for the tab's session.
func TestExplorerAuthentication(t *testing.T) {
	p := newTestPKI(t)
	ts := start(t, embedded, 50, append(p.flags(), "-http-listen", "127.0.0.1:0", "-rules", demoRulesFile)...)
	hcp := demo.HCPID(42)
	url := "https://" + ts.HTTPAddr() + "/explorer/"
	rep := func(territory string) string {
		return p.token(t, []string{"rep_tool"}, func(c jwt.MapClaims, _ map[string]any) { c["territories"] = []string{territory} })
	}
	// The test's certificate authority is not the browser's.
	b := newBrowser(t, chromedp.Flag("ignore-certificate-errors", true))

	b.do(t, "open the page", chromedp.Navigate(url))
	b.lookUp(t, hcp)
	b.do(t, "wait for the refusal", chromedp.WaitVisible(chromedp.CSS("#actions .body .error")))
	if msg := b.text(t, "#actions .body .error"); !strings.Contains(msg, "401") {
		t.Errorf("without a token: %q, want a 401", msg)
	}

	b.useToken(t, rep(demo.Territory(42)))
	if state := b.text(t, "#token-state"); !strings.Contains(state, "rep_tool") || !strings.Contains(state, demo.Territory(42)) {
		t.Errorf("token state %q: want its role and territory", state)
	}
	// A new page of the same tab keeps the token (session storage).
	b.do(t, "reload", chromedp.Navigate(url))
	b.lookUp(t, hcp)
	b.do(t, "wait for the rep tool's view",
		chromedp.WaitVisible(chromedp.CSS("#actions .body :is(li.action, .error)")),
		chromedp.WaitVisible(chromedp.CSS("#consent .body .error")),
		chromedp.WaitVisible(chromedp.CSS("#touches .body .error")),
		chromedp.WaitVisible(chromedp.CSS("#journeys .body :is(table, .error, .note)")))
	if n := b.count(t, "#actions li.action"); n < 1 {
		t.Errorf("rep tool of the HCP's territory: no ranked action; the page shows %q", b.errors(t))
	}
	if msg := b.text(t, "#consent .body .error"); !strings.Contains(msg, "GetConsentHistory") || !strings.Contains(msg, "403") {
		t.Errorf("rep tool reading the ledger: %q, want GetConsentHistory refused (403)", msg)
	}
	if msg := b.text(t, "#touches .body .error"); !strings.Contains(msg, "GetDecision") || !strings.Contains(msg, "403") {
		t.Errorf("rep tool reading the receipt: %q, want GetDecision refused (403)", msg)
	}
	if n := b.count(t, "#journeys table.journeys tbody tr"); n < 1 {
		t.Errorf("rep tool: no journeys; the page shows %q", b.errors(t))
	}

	b.useToken(t, rep(demo.Territory(43)))
	b.do(t, "reload", chromedp.Navigate(url))
	b.lookUp(t, hcp)
	b.do(t, "wait for the other territory's refusal", chromedp.WaitVisible(chromedp.CSS("#actions .body .error")))
	if msg := b.text(t, "#actions .body .error"); !strings.Contains(msg, "404") {
		t.Errorf("rep tool of another territory: %q, want 404", msg)
	}

	b.do(t, "forget the token", chromedp.Click(chromedp.CSS("#forget")))
	if state := b.text(t, "#token-state"); !strings.Contains(state, "No token") {
		t.Errorf("after Forget: token state %q", state)
	}
	b.checkClean(t)
}
