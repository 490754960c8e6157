package metrics

import (
	"runtime/metrics"
)

var memorySamples = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},         // all memory the Go runtime mapped
	{Name: "/memory/classes/heap/released:bytes"}, // returned to the OS, not resident
}

// MemoryUsage returns the Go runtime's memory in use (mapped minus released,
// close to its resident size) over limitMB (AWS_LAMBDA_FUNCTION_MEMORY_SIZE),
// or nil when the limit is unknown. runtime/metrics does not stop the world,
// unlike runtime.ReadMemStats.
func MemoryUsage(limitMB int) *float64 {
	if limitMB <= 0 {
		return nil
	}
	s := make([]metrics.Sample, len(memorySamples))
	copy(s, memorySamples)
	metrics.Read(s)
	var total, released uint64
	if s[0].Value.Kind() == metrics.KindUint64 {
		total = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		released = s[1].Value.Uint64()
	}
	used := float64(total - min(released, total))
	frac := used / (float64(limitMB) * 1024 * 1024)
	return &frac
}
