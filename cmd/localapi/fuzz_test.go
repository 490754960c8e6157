package main

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zenithfresh/zenith-serverless/shared/samtemplate"
)

// FuzzGatewayEvent feeds arbitrary requests through route selection and event
// building: never a panic, every request routed (there is a $default), the
// body carried byte for byte (as text or base64), cookies split, header names
// lower-case.
func FuzzGatewayEvent(f *testing.F) {
	f.Add("GET", "/api/traffic-manager?status=true", "", "", []byte(nil))
	f.Add("POST", "/api/auth", "application/json", "zenith_session=abc; theme=dark", []byte(`{"action":"login"}`))
	f.Add("DELETE", "/api/sessions/h%2F1/x?a=1&a=2", "application/octet-stream", ";;=;", []byte{0, 0xff, 0x10})
	f.Add("PATCH", "//api//auth/users/%zz", "text/plain; charset=utf-8", "", []byte("x"))
	f.Add("OPTIONS", "/", "multipart/form-data; boundary=\"", "a=b", []byte("--"))

	tmpl, err := samtemplate.Embedded()
	if err != nil {
		f.Fatal(err)
	}
	var routes []Route
	for _, fn := range tmpl.Functions {
		for _, rs := range fn.Routes {
			routes = append(routes, Route{RouteSpec: rs, Function: fn.LogicalID, Handler: okHandler})
		}
	}
	g, err := NewGateway(routes, tmpl.CORS, nil, quiet())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, target, contentType, cookie string, body []byte) {
		u, err := url.Parse("http://127.0.0.1:3000" + target)
		if err != nil || strings.ContainsAny(method, " \t\r\n") {
			return
		}
		r := &http.Request{Method: method, URL: u, Host: u.Host, Proto: "HTTP/1.1", Header: http.Header{}, RemoteAddr: "192.0.2.1:5555"}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if cookie != "" {
			r.Header.Set("Cookie", cookie)
		}
		route, params := g.Select(method, u.Path)
		if route == nil {
			t.Fatalf("%s %q was not routed", method, u.Path)
		}
		ev := g.Event(r, route, params, body, time.Unix(0, 0))
		switch {
		case len(body) == 0:
			if ev.Body != "" || ev.IsBase64Encoded {
				t.Errorf("empty body became %q (base64 %v)", ev.Body, ev.IsBase64Encoded)
			}
		case ev.IsBase64Encoded:
			got, err := base64.StdEncoding.DecodeString(ev.Body)
			if err != nil || string(got) != string(body) {
				t.Errorf("base64 body does not decode to the request body")
			}
		default:
			if ev.Body != string(body) {
				t.Errorf("text body changed")
			}
		}
		for _, c := range ev.Cookies {
			if c == "" || strings.Contains(c, ";") {
				t.Errorf("cookie %q not split", c)
			}
		}
		for k := range ev.Headers {
			if k != strings.ToLower(k) || k == "cookie" {
				t.Errorf("header %q", k)
			}
		}
		if ev.RouteKey != route.Key() || ev.RequestContext.HTTP.SourceIP != "192.0.2.1" {
			t.Errorf("routeKey %q sourceIp %q", ev.RouteKey, ev.RequestContext.HTTP.SourceIP)
		}
	})
}
