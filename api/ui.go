package api

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/scope"
)

// The status page (/ui) shows, read-only, what GET /v1/resources shows a caller: a matrix of
// resources × sites coloured by replica state, and each resource's replicas and events, updated
// live over Server-Sent Events. It is server-rendered (html/template) with one small script and no
// bundle, so it needs nothing but this binary, and a page works without its script.
//
// A browser cannot put a bearer token on a navigation, so POST /ui/login checks a token as the API
// does and keeps it in an HttpOnly, SameSite=Strict cookie scoped to /ui. That cookie is read only
// by the /ui routes, which only read: no /v1 route looks at it, so a forged cross-site request can
// change nothing. A client certificate (mTLS) or a bearer token also opens /ui, without a login.

//go:embed ui
var uiFiles embed.FS

var uiTemplates = template.Must(template.New("").Funcs(template.FuncMap{
	"lower": func(s any) string { return strings.ToLower(stringOf(s)) },
	"time": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"labels": func(m map[string]string) string {
		out := make([]string, 0, len(m))
		for k, v := range m {
			out = append(out, k+"="+v)
		}
		slices.Sort(out)
		return strings.Join(out, ",")
	},
}).ParseFS(uiFiles, "ui/*.html"))

func stringOf(v any) string {
	switch s := v.(type) {
	case cheops.ReplicaState:
		return string(s)
	case cheops.ResourceState:
		return string(s)
	case cheops.SiteHealth:
		return string(s)
	case string:
		return s
	}
	return ""
}

// UIConfig says where the status page links to.
type UIConfig struct {
	// TemporalWebUI is the Temporal Web UI's base URL ("http://127.0.0.1:8233"); empty: no links.
	TemporalWebUI     string
	TemporalNamespace string
	// WorkflowID names a resource's workflow (workflows.WorkflowID); nil: none is shown.
	WorkflowID func(resourceID string) string
}

const (
	uiCookie    = "cheops_ui"
	uiCookieAge = 12 * time.Hour
	// uiCSP lets a page load only this server's script and style, run no inline script and be
	// framed by no one: whatever slipped into a page could not run.
	uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// The states a page filters on, in the order its legend shows them; "Drifted" is a replica whose
// object on its site was changed by someone else.
var (
	uiResourceStates = []cheops.ResourceState{cheops.ResourceReady, cheops.ResourceProgressing, cheops.ResourcePending,
		cheops.ResourceDegraded, cheops.ResourceFailed, cheops.ResourceRolledBack, cheops.ResourceDeleting}
	uiReplicaStates = []cheops.ReplicaState{cheops.ReplicaReady, cheops.ReplicaApplied, cheops.ReplicaApplying,
		cheops.ReplicaPending, cheops.ReplicaWaiting, cheops.ReplicaFailed, cheops.ReplicaUnreachable,
		cheops.ReplicaUnknown, cheops.ReplicaDeleting, uiDrifted}
)

const uiDrifted cheops.ReplicaState = "Drifted"

// uiRoutes are the status page's routes; Role "" is open (the login form, its script and style).
func (s *server) uiRoutes() []Route {
	return []Route{
		{http.MethodGet, "/ui", auth.Viewer, s.uiPage(s.uiMatrix)},
		{http.MethodGet, "/ui/events", auth.Viewer, s.uiMatrixEvents},
		{http.MethodGet, "/ui/resources/:id", auth.Viewer, s.uiPage(s.uiResource)},
		{http.MethodGet, "/ui/resources/:id/events", auth.Viewer, s.uiResourceEvents},
		{http.MethodGet, "/ui/login", "", s.uiLoginForm},
		{http.MethodPost, "/ui/login", "", s.uiLogin},
		{http.MethodPost, "/ui/logout", "", s.uiLogout},
		{http.MethodGet, "/ui/static/ui.js", "", uiStatic("ui/ui.js", "text/javascript; charset=utf-8")},
		{http.MethodGet, "/ui/static/ui.css", "", uiStatic("ui/ui.css", "text/css; charset=utf-8")},
	}
}

func uiStatic(name, contentType string) echo.HandlerFunc {
	b, _ := uiFiles.ReadFile(name)
	return func(c echo.Context) error { return c.Blob(http.StatusOK, contentType, b) }
}

func uiHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		// Not no-referrer: a browser would then send this page's own forms with "Origin: null".
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		return next(c)
	}
}

// uiAuthorize is authorize for the status page: a bearer token or a client certificate as on /v1,
// or else the login cookie. A page without any is sent to the login form; a stream, a bad bearer
// token or a role short of need is a problem, as on /v1.
func (s *server) uiAuthorize(need auth.Role) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			_, hasBearer := bearer(r)
			if _, hasCert := certIdentity(r); hasBearer || hasCert {
				return s.authorize(need)(next)(c)
			}
			id, err := s.cookieIdentity(c)
			if err != nil {
				if ck, _ := r.Cookie(uiCookie); ck != nil {
					c.SetCookie(uiSessionCookie(r, "", -1)) // expired or revoked: forget it
				}
				if strings.HasSuffix(c.Path(), "/events") {
					return unauthorized("log in at /ui/login")
				}
				return c.Redirect(http.StatusSeeOther, "/ui/login")
			}
			if !id.Role.Allows(need) {
				return problem(http.StatusForbidden, "role "+string(id.Role)+" of "+id.Name+" may not do this; it needs role "+string(need))
			}
			c.Set(identityKey, id)
			return next(c)
		}
	}
}

// cookieIdentity authenticates the token the login cookie holds, at each request: a token
// removed from the tokens file, or an expired ID token, stops working at once.
func (s *server) cookieIdentity(c echo.Context) (auth.Identity, error) {
	ck, err := c.Request().Cookie(uiCookie)
	if err != nil {
		return auth.Identity{}, err
	}
	token, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || len(token) == 0 || s.Auth == nil {
		return auth.Identity{}, errors.New("not a token")
	}
	return s.Auth.Authenticate(c.Request().Context(), string(token))
}

func uiSessionCookie(r *http.Request, token string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: uiCookie, Value: base64.RawURLEncoding.EncodeToString([]byte(token)), Path: "/ui",
		MaxAge: maxAge, HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"}
}

// sameOrigin refuses a form posted from another site (login CSRF): a browser says where a
// request comes from in Sec-Fetch-Site (which no page can set) or, an older one, in Origin. A
// client that sends neither is no browser.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin" || site == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	// The host only: behind a proxy that terminates TLS the scheme differs, the host does not.
	return err == nil && u.Host != "" && u.Host == r.Host
}

func (s *server) uiLoginForm(c echo.Context) error {
	return s.uiRender(c, http.StatusOK, "login", "log in", map[string]string{})
}

func (s *server) uiLogin(c echo.Context) error {
	r := c.Request()
	if !sameOrigin(r) {
		return s.uiRender(c, http.StatusForbidden, "login", "log in", map[string]string{"Error": "this form may only be sent from this server's own page"})
	}
	token := strings.TrimSpace(c.FormValue("token"))
	var id auth.Identity
	err := errors.New("no token")
	if token != "" && s.Auth != nil {
		id, err = s.Auth.Authenticate(r.Context(), token)
	}
	if err != nil {
		s.Log.Debug("ui login refused", "error", err)
		return s.uiRender(c, http.StatusUnauthorized, "login", "log in", map[string]string{"Error": "invalid token"})
	}
	if !id.Role.Allows(auth.Viewer) {
		return s.uiRender(c, http.StatusForbidden, "login", "log in", map[string]string{"Error": "role " + string(id.Role) + " may not read"})
	}
	if len(token) > 3000 {
		return s.uiRender(c, http.StatusBadRequest, "login", "log in", map[string]string{"Error": "this token is too long to keep in a cookie"})
	}
	c.Set(identityKey, id) // the request's log line names who logged in
	c.SetCookie(uiSessionCookie(r, token, int(uiCookieAge.Seconds())))
	return c.Redirect(http.StatusSeeOther, "/ui")
}

func (s *server) uiLogout(c echo.Context) error {
	if !sameOrigin(c.Request()) {
		return problem(http.StatusForbidden, "this form may only be sent from this server's own page")
	}
	c.SetCookie(uiSessionCookie(c.Request(), "", -1))
	return c.Redirect(http.StatusSeeOther, "/ui/login")
}

// uiPage renders a problem of h (a resource that does not exist, a bad filter) as a page.
func (s *server) uiPage(h echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := h(c)
		var p *Problem
		if errors.As(err, &p) && p.Status < 500 {
			return s.uiRender(c, p.Status, "error", p.Title, p)
		}
		return err
	}
}

// uiRender renders a page of the templates, with who is looking.
func (s *server) uiRender(c echo.Context, status int, name, title string, data any) error {
	var b bytes.Buffer
	if err := uiTemplates.ExecuteTemplate(&b, name, map[string]any{"Who": identity(c), "Title": title, "Data": data}); err != nil {
		return err
	}
	return c.HTMLBlob(status, b.Bytes())
}

// uiFragment renders the part of a page a stream sends.
func uiFragment(name string, data any) ([]byte, error) {
	var b bytes.Buffer
	err := uiTemplates.ExecuteTemplate(&b, name, data)
	return b.Bytes(), err
}

// matrix is what /ui shows.
type matrix struct {
	Selector, State, Replica string
	Live                     string // the stream's URL, with the same filters
	Sites                    []cheops.Site
	Rows                     []matrixRow
	Counts                   map[cheops.ReplicaState]int
	ResourceStates           []cheops.ResourceState
	ReplicaStates            []cheops.ReplicaState
}

type matrixRow struct {
	resourceView
	Cells []matrixCell
}

type matrixCell struct {
	Site    string
	Replica *cheops.Replica // nil: none on this site
	Behind  bool            // at an older generation than the resource's
}

// matrixOf reads the matrix the caller may see, filtered as the query says: selector picks the
// sites (columns) and the resources with a replica there, state the resources by their state,
// replica those with a replica in that state. Three reads of etcd, whatever the number of rows.
func (s *server) matrixOf(c echo.Context) (matrix, error) {
	q := c.QueryParams()
	m := matrix{Selector: strings.TrimSpace(q.Get("selector")), State: q.Get("state"), Replica: q.Get("replica"),
		Counts: map[cheops.ReplicaState]int{}, ResourceStates: uiResourceStates, ReplicaStates: uiReplicaStates}
	sel, err := scope.ParseSelector(m.Selector)
	if err != nil {
		return m, problemAt(http.StatusBadRequest, "selector", "not a label selector such as region=eu: "+err.Error())
	}
	if m.State != "" && !slices.Contains(uiResourceStates, cheops.ResourceState(m.State)) {
		return m, problemAt(http.StatusBadRequest, "state", "not a resource state")
	}
	if m.Replica != "" && !slices.Contains(uiReplicaStates, cheops.ReplicaState(m.Replica)) {
		return m, problemAt(http.StatusBadRequest, "replica", "not a replica state")
	}
	live := url.Values{}
	for k, v := range map[string]string{"selector": m.Selector, "state": m.State, "replica": m.Replica} {
		if v != "" {
			live.Set(k, v)
		}
	}
	m.Live = "/ui/events?" + live.Encode()
	ctx := c.Request().Context()
	sites, err := s.Store.ListSites(ctx)
	if err != nil {
		return m, err
	}
	resources, err := s.Store.ListResources(ctx)
	if err != nil {
		return m, err
	}
	all, err := s.Store.AllReplicas(ctx)
	if err != nil {
		return m, err
	}
	id := identity(c)
	for _, st := range sites {
		if id.MaySee(st.Labels) && (m.Selector == "" || sel.Matches(st.Labels)) {
			m.Sites = append(m.Sites, st)
		}
	}
	byResource := map[string][]cheops.Replica{}
	for _, rep := range all {
		byResource[rep.ResourceID] = append(byResource[rep.ResourceID], rep)
	}
	health := healthOf(sites)
	for _, r := range resources {
		reps := cheops.SeenWith(byResource[r.ID], health)
		if !maySee(id, r, reps, sites) {
			continue
		}
		row := matrixRow{resourceView: resourceView{Resource: r, State: cheops.Aggregate(r, reps), Replicas: reps}}
		placed, inState := false, m.Replica == ""
		for _, st := range m.Sites {
			cell := matrixCell{Site: st.Name}
			if i := slices.IndexFunc(reps, func(rep cheops.Replica) bool { return rep.Site == st.Name }); i >= 0 {
				rep := reps[i]
				// Behind: an older generation is what the site holds (0: it holds none yet).
				cell.Replica, cell.Behind, placed = &rep, rep.ObservedGeneration > 0 && rep.ObservedGeneration < r.Generation, true
				inState = inState || string(rep.State) == m.Replica || m.Replica == string(uiDrifted) && rep.Drifted
			}
			row.Cells = append(row.Cells, cell)
		}
		if (m.Selector != "" && !placed) || !inState || (m.State != "" && string(row.State) != m.State) {
			continue
		}
		for _, cell := range row.Cells {
			if cell.Replica != nil {
				m.Counts[cell.Replica.State]++
				if cell.Replica.Drifted {
					m.Counts[uiDrifted]++
				}
			}
		}
		m.Rows = append(m.Rows, row)
	}
	return m, nil
}

func (s *server) uiMatrix(c echo.Context) error {
	m, err := s.matrixOf(c)
	if err != nil {
		return err
	}
	return s.uiRender(c, http.StatusOK, "matrix-page", "status", m)
}

func (s *server) uiMatrixEvents(c echo.Context) error {
	if _, err := s.matrixOf(c); err != nil {
		return err // a bad filter is refused before the stream starts
	}
	ctx := c.Request().Context()
	changes := s.Store.WatchAll(ctx)
	var last time.Time
	return s.stream(c, changes, func() (string, []byte, error) {
		// Every change of every resource wakes this: on a busy system an open page costs its
		// three reads at most once every uiMatrixEvery (the changes meanwhile are gathered).
		select {
		case <-time.After(time.Until(last.Add(uiMatrixEvery))):
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
		last = time.Now()
		m, err := s.matrixOf(c)
		if err != nil {
			return "", nil, err
		}
		b, err := uiFragment("matrix", m)
		return "update", b, err
	})
}

// resourcePage is what /ui/resources/{id} shows.
type resourcePage struct {
	resourceView
	Object      string // what the manifest declares: "ConfigMap v1 team-a/web", "keypair deploy"
	Manifest    string
	Events      []cheops.Event // newest first, at most uiEvents
	MoreEvents  int
	WorkflowID  string
	WorkflowURL string
	Live        string
}

const uiEvents = 50

// uiMatrixEvery is how often at most a matrix stream reads and sends the matrix again.
const uiMatrixEvery = 500 * time.Millisecond

func (s *server) resourcePageOf(c echo.Context, r cheops.Resource) (resourcePage, error) {
	v, err := s.view(c, r)
	if err != nil {
		return resourcePage{}, err
	}
	evs, err := s.Store.Events(c.Request().Context(), r.ID)
	if err != nil {
		return resourcePage{}, err
	}
	p := resourcePage{resourceView: v, Object: objectOf(r.Manifest), Live: "/ui/resources/" + url.PathEscape(r.ID) + "/events"}
	var pretty bytes.Buffer
	if json.Indent(&pretty, r.Manifest, "", "  ") == nil {
		p.Manifest = pretty.String()
	}
	slices.Reverse(evs)
	p.Events, p.MoreEvents = evs[:min(len(evs), uiEvents)], max(0, len(evs)-uiEvents)
	if s.UI.WorkflowID != nil {
		p.WorkflowID = s.UI.WorkflowID(r.ID)
		if base := strings.TrimRight(s.UI.TemporalWebUI, "/"); base != "" {
			p.WorkflowURL = base + "/namespaces/" + url.PathEscape(cmp.Or(s.UI.TemporalNamespace, "default")) +
				"/workflows/" + url.PathEscape(p.WorkflowID)
		}
	}
	return p, nil
}

// objectOf names what a manifest declares: a Kubernetes object's kind, apiVersion and name, or
// an OpenStack object's type and name.
func objectOf(manifest json.RawMessage) string {
	var m struct {
		APIVersion, Kind, Type string
		Metadata               struct{ Name, Namespace string }
		Spec                   struct{ Name string }
	}
	_ = json.Unmarshal(manifest, &m)
	if m.Type != "" {
		return strings.TrimSpace(m.Type + " " + m.Spec.Name)
	}
	name := m.Metadata.Name
	if m.Metadata.Namespace != "" {
		name = m.Metadata.Namespace + "/" + name
	}
	return strings.Join(strings.Fields(m.Kind+" "+m.APIVersion+" "+name), " ")
}

func (s *server) uiResource(c echo.Context) error {
	r, err := s.lookup(c)
	if err != nil {
		return err
	}
	p, err := s.resourcePageOf(c, r)
	if err != nil {
		return err
	}
	return s.uiRender(c, http.StatusOK, "resource-page", r.Name, p)
}

func (s *server) uiResourceEvents(c echo.Context) error {
	r, err := s.lookup(c)
	if err != nil {
		return err
	}
	changes := s.Store.WatchResourceHistory(c.Request().Context(), r.ID)
	return s.stream(c, changes, func() (string, []byte, error) {
		cur, err := s.lookupID(c, r.ID)
		var p *Problem
		if errors.As(err, &p) && p.Status == http.StatusNotFound {
			return eventDeleted, []byte(r.ID), nil
		}
		if err != nil {
			return "", nil, err
		}
		page, err := s.resourcePageOf(c, cur)
		if err != nil {
			return "", nil, err
		}
		b, err := uiFragment("resource", page)
		return "update", b, err
	})
}
