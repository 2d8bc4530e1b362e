// Package api is cheops' HTTP API: Echo handlers, request validation, RFC 9457 errors and the
// OpenAPI document. It records what users declare in the store and tells the resource workflows,
// through the Orchestrator, that something changed; it never talks to a site itself.
package api

import (
	"context"
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/metrics"
	"github.com/cheops-io/cheops/store"
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document the API serves at /openapi.yaml.
func OpenAPI() []byte { return openAPI }

// Orchestrator starts and steers resource workflows.
type Orchestrator interface {
	// Ensure starts the resource's workflow unless it runs already.
	Ensure(ctx context.Context, resourceID string) error
	// Apply tells the workflow that a new generation is stored.
	Apply(ctx context.Context, resourceID string, generation int64) error
	// Delete tells the workflow that a delete was accepted.
	Delete(ctx context.Context, resourceID string) error
	// Signal sends an operator signal (pause, resume, retry, resync) to the workflow.
	Signal(ctx context.Context, resourceID, name string) error
}

// Config is what the API needs.
type Config struct {
	Store        *store.Store
	Orchestrator Orchestrator
	// Drivers validate manifests and site settings; a driver missing here is refused.
	Drivers map[cheops.DriverName]cheops.Driver
	// Ready reports whether the orchestrator's backend (Temporal) answers.
	Ready func(ctx context.Context) error
	Log   *slog.Logger
	// BodyLimit bounds request bodies in bytes (default 1 MiB).
	BodyLimit int64
	// Auth authenticates the bearer tokens of every route but /healthz, /readyz and
	// /openapi.yaml. Without it, every such request is refused.
	Auth Authenticator
	// Metrics records each request's latency and is served at /metrics (role viewer); without
	// it, /metrics is not served.
	Metrics *metrics.Metrics
	// MaxInFlightPerClient bounds the requests one client address may have in flight; more are
	// a 429 (default DefaultMaxInFlightPerClient).
	MaxInFlightPerClient int
	// UI says where the status page at /ui links to.
	UI UIConfig
}

type server struct {
	Config
	inFlight *inFlight
}

// New returns the API's HTTP handler.
func New(cfg Config) *echo.Echo {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BodyLimit == 0 {
		cfg.BodyLimit = 1 << 20
	}
	if cfg.MaxInFlightPerClient == 0 {
		cfg.MaxInFlightPerClient = DefaultMaxInFlightPerClient
	}
	s := &server{Config: cfg, inFlight: &inFlight{max: cfg.MaxInFlightPerClient, n: map[string]int{}}}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler(cfg.Log)
	e.Use(s.recoverer, s.logRequests, s.limitClients, s.limitBody)

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.yaml", func(c echo.Context) error { return c.Blob(http.StatusOK, "application/yaml", openAPI) })
	if cfg.Metrics != nil {
		// Behind a token like /v1: route names, site names and counts tell an outsider too much.
		e.GET("/metrics", echo.WrapHandler(cfg.Metrics.Handler()), s.authorize(auth.Viewer))
	}

	// Every /v1 route needs an identity whose role allows it (see Roles).
	v1 := e.Group("/v1")
	for _, r := range s.routes() {
		v1.Add(r.Method, r.Path, r.handler, s.authorize(r.Role))
	}
	// The status page: its pages and streams need a role as /v1 does, but also take the login
	// cookie (see ui.go).
	for _, r := range s.uiRoutes() {
		mw := []echo.MiddlewareFunc{uiHeaders}
		if r.Role != "" {
			mw = append(mw, s.uiAuthorize(r.Role))
		}
		e.Add(r.Method, r.Path, r.handler, mw...)
	}
	return e
}

// Route is one route and the role it needs ("": none).
type Route struct {
	Method, Path string
	Role         auth.Role
	handler      echo.HandlerFunc
}

func (s *server) routes() []Route {
	return []Route{
		{http.MethodPost, "/sites", auth.Admin, s.createSite},
		{http.MethodGet, "/sites", auth.Viewer, s.listSites},
		{http.MethodGet, "/sites/:name", auth.Viewer, s.getSite},
		{http.MethodPut, "/sites/:name", auth.Admin, s.putSite},
		{http.MethodDelete, "/sites/:name", auth.Admin, s.deleteSite},
		{http.MethodGet, "/sites/:name/events", auth.Viewer, s.siteEvents},

		{http.MethodPost, "/resources", auth.Operator, s.createResource},
		{http.MethodGet, "/resources", auth.Viewer, s.listResources},
		{http.MethodGet, "/resources/:id", auth.Viewer, s.getResource},
		// POST /resources/{id}:{action}: pause, resume, retry, resync.
		{http.MethodPost, "/resources/:id", auth.Operator, s.resourceAction},
		{http.MethodPut, "/resources/:id", auth.Operator, s.putResource},
		{http.MethodPatch, "/resources/:id", auth.Operator, s.patchResource},
		{http.MethodDelete, "/resources/:id", auth.Operator, s.deleteResource},
		{http.MethodGet, "/resources/:id/events", auth.Viewer, s.events},
	}
}

// Roles returns the role each route behind a token needs, by method and path ("GET /v1/sites").
func Roles() map[string]auth.Role {
	out := map[string]auth.Role{"GET /metrics": auth.Viewer}
	s := &server{}
	for _, r := range s.routes() {
		out[r.Method+" /v1"+r.Path] = r.Role
	}
	for _, r := range s.uiRoutes() {
		if r.Role != "" {
			out[r.Method+" "+r.Path] = r.Role
		}
	}
	return out
}

func (s *server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				s.Log.Error("handler panicked", "method", c.Request().Method, "path", c.Path(), "panic", r)
				err = problem(http.StatusInternalServerError, "internal error; see the server log")
			}
		}()
		return next(c)
	}
}

// logRequests logs method, route, status and latency; never bodies, which may carry credentials.
func (s *server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		// A change is logged with who asked for it (the audit trail beside the events); reads at
		// debug level.
		level := slog.LevelDebug
		switch c.Request().Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			level = slog.LevelInfo
		}
		d := time.Since(start)
		s.Log.Log(c.Request().Context(), level, "request", "method", c.Request().Method, "route", c.Path(),
			"path", c.Request().URL.Path, "status", c.Response().Status, "actor", actor(c), "duration", d)
		if s.Metrics != nil {
			// c.Path() is the route's template, never the raw path, so the series stay bounded.
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			s.Metrics.ObserveRequest(c.Request().Method, route, c.Response().Status, d)
		}
		return nil
	}
}

func (s *server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, s.BodyLimit)
		return next(c)
	}
}

func (s *server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	if err := s.Store.Ping(ctx); err != nil {
		return problem(http.StatusServiceUnavailable, "etcd does not answer: "+err.Error())
	}
	if s.Ready != nil {
		if err := s.Ready(ctx); err != nil {
			return problem(http.StatusServiceUnavailable, "temporal does not answer: "+err.Error())
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
