package trafficapi

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
)

// OverrideRequest is a validated POST body.
type OverrideRequest struct {
	SimulateLoad bool
	Connections  int     // what to add when SimulateLoad (default 100)
	Load         float64 // what to add when SimulateLoad (default 0.1)
}

// overrideBody keeps every field raw, so a wrong type gets the original's
// message instead of a decoder's, and an unknown field is VALIDATION_ERROR.
type overrideBody struct {
	SimulateLoad json.RawMessage `json:"simulateLoad"`
	Connections  json.RawMessage `json:"connections"`
	Load         json.RawMessage `json:"load"`
}

// ParseOverride validates a POST body as the original did (every field
// optional; simulateLoad a boolean, connections an integer 0..10000, load a
// number 0..1), except that an explicit 0 is honoured instead of becoming the
// default. All problems are reported together.
func ParseOverride(body []byte) (OverrideRequest, error) {
	var raw overrideBody
	if err := httpapi.DecodeJSON(body, &raw); err != nil {
		return OverrideRequest{}, err
	}
	out := OverrideRequest{Connections: defaultConnections, Load: defaultLoad}
	var details []string
	if raw.SimulateLoad != nil {
		switch string(bytes.TrimSpace(raw.SimulateLoad)) {
		case "true":
			out.SimulateLoad = true
		case "false":
		default:
			details = append(details, "simulateLoad must be a boolean")
		}
	}
	if raw.Connections != nil {
		f, ok := number(raw.Connections)
		if !ok || f != math.Trunc(f) || f < 0 || f > 10000 {
			details = append(details, "connections must be an integer between 0 and 10000")
		} else {
			out.Connections = int(f)
		}
	}
	if raw.Load != nil {
		f, ok := number(raw.Load)
		if !ok || f < 0 || f > 1 {
			details = append(details, "load must be a number between 0 and 1")
		} else {
			out.Load = f
		}
	}
	if len(details) > 0 {
		return OverrideRequest{}, httpapi.Validation(details...)
	}
	return out, nil
}

// number parses a raw JSON value that must be a JSON number (not a string,
// not null), finite.
func number(raw json.RawMessage) (float64, bool) {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(s), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
