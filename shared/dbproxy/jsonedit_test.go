package dbproxy

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
	"unicode/utf8"
)

func TestRemoveMember(t *testing.T) {
	tests := []struct {
		name, in, out, value string
		ok                   bool
	}{
		{"only", `{"ConsumedCapacity":{"TableName":"t","CapacityUnits":1.0}}`, `{}`, `{"TableName":"t","CapacityUnits":1.0}`, true},
		{"last", `{"Item":{"pk":{"S":"k"}},"ConsumedCapacity":{"CapacityUnits":0.5}}`, `{"Item":{"pk":{"S":"k"}}}`, `{"CapacityUnits":0.5}`, true},
		{"first", `{"ConsumedCapacity":[{"TableName":"a"}],"Responses":{}}`, `{"Responses":{}}`, `[{"TableName":"a"}]`, true},
		{"middle", `{"a":1,"ConsumedCapacity":[],"b":"ConsumedCapacity"}`, `{"a":1,"b":"ConsumedCapacity"}`, `[]`, true},
		{"spaced", "{ \"ConsumedCapacity\" : 1 ,\n \"a\" : 2 }", "{\n \"a\" : 2 }", `1`, true},
		{"nested only", `{"a":{"ConsumedCapacity":1}}`, `{"a":{"ConsumedCapacity":1}}`, ``, false},
		{"absent", `{}`, `{}`, ``, false},
		{"not an object", `[1]`, `[1]`, ``, false},
		{"broken", `{"ConsumedCapacity":`, `{"ConsumedCapacity":`, ``, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, value, ok := removeMember([]byte(tc.in), "ConsumedCapacity")
			if string(out) != tc.out || string(value) != tc.value || ok != tc.ok {
				t.Errorf("removeMember(%s) = %s, %s, %v; want %s, %s, %v", tc.in, out, value, ok, tc.out, tc.value, tc.ok)
			}
		})
	}
}

func TestSetMember(t *testing.T) {
	tests := []struct{ name, in, out string }{
		{"empty", `{}`, `{"ReturnConsumedCapacity":"INDEXES"}`},
		{"added first", `{"TableName":"t"}`, `{"ReturnConsumedCapacity":"INDEXES","TableName":"t"}`},
		{"replaced", `{"TableName":"t","ReturnConsumedCapacity":"NONE","Key":{}}`, `{"TableName":"t","ReturnConsumedCapacity":"INDEXES","Key":{}}`},
		{"spaced", ` { "a" : 1 } `, ` {"ReturnConsumedCapacity":"INDEXES", "a" : 1 } `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := setMember([]byte(tc.in), "ReturnConsumedCapacity", []byte(`"INDEXES"`))
			if err != nil || string(out) != tc.out {
				t.Errorf("setMember(%s) = %s, %v; want %s", tc.in, out, err, tc.out)
			}
		})
	}
	if _, err := setMember([]byte(`"x"`), "k", []byte(`1`)); err == nil {
		t.Error("setMember on a string: no error")
	}
}

// FuzzEdits checks that removing or setting a member leaves every other
// member byte for byte and the result valid JSON.
func FuzzEdits(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"ConsumedCapacity":{"x":[1,2]},"b":"c"}`, ` { "a" : [ ] , "b":null } `, `{"a":1,"a":2}`} {
		f.Add(s, "a")
		f.Add(s, "ConsumedCapacity")
	}
	f.Fuzz(func(t *testing.T, in, key string) {
		ms, _, err := members([]byte(in))
		if err != nil || !utf8.ValidString(key) { // the proxy's keys are fixed, valid names
			return
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if seen[m.key] {
				return // DynamoDB never repeats a key
			}
			seen[m.key] = true
		}
		others := func(body []byte) []string {
			var vs []string
			got, _, err := members(body)
			if err != nil {
				t.Fatalf("edited %q into invalid JSON %q: %v", in, body, err)
			}
			for _, m := range got {
				if m.key != key {
					vs = append(vs, m.key+"="+string(body[m.valueStart:m.valueEnd]))
				}
			}
			return vs
		}
		before := others([]byte(in))
		if out, _, ok := removeMember([]byte(in), key); ok {
			after := others(out)
			if !json.Valid(out) || !slices.Equal(before, after) || len(after) != len(ms)-1 {
				t.Fatalf("removeMember(%q, %q) = %q", in, key, out)
			}
		}
		out, err := setMember([]byte(in), key, []byte(`"v"`))
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := memberValue(out, key); !ok || string(v) != `"v"` || !json.Valid(out) || !slices.Equal(before, others(out)) {
			t.Fatalf("setMember(%q, %q) = %q", in, key, out)
		}
	})
}

func TestParseCall(t *testing.T) {
	tests := []struct {
		name, target, body string
		op                 string
		tables             []string
		capacity, asked    bool
		write              bool
	}{
		{"get", "DynamoDB_20120810.GetItem", `{"TableName":"t","Key":{}}`, "GetItem", []string{"t"}, true, false, false},
		{"put asking", "DynamoDB_20120810.PutItem", `{"TableName":"t","ReturnConsumedCapacity":"TOTAL"}`, "PutItem", []string{"t"}, true, true, true},
		{"NONE is not asking", "DynamoDB_20120810.UpdateItem", `{"TableName":"t","ReturnConsumedCapacity":"NONE"}`, "UpdateItem", []string{"t"}, true, false, true},
		{"batch", "DynamoDB_20120810.BatchGetItem", `{"RequestItems":{"b":{},"a":{}}}`, "BatchGetItem", []string{"a", "b"}, true, false, false},
		{"transact", "DynamoDB_20120810.TransactWriteItems", `{"TransactItems":[{"Put":{"TableName":"b"}},{"ConditionCheck":{"TableName":"a"}},{"Update":{"TableName":"b"}}]}`, "TransactWriteItems", []string{"b", "a"}, true, false, true},
		{"select", "DynamoDB_20120810.ExecuteStatement", `{"Statement":" select * from t"}`, "ExecuteStatement", nil, true, false, false},
		{"partiql write", "DynamoDB_20120810.BatchExecuteStatement", `{"Statements":[{"Statement":"SELECT 1"},{"Statement":"UPDATE t SET a=1"}]}`, "BatchExecuteStatement", nil, true, false, true},
		{"control plane", "DynamoDB_20120810.CreateTable", `{"TableName":"t"}`, "CreateTable", []string{"t"}, false, false, false},
		{"no target", "", `not json`, "unknown", nil, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := parseCall(tc.target, []byte(tc.body))
			if c.op != tc.op || !slices.Equal(c.tables, tc.tables) || c.capacity != tc.capacity || c.asked != tc.asked || c.write != tc.write {
				t.Errorf("parseCall = %+v", *c)
			}
		})
	}
}

func TestFaultValidate(t *testing.T) {
	tests := []struct {
		name string
		f    Fault
		ok   bool
	}{
		{"throttle", Fault{Kind: Throttle, Operations: []string{"GetItem"}, Fraction: 0.5}, true},
		{"latency", Fault{Kind: Latency, Delay: time.Second}, true},
		{"refuse for a while", Fault{Kind: Refuse, For: time.Second}, true},
		{"unknown kind", Fault{Kind: "boom"}, false},
		{"latency without delay", Fault{Kind: Latency}, false},
		{"delay on another kind", Fault{Kind: Hang, Delay: time.Second}, false},
		{"fraction above 1", Fault{Kind: Cut, Fraction: 1.5}, false},
		{"negative for", Fault{Kind: Cut, For: -1}, false},
		{"refuse one operation", Fault{Kind: Refuse, Operations: []string{"GetItem"}}, false},
		{"refuse a fraction", Fault{Kind: Refuse, Fraction: 0.5}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.f.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate(%+v) = %v", tc.f, err)
			}
		})
	}
}
