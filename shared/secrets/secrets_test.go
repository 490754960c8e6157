package secrets_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/zenithfresh/zenith-serverless/shared/secrets"
)

var creds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")

// signedServer answers like Secrets Manager and SSM (JSON 1.1), after
// checking each request's SigV4 signature by signing it again with the same
// credentials: a request signed for the wrong service, region or body fails.
func signedServer(t *testing.T, answer func(target string, in map[string]any) (int, string)) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		target := r.Header.Get("X-Amz-Target")
		service := "secretsmanager"
		if strings.HasPrefix(target, "AmazonSSM.") {
			service = "ssm"
		}
		at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		if err != nil {
			t.Errorf("no X-Amz-Date: %v", err)
		}
		again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), strings.NewReader(string(body)))
		for _, h := range []string{"Content-Type", "X-Amz-Target"} {
			again.Header.Set(h, r.Header.Get(h))
		}
		c, _ := creds.Retrieve(context.Background())
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), c, again, hex.EncodeToString(sum[:]), service, "eu-west-1", at); err != nil {
			t.Fatal(err)
		}
		if got, want := r.Header.Get("Authorization"), again.Header.Get("Authorization"); got != want {
			t.Errorf("signature for %s:\n got %s\nwant %s", target, got, want)
		}
		if r.Header.Get("X-Amz-Security-Token") != "session-token" {
			t.Error("session token not sent")
		}
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		status, out := answer(target, in)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func reader(url string) *secrets.AWS {
	r := secrets.NewAWS(aws.Config{Region: "eu-west-1", Credentials: creds})
	r.Endpoint = url
	return r
}

func TestReadSecret(t *testing.T) {
	srv, _ := signedServer(t, func(target string, in map[string]any) (int, string) {
		switch target {
		case "secretsmanager.GetSecretValue":
			switch in["SecretId"] {
			case "zenith/json":
				return 200, `{"Name":"zenith/json","SecretString":"{\"password\":\"from-json\"}"}`
			case "zenith/plain", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:zenith/plain":
				return 200, `{"SecretString":"from-plain"}`
			case "zenith/binary":
				return 200, `{"SecretBinary":"AAEC"}`
			}
			return 400, `{"__type":"com.amazonaws.secretsmanager#ResourceNotFoundException","message":"Secrets Manager can't find the specified secret."}`
		case "AmazonSSM.GetParameter":
			if in["WithDecryption"] != true {
				t.Error("GetParameter without decryption")
			}
			switch in["Name"] {
			case "/zenith/secure", "arn:aws:ssm:eu-west-1:123456789012:parameter/zenith/secure":
				return 200, `{"Parameter":{"Name":"/zenith/secure","Type":"SecureString","Value":"from-ssm"}}`
			case "/zenith/plain":
				return 200, `{"Parameter":{"Name":"/zenith/plain","Type":"String","Value":"x"}}`
			}
			return 400, `{"__type":"ParameterNotFound","message":"not found"}`
		}
		return 400, `{"__type":"UnknownOperationException"}`
	})
	for _, tc := range []struct{ ref, want, errPart string }{
		{"zenith/json", "from-json", ""},
		{"secretsmanager:zenith/plain", "from-plain", ""},
		{"arn:aws:secretsmanager:eu-west-1:123456789012:secret:zenith/plain", "from-plain", ""},
		{"/zenith/secure", "from-ssm", ""},
		{"ssm:/zenith/secure", "from-ssm", ""},
		{"arn:aws:ssm:eu-west-1:123456789012:parameter/zenith/secure", "from-ssm", ""},
		{"/zenith/plain", "", "must be a SecureString"},
		{"/zenith/none", "", "ParameterNotFound"},
		{"zenith/none", "", "ResourceNotFoundException"},
		{"zenith/binary", "", "no string value"},
		{"  ", "", "empty secret reference"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			got, err := reader(srv.URL).ReadSecret(context.Background(), tc.ref)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want one containing %q", err, tc.errPart)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// Throttling and server errors are retried a few times; a client error is not.
func TestReadSecretRetries(t *testing.T) {
	var n atomic.Int64
	srv, calls := signedServer(t, func(string, map[string]any) (int, string) {
		if n.Add(1) < 3 {
			return 400, `{"__type":"ThrottlingException","message":"slow down"}`
		}
		return 200, `{"SecretString":"eventually"}`
	})
	if got, err := reader(srv.URL).ReadSecret(context.Background(), "zenith/x"); err != nil || got != "eventually" || calls.Load() != 3 {
		t.Fatalf("got %q, %v after %d calls; want it on the third", got, err, calls.Load())
	}
	srv2, calls2 := signedServer(t, func(string, map[string]any) (int, string) {
		return 400, `{"__type":"AccessDeniedException","message":"no"}`
	})
	if _, err := reader(srv2.URL).ReadSecret(context.Background(), "zenith/x"); err == nil || calls2.Load() != 1 {
		t.Fatalf("access denied: %v after %d calls, want one call and an error", err, calls2.Load())
	}
}
