package load

import "net/http"

// baselineLocation is the fixed redirect target of BaselineHandler.
var baselineLocation = []string{"https://example.com/"}

// BaselineHandler returns a handler that answers every request with a bare
// 301 to https://example.com/ and no body: the plain net/http server that
// benchmarks compare the service against.
func BaselineHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Location"] = baselineLocation
		w.WriteHeader(http.StatusMovedPermanently)
	})
}
