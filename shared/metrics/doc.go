// Package metrics measures every request of every function: per-minute
// counters in DynamoDB (summed across shards and instances) and CloudWatch
// Embedded Metric Format lines, and reads them back for the monitor and the
// load signal.
package metrics
