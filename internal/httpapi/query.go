package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"

	"github.com/orderpipe/orderpipe/schemas"
)

// queryRules are the query parameters of every operation in schemas/openapi.yaml, by method and
// Echo route template ("GET /v1/products"). The OpenAPI document is the one source of their
// limits (type, length, range, pattern, enum): the middleware checks every route's query
// against it, so a limit is written once and a route cannot forget one.
type queryRules map[string][]*openapi3.Parameter

var openAPIPathParam = regexp.MustCompile(`\{([^}/]+)\}`)

// loadQueryRules reads the query parameters of every operation from the embedded OpenAPI
// document (path-level parameters included).
func loadQueryRules() (queryRules, error) {
	raw, err := schemas.FS.ReadFile("openapi.yaml")
	if err != nil {
		return nil, fmt.Errorf("read openapi.yaml: %w", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	rules := queryRules{}
	for path, item := range doc.Paths.Map() {
		route := openAPIPathParam.ReplaceAllString(path, ":$1")
		for method, op := range item.Operations() {
			var ps []*openapi3.Parameter
			for _, ref := range slices.Concat(item.Parameters, op.Parameters) {
				if p := ref.Value; p != nil && p.In == openapi3.ParameterInQuery {
					ps = append(ps, p)
				}
			}
			if len(ps) > 0 {
				rules[method+" "+route] = ps
			}
		}
	}
	return rules, nil
}

// checkQuery refuses, with 400 and every problem listed in errors, a request whose query
// parameters break the limits of its operation in the OpenAPI document, or that gives one of
// them more than once. Parameters the operation does not define are ignored (a cache buster
// changes nothing). HEAD is checked as its GET.
func (q queryRules) checkQuery() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			method := req.Method
			if method == http.MethodHead {
				method = http.MethodGet
			}
			ps := q[method+" "+c.Path()]
			if len(ps) == 0 || req.URL.RawQuery == "" {
				return next(c)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, Options: &openapi3filter.Options{SkipSettingDefaults: true}}
			values := c.QueryParams()
			var problems []ProblemField
			for _, p := range ps {
				if len(values[p.Name]) > 1 {
					problems = append(problems, ProblemField{Field: p.Name, Detail: "must be given at most once"})
					continue
				}
				if err := openapi3filter.ValidateParameter(context.WithoutCancel(req.Context()), in, p); err != nil {
					problems = append(problems, ProblemField{Field: p.Name, Detail: queryReason(err)})
				}
			}
			if len(problems) > 0 {
				p := badRequest("Some query parameters are invalid; see errors (limits: schemas/openapi.yaml).")
				p.Errors = problems
				return p
			}
			return next(c)
		}
	}
}

// queryReason is the short reason of a parameter's validation error, without the value.
func queryReason(err error) string {
	var se *openapi3.SchemaError
	if errors.As(err, &se) && se.Reason != "" {
		return se.Reason
	}
	var re *openapi3filter.RequestError
	if errors.As(err, &re) {
		if re.Reason != "" {
			return re.Reason
		}
		if re.Err != nil {
			return strings.TrimPrefix(re.Err.Error(), "value ")
		}
	}
	return "is invalid"
}
