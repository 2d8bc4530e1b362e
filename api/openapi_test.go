package api_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/cheops-io/cheops/api"
)

// openAPIRouter finds the operation of the OpenAPI document a request is for.
type openAPIRouter struct {
	doc *openapi3.T
	mux routers.Router
	// split are the paths with a segment of two parameters, such as /v1/resources/{id}:{action},
	// which kin-openapi's routers match to the one-parameter path beside them.
	split []splitPath
}

type splitPath struct {
	template string
	re       *regexp.Regexp
	names    []string
}

// openAPI loads and validates the document once.
var openAPI = sync.OnceValues(func() (*openAPIRouter, error) {
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	// Route by path alone: the tests' requests are not addressed to the document's server.
	doc.Servers = nil
	mux, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	r := &openAPIRouter{doc: doc, mux: mux}
	for _, path := range doc.Paths.InMatchingOrder() {
		if strings.Contains(path, "}:{") {
			r.split = append(r.split, newSplitPath(path))
		}
	}
	return r, nil
})

// newSplitPath matches a path template whose parameters hold no "/" and no ":".
func newSplitPath(template string) splitPath {
	sp := splitPath{template: template}
	var expr strings.Builder
	expr.WriteString("^")
	rest := template
	for {
		open := strings.Index(rest, "{")
		if open < 0 {
			expr.WriteString(regexp.QuoteMeta(rest))
			break
		}
		end := open + strings.Index(rest[open:], "}")
		expr.WriteString(regexp.QuoteMeta(rest[:open]) + `([^/:]+)`)
		sp.names = append(sp.names, rest[open+1:end])
		rest = rest[end+1:]
	}
	expr.WriteString("$")
	sp.re = regexp.MustCompile(expr.String())
	return sp
}

func (r *openAPIRouter) FindRoute(req *http.Request) (*routers.Route, map[string]string, error) {
	for _, sp := range r.split {
		m := sp.re.FindStringSubmatch(req.URL.Path)
		if m == nil {
			continue
		}
		item := r.doc.Paths.Value(sp.template)
		op := item.GetOperation(req.Method)
		if op == nil {
			continue
		}
		params := map[string]string{}
		for i, name := range sp.names {
			params[name] = m[i+1]
		}
		return &routers.Route{Spec: r.doc, Path: sp.template, PathItem: item, Method: req.Method, Operation: op}, params, nil
	}
	return r.mux.FindRoute(req)
}

// The document the API serves is a valid OpenAPI 3 document.
func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := openAPI(); err != nil {
		t.Fatal(err)
	}
}

// checkResponse fails the test when the response to req is not one the OpenAPI document describes
// for the operation req matched: an undocumented status, header or body shape. A request the
// document has no operation for must have been refused with a 404 or a 405.
func checkResponse(t *testing.T, req *http.Request, rec *httptest.ResponseRecorder) {
	t.Helper()
	if req.URL.Path == "/ui" || strings.HasPrefix(req.URL.Path, "/ui/") {
		return // the status page is HTML for browsers, not part of the API (ui_test.go)
	}
	router, err := openAPI()
	if err != nil {
		t.Fatalf("OpenAPI document: %v", err)
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		// The routers may disagree on which it is: Echo matches /v1/resources//events with an
		// empty id, so an unknown method there is a 405 where kin-openapi finds no path.
		if (errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed)) &&
			(rec.Code == http.StatusNotFound || rec.Code == http.StatusMethodNotAllowed) {
			return
		}
		t.Errorf("%s %s answered %d but the OpenAPI document has no such operation: %v", req.Method, req.URL, rec.Code, err)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Body:                   io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), in); err != nil {
		t.Errorf("%s %s: the response is not what the OpenAPI document says (%s %s): %v\nbody: %.500s",
			req.Method, req.URL, route.Operation.OperationID, route.Path, err, rec.Body)
	}
}
