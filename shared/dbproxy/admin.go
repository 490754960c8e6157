package dbproxy

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxDelayMs bounds the delay set over HTTP.
const maxDelayMs = 3_600_000

type adminError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (p *Proxy) adminHandler() http.Handler {
	type route struct {
		method string
		serve  func(w http.ResponseWriter, r *http.Request)
	}
	routes := map[string][]route{
		"stats": {{http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Stats()) }}},
		"reset": {{http.MethodPost, func(w http.ResponseWriter, _ *http.Request) { p.Reset(); w.WriteHeader(http.StatusNoContent) }}},
		"delay": {
			{http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, http.StatusOK, map[string]int64{"ms": p.Delay().Milliseconds()})
			}},
			{http.MethodPost, p.postDelay},
		},
		"fault": {
			{http.MethodGet, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, p.Faults()) }},
			{http.MethodPost, p.postFault},
		},
		"clear": {{http.MethodPost, p.postClear}},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := strings.CutPrefix(r.URL.Path, AdminPrefix)
		rs := routes[name]
		if !ok || rs == nil {
			writeJSON(w, http.StatusNotFound, adminError{"NOT_FOUND", "unknown admin endpoint"})
			return
		}
		var allow []string
		for _, rt := range rs {
			if rt.method == r.Method {
				rt.serve(w, r)
				return
			}
			allow = append(allow, rt.method)
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, adminError{"METHOD_NOT_ALLOWED", "use " + strings.Join(allow, " or ")})
	})
}

func (p *Proxy) postDelay(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.ParseInt(r.URL.Query().Get("ms"), 10, 64)
	if err != nil || ms < 0 || ms > maxDelayMs {
		writeJSON(w, http.StatusBadRequest, adminError{"INVALID_DELAY", "ms must be an integer between 0 and " + strconv.Itoa(maxDelayMs)})
		return
	}
	p.SetDelay(time.Duration(ms) * time.Millisecond)
	w.WriteHeader(http.StatusNoContent)
}

func (p *Proxy) postFault(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"INVALID_FAULT", "unreadable body"})
		return
	}
	var f Fault
	if err := json.Unmarshal(body, &f); err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"INVALID_FAULT", "body is not a fault: " + err.Error()})
		return
	}
	if err := f.Validate(); err != nil {
		writeJSON(w, http.StatusBadRequest, adminError{"INVALID_FAULT", err.Error()})
		return
	}
	if err := p.SetFault(f); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, adminError{"CLOSED", err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (p *Proxy) postClear(w http.ResponseWriter, r *http.Request) {
	var err error
	if k := Kind(r.URL.Query().Get("kind")); k != "" {
		if !slices.Contains(Kinds, k) {
			writeJSON(w, http.StatusBadRequest, adminError{"INVALID_KIND", "unknown fault kind"})
			return
		}
		err = p.ClearFault(k)
	} else {
		err = p.ClearFaults()
	}
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, adminError{"LISTEN_FAILED", err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL_ERROR","message":"cannot encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
