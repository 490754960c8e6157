package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/openapitest"
)

// TestServesTheDocument: GET /openapi.yaml answers the embedded document as
// YAML, a valid OpenAPI document; everything else, POST /openapi.yaml and
// /openapi.yaml/x included, goes on to the gateway's routing.
func TestServesTheDocument(t *testing.T) {
	var routed []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		routed = append(routed, r.Method+" "+r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	srv := httptest.NewServer(WithDocument(next, zenith.OpenAPI))
	defer srv.Close()

	for _, method := range []string{http.MethodGet, http.MethodHead} {
		req, _ := http.NewRequest(method, srv.URL+"/openapi.yaml", nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/yaml" {
			t.Fatalf("%s: %d %q", method, res.StatusCode, res.Header.Get("Content-Type"))
		}
		if method == http.MethodHead {
			if len(body) != 0 || res.ContentLength != int64(len(zenith.OpenAPI)) {
				t.Errorf("HEAD: %d body bytes, Content-Length %d", len(body), res.ContentLength)
			}
			continue
		}
		if !bytes.Equal(body, zenith.OpenAPI) {
			t.Errorf("GET: %d bytes, not the embedded openapi.yaml (%d bytes)", len(body), len(zenith.OpenAPI))
		}
		if _, err := openapitest.Load(body); err != nil {
			t.Errorf("the served document does not load: %v", err)
		}
	}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/openapi.yaml"}, {http.MethodGet, "/openapi.yaml/x"}, {http.MethodGet, "/api/auth"}, {http.MethodGet, "/openapi.json"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusTeapot {
			t.Errorf("%s %s: %d, want the gateway's answer", c.method, c.path, res.StatusCode)
		}
	}
	if len(routed) != 4 {
		t.Errorf("routed to the gateway: %v", routed)
	}
}
