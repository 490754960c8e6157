package dbproxy

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
)

// Units are consumed capacity units.
type Units struct {
	Read  float64 `json:"read"`
	Write float64 `json:"write"`
}

func (u *Units) add(v Units) {
	u.Read += v.Read
	u.Write += v.Write
}

// Stats is a snapshot of what went through the proxy since it started or was
// last Reset. Its maps are never nil. The JSON names are the admin wire format.
type Stats struct {
	// Calls counts DynamoDB calls received (retries are calls too), faulted or not.
	Calls int64 `json:"calls"`
	// Operations counts calls by operation (from X-Amz-Target).
	Operations map[string]int64 `json:"operations"`
	// Tables counts calls by table: a call on two tables counts once for each.
	Tables map[string]int64 `json:"tables"`
	// Units is the total of TableUnits.
	Units Units `json:"units"`
	// TableUnits sums the ConsumedCapacity DynamoDB reported per table, its
	// indexes included.
	TableUnits map[string]Units `json:"tableUnits"`
	// IndexUnits is the part of TableUnits spent on secondary indexes, keyed
	// "table/index" (only what DynamoDB itemised: see the package doc).
	IndexUnits map[string]Units `json:"indexUnits"`
	// NoCapacity counts, by operation, successful answers of operations that
	// take ReturnConsumedCapacity but carried no ConsumedCapacity (DynamoDB
	// Local's PartiQL operations), so missing units do not go unnoticed.
	NoCapacity map[string]int64 `json:"noCapacity"`
	// Faults counts injected faults by kind: calls for most kinds, open
	// connections closed for Refuse (refused connections never reach the proxy).
	Faults map[Kind]int64 `json:"faults"`
	// UpstreamErrors counts calls DynamoDB could not be reached for; the
	// proxy resets the client's connection then.
	UpstreamErrors int64 `json:"upstreamErrors"`
}

func newStats() Stats {
	return Stats{
		Operations: map[string]int64{}, Tables: map[string]int64{},
		TableUnits: map[string]Units{}, IndexUnits: map[string]Units{},
		NoCapacity: map[string]int64{}, Faults: map[Kind]int64{},
	}
}

// statsRecorder accumulates Stats; safe for concurrent use.
type statsRecorder struct {
	mu sync.Mutex
	s  Stats
}

func (r *statsRecorder) snapshot() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.s
	s.Operations = maps.Clone(r.s.Operations)
	s.Tables = maps.Clone(r.s.Tables)
	s.TableUnits = maps.Clone(r.s.TableUnits)
	s.IndexUnits = maps.Clone(r.s.IndexUnits)
	s.NoCapacity = maps.Clone(r.s.NoCapacity)
	s.Faults = maps.Clone(r.s.Faults)
	return s
}

func (r *statsRecorder) reset() {
	r.mu.Lock()
	r.s = newStats()
	r.mu.Unlock()
}

func (r *statsRecorder) call(c *call) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.s.Calls++
	r.s.Operations[c.op]++
	for _, t := range c.tables {
		r.s.Tables[t]++
	}
}

func (r *statsRecorder) fault(k Kind, n int64) {
	r.mu.Lock()
	r.s.Faults[k] += n
	r.mu.Unlock()
}

func (r *statsRecorder) upstreamError() {
	r.mu.Lock()
	r.s.UpstreamErrors++
	r.mu.Unlock()
}

func (r *statsRecorder) noCapacity(op string) {
	r.mu.Lock()
	r.s.NoCapacity[op]++
	r.mu.Unlock()
}

// capacity records a ConsumedCapacity value: one object, or a list of them.
func (r *statsRecorder) capacity(c *call, raw json.RawMessage) {
	var list []capacityJSON
	if len(raw) > 0 && raw[0] == '[' {
		if json.Unmarshal(raw, &list) != nil {
			return
		}
	} else {
		var one capacityJSON
		if json.Unmarshal(raw, &one) != nil {
			return
		}
		list = []capacityJSON{one}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range list {
		table := e.TableName
		if table == "" && len(c.tables) == 1 {
			table = c.tables[0]
		}
		u := e.unitsJSON.split(c.write)
		r.s.Units.add(u)
		tu := r.s.TableUnits[table]
		tu.add(u)
		r.s.TableUnits[table] = tu
		for _, idx := range []map[string]unitsJSON{e.GlobalSecondaryIndexes, e.LocalSecondaryIndexes} {
			for name, iu := range idx {
				key := table + "/" + name
				v := r.s.IndexUnits[key]
				v.add(iu.split(c.write))
				r.s.IndexUnits[key] = v
			}
		}
	}
}

type unitsJSON struct {
	CapacityUnits      float64
	ReadCapacityUnits  float64
	WriteCapacityUnits float64
}

// split uses DynamoDB's own read/write split when it gives one; otherwise
// (DynamoDB Local only ever sends CapacityUnits) the operation decides.
func (u unitsJSON) split(write bool) Units {
	if u.ReadCapacityUnits != 0 || u.WriteCapacityUnits != 0 {
		return Units{Read: u.ReadCapacityUnits, Write: u.WriteCapacityUnits}
	}
	if write {
		return Units{Write: u.CapacityUnits}
	}
	return Units{Read: u.CapacityUnits}
}

type capacityJSON struct {
	TableName string
	unitsJSON
	GlobalSecondaryIndexes map[string]unitsJSON
	LocalSecondaryIndexes  map[string]unitsJSON
}

// capacityOps take ReturnConsumedCapacity; the value says whether their units are writes.
var capacityOps = map[string]bool{
	"GetItem": false, "BatchGetItem": false, "Query": false, "Scan": false, "TransactGetItems": false,
	"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true, "TransactWriteItems": true,
	// PartiQL: decided by the statements (see parseCall).
	"ExecuteStatement": false, "BatchExecuteStatement": false, "ExecuteTransaction": false,
}

// injectedCapacity is what the proxy asks for when the client did not: the
// per-index breakdown as well as the totals.
const injectedCapacity = "INDEXES"

// call is what the proxy knows of one DynamoDB call.
type call struct {
	op       string
	tables   []string // distinct, in the order the request names them
	capacity bool     // the operation takes ReturnConsumedCapacity
	asked    bool     // the client asked for ConsumedCapacity itself
	write    bool     // its units are write units
}

// parseCall reads the operation from X-Amz-Target and the tables from the
// body; a body that does not parse leaves the tables empty (DynamoDB will
// reject it anyway).
func parseCall(target string, body []byte) *call {
	op := target[strings.LastIndexByte(target, '.')+1:]
	if op == "" {
		op = "unknown"
	}
	write, capacity := capacityOps[op]
	c := &call{op: op, capacity: capacity, write: write}
	var req struct {
		TableName              string
		RequestItems           map[string]json.RawMessage
		TransactItems          []map[string]struct{ TableName string }
		ReturnConsumedCapacity string
		Statement              string
		Statements             []struct{ Statement string }
		TransactStatements     []struct{ Statement string }
	}
	if json.Unmarshal(body, &req) != nil {
		return c
	}
	c.asked = req.ReturnConsumedCapacity != "" && req.ReturnConsumedCapacity != "NONE"
	add := func(t string) {
		if t != "" && !slices.Contains(c.tables, t) {
			c.tables = append(c.tables, t)
		}
	}
	add(req.TableName)
	for _, t := range slices.Sorted(maps.Keys(req.RequestItems)) {
		add(t)
	}
	for _, item := range req.TransactItems {
		for _, kind := range slices.Sorted(maps.Keys(item)) {
			add(item[kind].TableName)
		}
	}
	// A PartiQL call writes unless every statement is a SELECT.
	statements := []string{req.Statement}
	for _, s := range req.Statements {
		statements = append(statements, s.Statement)
	}
	for _, s := range req.TransactStatements {
		statements = append(statements, s.Statement)
	}
	for _, s := range statements {
		if f := strings.Fields(s); len(f) > 0 && !strings.EqualFold(f[0], "SELECT") {
			c.write = true
		}
	}
	return c
}
