package sessionapi_test

import (
	"os"
	"testing"

	"github.com/zenithfresh/zenith-serverless/shared/openapitest"
)

// TestMain validates every exchange the tests make through apitest against
// openapi.yaml and prints the count (go test -v).
func TestMain(m *testing.M) { os.Exit(openapitest.Main(m)) }
