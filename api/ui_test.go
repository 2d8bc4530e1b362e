package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
)

// newUI is the API with the status page linking to a Temporal Web UI, and its store.
func newUI(t *testing.T) http.Handler {
	t.Helper()
	return newAPIConfig(t, &recorder{}, func(c *api.Config) {
		c.UI = api.UIConfig{TemporalWebUI: "http://temporal.test:8233/", TemporalNamespace: "ns-1",
			WorkflowID: func(id string) string { return "resource-" + id }}
	})
}

// browse sends a request as a browser would: no Authorization header, cookies and form as given.
func browse(t *testing.T, h http.Handler, method, path string, form url.Values, cookie *http.Cookie, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// doFor sends a GET whose client leaves after d: for a stream, which would never end.
func doFor(t *testing.T, h http.Handler, d time.Duration, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// login posts the login form from the page's own origin and returns the cookie it set.
func login(t *testing.T, h http.Handler, token string) *http.Cookie {
	t.Helper()
	rec := browse(t, h, http.MethodPost, "/ui/login", url.Values{"token": {token}}, nil, "Origin", "http://example.com", "Sec-Fetch-Site", "same-origin")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui" {
		t.Fatalf("login: %d %s", rec.Code, rec.Body)
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %d cookies", len(cookies))
	}
	return cookies[0]
}

func TestUILoginAndCookie(t *testing.T) {
	h := newUI(t)
	// Without a login, a page sends the browser to the form; a stream is a 401.
	if rec := browse(t, h, http.MethodGet, "/ui", nil, nil); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" {
		t.Fatalf("GET /ui without a login: %d %s", rec.Code, rec.Header())
	}
	if rec := browse(t, h, http.MethodGet, "/ui/events", nil, nil); rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /ui/events without a login: %d", rec.Code)
	}
	rec := browse(t, h, http.MethodGet, "/ui/login", nil, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `name="token"`) ||
		!strings.Contains(rec.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("login form: %d %s %s", rec.Code, rec.Header(), rec.Body)
	}
	// A bad token is a 401 and sets no cookie.
	rec = browse(t, h, http.MethodPost, "/ui/login", url.Values{"token": {"not-a-token"}}, nil)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "invalid token") || len(rec.Result().Cookies()) != 0 {
		t.Fatalf("login with a bad token: %d %v %s", rec.Code, rec.Result().Cookies(), rec.Body)
	}
	// A form posted from another site logs no one in (login CSRF).
	for _, hdr := range [][]string{{"Origin", "http://evil.example"}, {"Origin", "null"}, {"Sec-Fetch-Site", "cross-site"},
		{"Sec-Fetch-Site", "same-site", "Origin", "http://example.com"}} {
		rec = browse(t, h, http.MethodPost, "/ui/login", url.Values{"token": {"viewer-token"}}, nil, hdr...)
		if rec.Code != http.StatusForbidden || len(rec.Result().Cookies()) != 0 {
			t.Fatalf("login with %v: %d %v", hdr, rec.Code, rec.Result().Cookies())
		}
	}
	ck := login(t, h, "viewer-token")
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui" || ck.MaxAge <= 0 || ck.Secure {
		t.Fatalf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui, an age, not Secure over plain HTTP", ck)
	}
	rec = browse(t, h, http.MethodGet, "/ui", nil, ck)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "viewer (viewer)") || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /ui logged in: %d %s", rec.Code, rec.Body)
	}
	// The cookie opens no /v1 route, reading or writing: a forged request can change nothing.
	for _, r := range []struct{ method, path string }{
		{http.MethodGet, "/v1/resources"}, {http.MethodPost, "/v1/resources"}, {http.MethodDelete, "/v1/resources/x"},
		{http.MethodPost, "/v1/sites"}, {http.MethodGet, "/metrics"},
	} {
		if rec := browse(t, h, r.method, r.path, nil, ck); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s %s with the cookie: %d; want 401", r.method, r.path, rec.Code)
		}
	}
	// Over TLS, the cookie is Secure.
	req := httptest.NewRequest(http.MethodPost, "https://example.com/ui/login", strings.NewReader("token=viewer-token"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if c := rec.Result().Cookies(); len(c) != 1 || !c[0].Secure {
		t.Fatalf("login over TLS: %d %v", rec.Code, c)
	}
	// A bearer token opens the page too, and a bad one is a 401 as on /v1.
	if rec := do(t, h, http.MethodGet, "/ui", nil, "Authorization", "Bearer viewer-token"); rec.Code != http.StatusOK {
		t.Fatalf("GET /ui with a bearer token: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodGet, "/ui", nil, "Authorization", "Bearer nope"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /ui with a bad bearer token: %d", rec.Code)
	}
	// A cookie whose token no longer works is forgotten.
	rec = browse(t, h, http.MethodGet, "/ui", nil, &http.Cookie{Name: "cheops_ui", Value: "Ym9ndXM"})
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("GET /ui with a stale cookie: %d %v", rec.Code, rec.Result().Cookies())
	}
	// Logging out clears the cookie.
	rec = browse(t, h, http.MethodPost, "/ui/logout", nil, ck, "Origin", "http://example.com")
	if rec.Code != http.StatusSeeOther || len(rec.Result().Cookies()) != 1 || rec.Result().Cookies()[0].MaxAge >= 0 {
		t.Fatalf("logout: %d %v", rec.Code, rec.Result().Cookies())
	}
}

// uiSite registers a site with the given region.
func uiSite(t *testing.T, h http.Handler, name, region string) {
	t.Helper()
	rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": name, "driver": "kubernetes",
		"labels": map[string]string{"region": region}, "kubernetes": map[string]any{"kubeconfig": kubeconfig}})
	if rec.Code != http.StatusCreated && rec.Code != http.StatusConflict {
		t.Fatalf("add site %s: %d %s", name, rec.Code, rec.Body)
	}
}

// uiResource creates a resource on sites and records its replicas in the given states.
func uiResource(t *testing.T, h http.Handler, name string, manifest map[string]any, replicas map[string]cheops.Replica) cheops.Resource {
	t.Helper()
	var sites []string
	for s := range replicas {
		sites = append(sites, s)
	}
	rec := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": name, "manifest": manifest, "scope": map[string]any{"sites": sites}})
	var r cheops.Resource
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || rec.Code != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, rec.Code, rec.Body)
	}
	st := newStore(t)
	for site, want := range replicas {
		if _, err := st.UpdateReplica(context.Background(), r.ID, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State, rep.Message, rep.ObservedGeneration, rep.Drifted = want.State, want.Message, want.ObservedGeneration, want.Drifted
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

var cellRE = regexp.MustCompile(`data-site="([^"]+)" data-state="([^"]*)"`)

// row returns the cells of a resource's row in a matrix page, site → state; nil when the row is
// not shown.
func row(page, name string) map[string]string {
	start := strings.Index(page, `<tr data-resource="`+name+`"`)
	if start < 0 {
		return nil
	}
	end := start + strings.Index(page[start:], "</tr>")
	out := map[string]string{}
	for _, m := range cellRE.FindAllStringSubmatch(page[start:end], -1) {
		out[m[1]] = m[2]
	}
	return out
}

func TestUIMatrix(t *testing.T) {
	h := newUI(t)
	uiSite(t, h, "ui-eu", "eu")
	uiSite(t, h, "ui-us", "us")
	web := uiResource(t, h, "ui-web", cm("ui-web"), map[string]cheops.Replica{
		"ui-eu": {State: cheops.ReplicaReady, ObservedGeneration: 1, Drifted: true},
		"ui-us": {State: cheops.ReplicaFailed, Message: `<script>alert("x")</script>`},
	})
	uiResource(t, h, "ui-db", cm("ui-db"), map[string]cheops.Replica{"ui-eu": {State: cheops.ReplicaPending}})
	get := func(query string, header ...string) string {
		t.Helper()
		rec := do(t, h, http.MethodGet, "/ui"+query, nil, append([]string{"Authorization", "Bearer viewer-token"}, header...)...)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /ui%s: %d %s", query, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	page := get("")
	if got := row(page, "ui-web"); got["ui-eu"] != "Ready" || got["ui-us"] != "Failed" {
		t.Fatalf("ui-web's row: %v\n%s", got, page)
	}
	if got := row(page, "ui-db"); got["ui-eu"] != "Pending" || got["ui-us"] != "" {
		t.Fatalf("ui-db's row: %v", got)
	}
	if !strings.Contains(page, `href="/ui/resources/`+web.ID+`"`) || !strings.Contains(page, "data-drifted") {
		t.Fatal("no link to ui-web's page, or its drifted replica is not marked")
	}
	// The sites' credentials (their kubeconfig holds secret) are nowhere on the page.
	if strings.Contains(page, secret) {
		t.Fatal("the page holds a site's credential")
	}
	// A replica's message is text, never markup.
	if strings.Contains(page, "<script>alert") || !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Fatalf("the message was not escaped:\n%s", page)
	}
	// Filters: sites by label, resources by state and by a replica's state.
	page = get("?selector=region%3Dus")
	if got := row(page, "ui-web"); got["ui-us"] != "Failed" || strings.Contains(page, `data-site="ui-eu"`) || row(page, "ui-db") != nil {
		t.Fatalf("selector region=us: ui-web %v, ui-db %v", got, row(page, "ui-db"))
	}
	if page = get("?replica=Failed"); row(page, "ui-web") == nil || row(page, "ui-db") != nil {
		t.Fatal("replica=Failed: want ui-web alone of the two")
	}
	if page = get("?replica=Drifted"); row(page, "ui-web") == nil || row(page, "ui-db") != nil {
		t.Fatal("replica=Drifted: want ui-web alone of the two")
	}
	if page = get("?state=Degraded"); row(page, "ui-web") == nil || row(page, "ui-db") != nil {
		t.Fatal("state=Degraded: want ui-web alone of the two")
	}
	if !strings.Contains(page, `<option selected>Degraded</option>`) || !strings.Contains(page, `data-live="/ui/events?state=Degraded"`) {
		t.Fatal("the form or the stream does not keep the filter")
	}
	for _, q := range []string{"?selector=%3D%3D", "?state=Nope", "?replica=%3Cb%3E"} {
		rec := do(t, h, http.MethodGet, "/ui"+q, nil, "Authorization", "Bearer viewer-token")
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") || strings.Contains(rec.Body.String(), "<b>") {
			t.Fatalf("GET /ui%s: %d %s", q, rec.Code, rec.Body)
		}
	}
	// A caller bound to region=eu sees what the API shows it: not ui-web, which has a replica in us.
	page = get("", "Authorization", "Bearer eu-operator-token")
	if row(page, "ui-web") != nil || row(page, "ui-db") == nil || strings.Contains(page, `data-site="ui-us"`) {
		t.Fatalf("a token bound to region=eu sees ui-web or site ui-us:\n%s", page)
	}
	rec := do(t, h, http.MethodGet, "/ui/resources/"+web.ID, nil, "Authorization", "Bearer eu-operator-token")
	if rec.Code != http.StatusNotFound {
		t.Fatalf("ui-web's page for a token bound to region=eu: %d", rec.Code)
	}
}

func TestUIResourcePage(t *testing.T) {
	h := newUI(t)
	uiSite(t, h, "ui-eu", "eu")
	m := cm("ui-page")
	m["data"] = map[string]any{"k": `</pre><script>alert(1)</script>`}
	r := uiResource(t, h, "ui-page", m, map[string]cheops.Replica{"ui-eu": {State: cheops.ReplicaApplied, ObservedGeneration: 1, Message: "applied"}})
	if err := newStore(t).AppendEvent(context.Background(), r.ID, cheops.Event{Type: cheops.EventActionRequested, Message: `<img src=x onerror=alert(1)>`, Actor: "viewer"}); err != nil {
		t.Fatal(err)
	}
	rec := do(t, h, http.MethodGet, "/ui/resources/ui-page", nil, "Authorization", "Bearer viewer-token")
	page := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("GET the page: %d %s", rec.Code, page)
	}
	for _, want := range []string{
		`<tr data-site="ui-eu" data-state="Applied">`, `data-event="Created"`, `data-event="ActionRequested"`,
		`href="http://temporal.test:8233/namespaces/ns-1/workflows/resource-` + r.ID + `"`, "ConfigMap v1 ui-page",
		"&lt;img src=x onerror=alert(1)&gt;", "&lt;/pre&gt;&lt;script&gt;",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
		t.Fatalf("markup from a manifest or an event got into the page:\n%s", page)
	}
	rec = do(t, h, http.MethodGet, "/ui/resources/no-such-thing", nil, "Authorization", "Bearer viewer-token")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "does not exist") {
		t.Fatalf("a missing resource: %d %s", rec.Code, rec.Body)
	}
}

// The streams send the matrix, or the resource, at once and again when something changes, and
// "deleted" when the resource is gone.
func TestUIStreams(t *testing.T) {
	h := newUI(t)
	uiSite(t, h, "ui-eu", "eu")
	r := uiResource(t, h, "ui-live", cm("ui-live"), map[string]cheops.Replica{"ui-eu": {State: cheops.ReplicaPending}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ck := login(t, srv.Config.Handler, "viewer-token")
	for _, path := range []string{"/ui/events", "/ui/resources/" + r.ID + "/events"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path, nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		events := sseEvents(resp)
		first := <-events
		if first.name != "update" || !strings.Contains(first.data, "ui-live") {
			t.Fatalf("%s: first event %s %.300s", path, first.name, first.data)
		}
		_, err = newStore(t).UpdateReplica(ctx, r.ID, "ui-eu", func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State = map[bool]cheops.ReplicaState{true: cheops.ReplicaReady, false: cheops.ReplicaFailed}[path == "/ui/events"]
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: `data-state="Ready"`, false: `data-state="Failed"`}[path == "/ui/events"]
		for ev := range events {
			if strings.Contains(ev.data, want) {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: no update with %s", path, want)
		}
		cancel()
		resp.Body.Close()
	}
	// Deleted: the resource page's stream says so and ends.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/ui/resources/"+r.ID+"/events", nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := sseEvents(resp)
	<-events
	if err := newStore(t).DeleteResource(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	var last sse
	for ev := range events {
		last = ev
	}
	if last.name != "deleted" {
		t.Fatalf("after the delete: last event %q", last.name)
	}
}

type sse struct{ name, data string }

// sseEvents reads the events of a stream until it ends.
func sseEvents(resp *http.Response) <-chan sse {
	out := make(chan sse)
	go func() {
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data += line[len("data: "):] + "\n"
			case line == "" && ev.name != "":
				out <- ev
				ev = sse{}
			}
		}
	}()
	return out
}
