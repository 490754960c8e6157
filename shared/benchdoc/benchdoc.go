// Package benchdoc writes generated benchmark tables into BENCHMARKS.md and
// describes the machine they ran on, for the benchmark programs under cmd/.
package benchdoc

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// ReplaceSection puts content between the `<!-- name:begin -->` and
// `<!-- name:end -->` markers of file, appending the markers when absent, so
// a benchmark rewrites its own table and nothing else.
func ReplaceSection(file, name, content string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	begin, end := "<!-- "+name+":begin -->", "<!-- "+name+":end -->"
	s := string(raw)
	block := begin + "\n" + content + end
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i >= 0 && j > i {
		s = s[:i] + block + s[j+len(end):]
	} else {
		s = strings.TrimRight(s, "\n") + "\n\n" + block + "\n"
	}
	return os.WriteFile(file, []byte(s), 0o644)
}

// LoadAvg is the 1, 5 and 15 minute load average ("unknown" off Linux).
func LoadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// Machine says when and where a figure was measured, with the load before
// and after, for the sentence above each generated table.
func Machine(loadBefore string) string {
	return fmt.Sprintf("on %s, %d CPUs, %s; load average before %s, after %s",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), loadBefore, LoadAvg())
}

// Median of xs (the mean of the two middle values for an even count; 0 for none).
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	switch {
	case len(s) == 0:
		return 0
	case len(s)%2 == 1:
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
