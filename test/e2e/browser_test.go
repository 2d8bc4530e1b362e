package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// The status page in a real headless Chromium (Debian's): log in through the form, see the matrix
// agree with the API cell by cell, see it follow a resource created and then deleted through the
// API without a reload, filter it, open a resource's page (replicas, events, the link to its
// workflow in the Temporal Web UI, which opens there), see an action appear live, and log out.
// With CHEOPS_UI_SCREENSHOT=file.png it also saves a screenshot of the matrix (the README's).
func TestUIStatusPage(t *testing.T) {
	ctx := context.Background()
	a := post(t, client.ResourceRequest{Name: "ui-a", Manifest: raw(configMap("ui-a", "1")), Scope: onSites("site-1", "site-2", "slow-3")})
	// A kind no site serves: its replica never becomes Ready, in whatever state cheops says.
	odd := post(t, client.ResourceRequest{Name: "ui-odd", Manifest: raw(map[string]any{"apiVersion": "nowhere.example.com/v1", "kind": "Gadget",
		"metadata": map[string]any{"name": "g", "namespace": "default"}}), Scope: onSites("site-2")})
	// A Deployment whose pods never run: Applied, not Ready, on site-1 (kwok) and site-2 (no controllers).
	web := post(t, client.ResourceRequest{Name: "ui-web", Manifest: raw(deployment("ui-web", harness.NeverPullsImage, 1)), Scope: onSites("site-1", "site-2")})
	defer func() {
		_, _ = env.client.DeleteResource(ctx, odd.ID, false)
		_, _ = env.client.DeleteResource(ctx, web.ID, false)
	}()
	a = waitReady(t, a.ID, 1)
	waitFor(t, odd.ID, time.Minute, "recorded on site-2", func(r resource, _ int) bool { return len(r.Replicas) == 1 })
	waitFor(t, web.ID, time.Minute, "Applied on both sites", func(r resource, _ int) bool {
		return len(r.Replicas) == 2 && r.Replicas[0].State == cheops.ReplicaApplied && r.Replicas[1].State == cheops.ReplicaApplied
	})

	b := newBrowser(t)
	start := time.Now()
	browse(t, b, chromedp.Navigate(env.api+"/ui"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	if loc := value(t, b, chromedp.Location()); !strings.HasSuffix(loc, "/ui/login") {
		t.Fatalf("not logged in, /ui led to %s; want the login form", loc)
	}
	browse(t, b, chromedp.SendKeys(chromedp.CSS(`input[name=token]`), env.cheops.Token), chromedp.Submit(chromedp.CSS(`form.login`)),
		chromedp.WaitVisible(chromedp.CSS(`#matrix`)))
	waitPage(t, b, `document.getElementById('live').textContent.startsWith('live')`, 20*time.Second, "the page live")
	t.Logf("logged in and live in %s", time.Since(start).Round(time.Millisecond))

	// The columns are the API's sites, and each cell the API's replica on that site.
	sites, err := env.client.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, s := range sites {
		want = append(want, s.Name)
	}
	const columns = `Array.from(document.querySelectorAll('th.site')).map(th => th.dataset.site)`
	cols := value(t, b, chromedp.Evaluate[[]string](columns))
	if !slices.Equal(cols, want) {
		t.Fatalf("columns %v; the API's sites are %v", cols, want)
	}
	matchesAPI := func(name string) {
		t.Helper()
		waitPage(t, b, fmt.Sprintf(`!!document.querySelector('tr[data-resource="%s"]')`, name), 30*time.Second, name+"'s row")
		// A cell may be a moment behind the API: compare until they agree, or fail showing both.
		var got, api map[string]string
		for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(300 * time.Millisecond) {
			r, err := env.client.GetResource(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			api = map[string]string{}
			for _, s := range cols {
				rep, _ := r.Replica(s)
				api[s] = string(rep.State)
			}
			got = value(t, b, chromedp.Evaluate[map[string]string](fmt.Sprintf(`Object.fromEntries(Array.from(document.querySelectorAll('tr[data-resource="%s"] td[data-site]')).map(td => [td.dataset.site, td.dataset.state]))`, name)))
			if fmt.Sprint(got) == fmt.Sprint(api) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's row shows %v; the API says %v", name, got, api)
			}
		}
	}
	matchesAPI("ui-a")
	matchesAPI("ui-odd")
	matchesAPI("ui-web")
	if r, _ := get(t, odd.ID); r.State == cheops.ResourceReady {
		t.Fatalf("ui-odd is Ready: %+v", r)
	}

	// Live: a resource created through the API appears, and goes once deleted, with no reload.
	value(t, b, chromedp.Evaluate[bool](`window.sameDocument = true`))
	created := time.Now()
	c := post(t, client.ResourceRequest{Name: "ui-b", Manifest: raw(configMap("ui-b", "1")), Scope: onSites("site-3")})
	waitPage(t, b, `!!document.querySelector('tr[data-resource="ui-b"]')`, 30*time.Second, "ui-b's row")
	t.Logf("a new resource's row appeared %s after its POST", time.Since(created).Round(time.Millisecond))
	waitReady(t, c.ID, 1)
	waitPage(t, b, `!!document.querySelector('tr[data-resource="ui-b"] td[data-site="site-3"][data-state="Ready"]')`, 30*time.Second, "ui-b Ready on site-3")
	matchesAPI("ui-b")
	if path := os.Getenv("CHEOPS_UI_SCREENSHOT"); path != "" {
		browse(t, b, chromedp.EmulateViewport(1000, 400))
		png := value(t, b, chromedp.FullScreenshot(100))
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := env.client.DeleteResource(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	waitPage(t, b, `!document.querySelector('tr[data-resource="ui-b"]')`, 2*time.Minute, "ui-b's row gone")
	waitPage(t, b, `window.sameDocument === true`, time.Second, "the same document (no reload)")

	// Filtered by a label selector: the region=eu sites' columns only.
	var eu []string
	for _, s := range sites {
		if s.Labels["region"] == "eu" {
			eu = append(eu, s.Name)
		}
	}
	browse(t, b, chromedp.Navigate(env.api+"/ui?selector="+url.QueryEscape("region=eu")), chromedp.WaitVisible(chromedp.CSS(`#matrix`)))
	if cols = value(t, b, chromedp.Evaluate[[]string](columns)); !slices.Equal(cols, eu) {
		t.Fatalf("region=eu: columns %v, want %v", cols, eu)
	}

	// The resource's page: its replicas as the API has them, its events, its workflow.
	// The matrix's link is followed by its href: a live update may replace the row between finding
	// the link and clicking it (seen in CI: "Could not find node with given id").
	browse(t, b, chromedp.Navigate(env.api+"/ui"), chromedp.WaitVisible(chromedp.CSS(`tr[data-resource="ui-a"] a`)))
	link := value(t, b, chromedp.Evaluate[string](`document.querySelector('tr[data-resource="ui-a"] a').href`))
	if !strings.HasSuffix(link, "/ui/resources/"+a.ID) {
		t.Fatalf("ui-a's link: %q, want /ui/resources/%s", link, a.ID)
	}
	browse(t, b, chromedp.Navigate(link), chromedp.WaitVisible(chromedp.CSS(`table.replicas`)))
	reps := value(t, b, chromedp.Evaluate[map[string]string](`Object.fromEntries(Array.from(document.querySelectorAll('table.replicas tbody tr')).map(tr => [tr.dataset.site, tr.dataset.state]))`))
	a, _ = get(t, a.ID)
	apiReps := map[string]string{}
	for _, rep := range a.Replicas {
		apiReps[rep.Site] = string(rep.State)
	}
	if fmt.Sprint(reps) != fmt.Sprint(apiReps) {
		t.Fatalf("ui-a's page shows replicas %v; the API says %v", reps, apiReps)
	}
	events := value(t, b, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('tr[data-event]')).map(tr => tr.dataset.event)`))
	apiEvents, err := env.client.Events(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != min(len(apiEvents), 50) || !slices.Contains(events, "Created") || !slices.Contains(events, "Applied") {
		t.Fatalf("ui-a's page shows events %v; the API has %d", events, len(apiEvents))
	}
	href := value(t, b, chromedp.AttributeValue(chromedp.CSS(`a.workflow`), "href")).Value
	wantHref := fmt.Sprintf("http://127.0.0.1:%d/namespaces/default/workflows/resource-%s", env.cheops.UIPort, a.ID)
	if href != wantHref {
		t.Fatalf("workflow link %q, want %q", href, wantHref)
	}
	// An operator's action shows up on the open page.
	if _, err := env.client.Act(ctx, a.ID, client.Pause); err != nil {
		t.Fatal(err)
	}
	waitPage(t, b, `!!document.querySelector('tr[data-event="ActionRequested"]')`, 30*time.Second, "the pause in the events")
	if _, err := env.client.Act(ctx, a.ID, client.Resume); err != nil {
		t.Fatal(err)
	}
	// The link opens the workflow in the Temporal Web UI.
	browse(t, b, chromedp.Navigate(href))
	waitPage(t, b, fmt.Sprintf(`document.body.innerText.includes('resource-%s')`, a.ID), time.Minute, "the workflow in the Temporal Web UI")

	// Logging out ends it: /ui leads to the form again.
	browse(t, b, chromedp.Navigate(env.api+"/ui"), chromedp.WaitVisible(chromedp.CSS(`#matrix`)), chromedp.Click(chromedp.CSS(`header form button`)),
		chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)), chromedp.Navigate(env.api+"/ui"), chromedp.WaitVisible(chromedp.CSS(`input[name=token]`)))
	if loc := value(t, b, chromedp.Location()); !strings.HasSuffix(loc, "/ui/login") {
		t.Fatalf("after logging out, /ui led to %s", loc)
	}
	t.Logf("browsed in %s", time.Since(start).Round(time.Millisecond))
}

// newBrowser starts a headless Chromium for the test, closed at its end.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := harness.Chromium()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.NoSandbox, // root, in a container
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-gpu", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// browse runs actions in the browser, failing the test after a minute.
func browse(t *testing.T, b context.Context, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		url, _ := chromedp.Run(b, chromedp.Location())
		t.Fatalf("browser at %s: %v", url, err)
	}
}

// value runs an action that returns a value: the page's location, what a script returns.
func value[T any](t *testing.T, b context.Context, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		url, _ := chromedp.Run(b, chromedp.Location())
		t.Fatalf("browser at %s: %v", url, err)
	}
	return v
}

// waitPage waits until a JavaScript expression holds on the page.
func waitPage(t *testing.T, b context.Context, expr string, timeout time.Duration, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		html, _ := chromedp.Run(b, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("waiting for %s: %v\npage: %.3000s", what, err, html)
	}
}
