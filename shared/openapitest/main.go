package openapitest

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	zenith "github.com/zenithfresh/zenith-serverless"
	"github.com/zenithfresh/zenith-serverless/shared/apitest"
)

var (
	activeMu sync.Mutex
	active   *Validator
)

// Main is the TestMain body of a package whose tests produce the functions'
// real answers: it loads openapi.yaml, has apitest.Do validate every exchange
// against it (apitest.ValidateWith), runs the tests and prints how many
// answers and requests were validated. It returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(openapitest.Main(m)) }
func Main(m *testing.M) int {
	v, err := Load(zenith.OpenAPI)
	if err != nil {
		fmt.Fprintf(os.Stderr, "openapitest: %v\n", err)
		return 1
	}
	activeMu.Lock()
	active = v
	activeMu.Unlock()
	apitest.ValidateWith(v)
	code := m.Run()
	apitest.ValidateWith(nil)
	c := v.Counts()
	// go test shows this line with -v (or when the package fails).
	fmt.Printf("openapi.yaml: validated %d responses and %d requests (%d operation/status pairs)\n",
		c.Responses, c.Requests, len(c.Answers))
	return code
}

// Active returns the validator Main installed, nil outside Main (tests that
// validate exchanges apitest.Do does not see use it, e.g. CheckHTTP).
func Active() *Validator {
	activeMu.Lock()
	defer activeMu.Unlock()
	return active
}

// Operations lists the document's operations as "<METHOD> <path template>", sorted.
func (v *Validator) Operations() []string {
	var ops []string
	for template, item := range v.doc.Paths.Map() {
		for method := range item.Operations() {
			ops = append(ops, method+" "+template)
		}
	}
	sort.Strings(ops)
	return ops
}

// WithoutSuccess returns the operations (as Operations names them) for which
// c holds no validated 2xx answer.
func (v *Validator) WithoutSuccess(c Counts) []string {
	ok := map[string]bool{}
	for answer, n := range c.Answers {
		i := strings.LastIndexByte(answer, ' ')
		if i < 0 || n == 0 {
			continue
		}
		if status, err := strconv.Atoi(answer[i+1:]); err == nil && status >= 200 && status <= 299 {
			ok[answer[:i]] = true
		}
	}
	var missing []string
	for _, op := range v.Operations() {
		if !ok[op] {
			missing = append(missing, op)
		}
	}
	return missing
}

// Since is what was counted between before and c (two Counts of one Validator).
func (c Counts) Since(before Counts) Counts {
	d := Counts{Responses: c.Responses - before.Responses, Requests: c.Requests - before.Requests, Answers: map[string]int{}}
	for k, n := range c.Answers {
		if n -= before.Answers[k]; n > 0 {
			d.Answers[k] = n
		}
	}
	return d
}
