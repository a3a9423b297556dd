package region

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"shortener/events"
)

// Problem is an RFC 7807 problem document, the body of every error answer.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	Field    string `json:"field,omitempty"` // for invalid input: the field at fault
}

// problemTypes is the one table from error kinds to HTTP answers.
var problemTypes = map[events.Kind]struct {
	status int
	title  string
}{
	events.Invalid:       {http.StatusBadRequest, "Invalid input"},
	events.Unauthorized:  {http.StatusUnauthorized, "Missing or invalid API key"},
	events.NotFound:      {http.StatusNotFound, "Not found"},
	events.Conflict:      {http.StatusConflict, "Already taken"},
	events.Gone:          {http.StatusGone, "Gone"},
	events.RateLimited:   {http.StatusTooManyRequests, "Too many requests"},
	events.Unavailable:   {http.StatusServiceUnavailable, "Temporarily unavailable"},
	events.Internal:      {http.StatusInternalServerError, "Internal error"},
	kindMethodNotAllowed: {http.StatusMethodNotAllowed, "Method not allowed"},
}

// kindMethodNotAllowed is a known path asked with a method it does not
// answer (an HTTP matter, not one of the domain's kinds in events).
const kindMethodNotAllowed events.Kind = "method_not_allowed"

const problemBase = "https://shortener.dev/problems/"

// writeProblem answers with the problem for err. Only internal errors are
// logged with their cause; the client sees the kind and a safe message.
func (r *Region) writeProblem(c echo.Context, err error) error {
	var e *events.Error
	if !errors.As(err, &e) {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			e = fromEchoError(he)
		} else {
			e = &events.Error{Kind: events.Internal, Err: err}
		}
	}
	t, ok := problemTypes[e.Kind]
	if !ok {
		t = problemTypes[events.Internal]
	}
	p := Problem{Type: problemBase + string(e.Kind), Title: t.title, Status: t.status,
		Detail: e.Message, Instance: c.Request().URL.Path, Field: e.Field}
	if e.Kind == events.Internal {
		r.log.Error("internal error", "path", c.Request().URL.Path, "method", c.Request().Method, "err", err)
		p.Detail = "an internal error occurred; it has been logged"
	}
	if e.Field != "" && p.Detail != "" {
		p.Detail = e.Field + ": " + p.Detail
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	c.Response().Header().Set(echo.HeaderContentType, "application/problem+json")
	if c.Request().Method == http.MethodHead {
		return c.NoContent(t.status)
	}
	return c.JSON(t.status, p)
}

func fromEchoError(he *echo.HTTPError) *events.Error {
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok {
		msg = s
	}
	switch he.Code {
	case http.StatusNotFound:
		return events.Errorf(events.NotFound, "no such resource")
	case http.StatusMethodNotAllowed:
		return &events.Error{Kind: kindMethodNotAllowed, Message: "this path does not answer this method (see Allow)"}
	case http.StatusRequestEntityTooLarge:
		return events.FieldError("body", "request body too large")
	case http.StatusTooManyRequests:
		return &events.Error{Kind: events.RateLimited, Message: "rate limit exceeded", RetryAfter: time.Second}
	case http.StatusUnauthorized, http.StatusForbidden:
		return &events.Error{Kind: events.Unauthorized, Message: msg}
	}
	if he.Code >= 400 && he.Code < 500 {
		return &events.Error{Kind: events.Invalid, Message: msg}
	}
	return &events.Error{Kind: events.Internal, Err: he}
}
