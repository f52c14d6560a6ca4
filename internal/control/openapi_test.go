package control

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIMatchesServer: every route of docs/api/openapi.yaml is served
// (a request to it reaches its endpoint, not the 404 or 405 of the mux),
// and every endpoint the server serves is in the document.
func TestOpenAPIMatchesServer(t *testing.T) {
	data, err := os.ReadFile("../../docs/api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(documented)
	var served []string
	for _, ep := range endpoints {
		served = append(served, ep.method+" "+strings.ReplaceAll(ep.path, "{prefix...}", "{prefix}"))
	}
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Errorf("the document and the server differ:\ndocumented %q\nserved     %q", documented, served)
	}

	ts := startServer(t, "", func(s *Server) { s.WriteRate = 1000 })
	c := unixHTTP(ts.path)
	for _, route := range documented {
		method, path, _ := strings.Cut(route, " ")
		path = strings.ReplaceAll(path, "{prefix}", "198.51.100.1/32")
		path = strings.ReplaceAll(path, "{domain}", "web-1")
		body := ""
		if method == "POST" && path == "/v1/manual-routes" {
			body = `{"prefix":"198.51.100.1"}`
		}
		status, _, raw := send(t, c, method, "http://virtbgp"+path, body)
		if status != 200 {
			t.Errorf("%s: %d %s", route, status, raw)
		}
	}
	if n := ts.h.total(); n != len(documented) {
		t.Errorf("the handler was called %d times for %d documented routes", n, len(documented))
	}
}
