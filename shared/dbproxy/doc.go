// Package dbproxy is an HTTP proxy between DynamoDB SDK clients and DynamoDB
// Local, for benchmarks and fault-injection tests. It counts calls and the
// capacity they consume, delays every call by a settable round trip, and
// injects outages. It is a test and benchmark tool: it edits request bodies,
// which breaks SigV4 signatures, so it only works in front of DynamoDB Local
// (which checks none).
//
//	p, err := dbproxy.New(endpoint)            // listens on 127.0.0.1:0
//	defer p.Close()
//	client := store.NewDynamoDB(ac, cfg.DynamoDBEndpoint, cfg.DBTimeout, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(p.URL()) })
//	p.SetDelay(20 * time.Millisecond)          // each call waits 20 ms first
//	p.SetFault(dbproxy.Fault{Kind: dbproxy.Throttle, Operations: []string{"GetItem"}, Fraction: 0.1})
//	s := p.Stats()                             // calls, tables, units, faults
//
// # Delay
//
// SetDelay(d) makes every DynamoDB call (retries and faulted calls included,
// admin calls not) wait d before anything else happens to it, so the number of
// sequential DynamoDB round trips on a request's critical path is
// (latency at d − latency at 0) ÷ d. Calls are delayed concurrently.
//
// # Accounting
//
// Each call is counted under its operation (from X-Amz-Target) and its tables
// (TableName, the keys of RequestItems, the TableName of every TransactItems
// entry; PartiQL statements are not parsed for tables). For the operations
// that take ReturnConsumedCapacity, a request that does not ask for it (absent
// or NONE) gets "ReturnConsumedCapacity":"INDEXES" added; the answer's
// ConsumedCapacity (an object or a list) is summed per table, and the per-index
// part per "table/index", then removed again, splicing the body so that every
// other byte is what DynamoDB sent, with X-Amz-Crc32 and Content-Length
// recomputed. A request that asked for capacity itself gets its answer
// untouched. The proxy asks upstream for uncompressed answers
// (Accept-Encoding: identity) so it can read them.
//
// DynamoDB Local 3.3.1 only ever reports CapacityUnits, so units count as
// reads or writes by operation (reads: GetItem, BatchGetItem, Query, Scan,
// TransactGetItems; writes: the others); a ReadCapacityUnits/WriteCapacityUnits
// split is used when an answer has one. Observed with DynamoDB Local 3.3.1:
//
//   - GetItem, PutItem, UpdateItem, DeleteItem, Query, Scan, BatchGetItem,
//     BatchWriteItem, TransactGetItems and TransactWriteItems report
//     ConsumedCapacity, index writes and index reads included in the table's
//     total and itemised under INDEXES (e.g. a PutItem of a small new item on a
//     table with one GSI: 2 units, 1 of them on the index; an eventually
//     consistent read 0.5, a strongly consistent one 1, a transactional one 2).
//   - ExecuteStatement, BatchExecuteStatement and ExecuteTransaction (PartiQL)
//     report none, even when asked: the proxy computes nothing for them and
//     counts such answers in Stats.NoCapacity.
//   - Error answers (e.g. ConditionalCheckFailedException) carry none, so a
//     failed conditional write counts no units (real DynamoDB charges it).
//
// # Faults
//
// A Fault has a Kind, optional Operations and Tables filters, an optional
// Fraction of matching calls (each decided by one draw of the WithRandom
// source, in call order) and an optional For after which it clears itself.
// At most one fault of each kind is active; SetFault replaces the one of its
// kind. Per call, a matching Latency fault adds its Delay, then the first
// matching of Hang, Cut, Throttle, ThroughputExceeded, ServerError decides
// the outcome:
//
//   - refuse: the listener is closed (connection refused) and idle keep-alive
//     connections are closed (in-flight ones once their answer is sent);
//     clearing it listens again on the same port. It applies to every call.
//   - latency: waits Delay more, then forwards (set it beyond the client's
//     DB_TIMEOUT for a deadline error).
//   - hang: holds the call until the client gives up or the fault clears (the
//     call is then forwarded).
//   - cut: forwards the call, sends the status line, the headers and half the
//     body, then resets the connection (RST): a network error for the client.
//   - throttle: HTTP 400, __type com.amazonaws.dynamodb.v20120810#ThrottlingException.
//   - throughput: HTTP 400, ProvisionedThroughputExceededException.
//   - server-error: HTTP 500, __type com.amazon.coral.service#InternalFailure.
//
// When the upstream cannot be reached the proxy resets the client's
// connection too (Stats.UpstreamErrors).
//
// # Admin endpoints
//
// Under AdminPrefix on the proxy's own listener (DynamoDB calls always go to
// "/"), and from AdminHandler for a second listener that stays reachable while
// connections are refused. Errors are {"code":"...","message":"..."} with
// codes NOT_FOUND (404), METHOD_NOT_ALLOWED (405), INVALID_DELAY,
// INVALID_FAULT, INVALID_KIND (400), LISTEN_FAILED and CLOSED (503).
//
//	GET  /__dbproxy/stats          200 Stats as JSON:
//	     {"calls":3,"operations":{"GetItem":3},"tables":{"t":3},"units":{"read":1,"write":0},
//	      "tableUnits":{"t":{"read":1,"write":0}},"indexUnits":{},"noCapacity":{},
//	      "faults":{"server-error":2},"upstreamErrors":0}
//	POST /__dbproxy/reset          204, zeroes the stats
//	GET  /__dbproxy/delay          200 {"ms":50}
//	POST /__dbproxy/delay?ms=50    204 (0 ≤ ms ≤ 3600000)
//	GET  /__dbproxy/fault          200 the active faults, a JSON list
//	POST /__dbproxy/fault          204; body one fault, unknown fields rejected:
//	     {"kind":"latency","operations":["GetItem"],"tables":["t"],"fraction":0.5,"delayMs":6000,"forMs":10000}
//	     kind: refuse, latency, hang, cut, throttle, throughput, server-error
//	POST /__dbproxy/clear          204, clears every fault
//	POST /__dbproxy/clear?kind=K   204, clears the fault of kind K
//
// From a shell, with cmd/dbproxy:
//
//	exec 3< <(go run ./cmd/dbproxy -upstream "$DYNAMODB_ENDPOINT"); read -r url <&3
//	curl -fsS -X POST "$url/__dbproxy/fault" -d '{"kind":"refuse","forMs":3000}'
//	curl -fsS "$url/__dbproxy/stats"
package dbproxy
