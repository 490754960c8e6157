// Package secrets reads the master user's password from AWS Secrets Manager
// or SSM Parameter Store (MASTER_PASSWORD_SECRET). Only the auth function
// links it, and it speaks the two calls it needs itself (JSON 1.1, signed
// with the SDK's SigV4 signer) instead of linking the Secrets Manager and SSM
// SDK clients: their generated tables cost auth about 10 ms of init on every
// cold start (BENCHMARKS.md, Cold start) for a read made once per deployment.
package secrets

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// AWS reads the master password from Secrets Manager or SSM Parameter
// Store. A reference is routed by its form:
//   - an ARN names its service (arn:…:secretsmanager:… or arn:…:ssm:…:parameter/…);
//   - "ssm:<name>" and "secretsmanager:<name>" name the service explicitly;
//   - a name starting with "/" is an SSM parameter path;
//   - any other name is a Secrets Manager secret.
//
// A Secrets Manager secret may hold the password itself or a JSON object
// with a "password" field; an SSM parameter must be a SecureString.
type AWS struct {
	cfg    aws.Config
	client *http.Client
	// Endpoint, when set, replaces https://<service>.<region>.<domain> for
	// both services (a test server).
	Endpoint string
}

// NewAWS returns a reader signing with ac's credentials in ac's region.
func NewAWS(ac aws.Config) *AWS {
	return &AWS{cfg: ac, client: &http.Client{Timeout: 10 * time.Second}}
}

// ReadSecret returns the password the reference points at.
func (a *AWS) ReadSecret(ctx context.Context, ref string) (string, error) {
	service, name := route(ref)
	if name == "" {
		return "", fmt.Errorf("empty secret reference %q", ref)
	}
	if service == "ssm" {
		var out struct {
			Parameter *struct {
				Type  string
				Value *string
			}
		}
		if err := a.call(ctx, "ssm", "AmazonSSM.GetParameter", map[string]any{"Name": name, "WithDecryption": true}, &out); err != nil {
			return "", fmt.Errorf("read SSM parameter %s: %w", name, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return "", fmt.Errorf("SSM parameter %s has no value", name)
		}
		if out.Parameter.Type != "SecureString" {
			return "", fmt.Errorf("SSM parameter %s must be a SecureString, is %s", name, out.Parameter.Type)
		}
		return *out.Parameter.Value, nil
	}
	var out struct{ SecretString *string }
	if err := a.call(ctx, "secretsmanager", "secretsmanager.GetSecretValue", map[string]any{"SecretId": name}, &out); err != nil {
		return "", fmt.Errorf("read secret %s: %w", name, err)
	}
	if out.SecretString == nil {
		return "", fmt.Errorf("secret %s has no string value", name)
	}
	v := *out.SecretString
	if strings.HasPrefix(strings.TrimSpace(v), "{") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(v), &obj); err != nil {
			return "", fmt.Errorf("secret %s is not valid JSON", name)
		}
		pw, ok := obj["password"].(string)
		if !ok {
			return "", fmt.Errorf(`secret %s is a JSON object without a string "password" field`, name)
		}
		return pw, nil
	}
	return v, nil
}

// APIError is an error answer of the service (its __type and message).
type APIError struct {
	Status int
	Type   string
	Msg    string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Type, e.Status, e.Msg) }

// retryable: throttling and the service's own failures are retried, a
// client error (not found, access denied) is not.
func (e *APIError) retryable() bool {
	return e.Status >= 500 || strings.Contains(e.Type, "Throttling") || strings.Contains(e.Type, "TooManyRequests")
}

const attempts = 3

// call makes one JSON 1.1 call, signed with SigV4, retrying throttling,
// server errors and network failures with a short backoff.
func (a *AWS) call(ctx context.Context, service, target string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	var last error
	for attempt := 0; attempt < attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 100 * time.Millisecond):
			}
		}
		last = a.once(ctx, service, target, body, out)
		var api *APIError
		if last == nil || (errors.As(last, &api) && !api.retryable()) || ctx.Err() != nil {
			return last
		}
	}
	return last
}

func (a *AWS) once(ctx context.Context, service, target string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.endpoint(service), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	if a.cfg.Credentials == nil {
		return errors.New("no AWS credentials")
	}
	creds, err := a.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), service, a.cfg.Region, time.Now()); err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(raw, &e)
		if i := strings.LastIndexByte(e.Type, '#'); i >= 0 {
			e.Type = e.Type[i+1:]
		}
		return &APIError{Status: resp.StatusCode, Type: e.Type, Msg: e.Message}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

// endpoint is the service's regional endpoint (the partition's domain by
// region prefix), or the override.
func (a *AWS) endpoint(service string) string {
	if a.Endpoint != "" {
		return a.Endpoint
	}
	domain := "amazonaws.com"
	if strings.HasPrefix(a.cfg.Region, "cn-") {
		domain = "amazonaws.com.cn"
	}
	return "https://" + service + "." + a.cfg.Region + "." + domain + "/"
}

func route(ref string) (service, name string) {
	ref = strings.TrimSpace(ref)
	switch {
	case strings.HasPrefix(ref, "ssm:"):
		return "ssm", strings.TrimPrefix(ref, "ssm:")
	case strings.HasPrefix(ref, "secretsmanager:"):
		return "secretsmanager", strings.TrimPrefix(ref, "secretsmanager:")
	case strings.HasPrefix(ref, "arn:"):
		parts := strings.SplitN(ref, ":", 6)
		if len(parts) == 6 && parts[2] == "ssm" {
			// GetParameter takes the parameter's name or its ARN.
			return "ssm", ref
		}
		return "secretsmanager", ref
	case strings.HasPrefix(ref, "/"):
		return "ssm", ref
	}
	return "secretsmanager", ref
}
