// Package secrets reads the master user's password from AWS Secrets Manager
// or SSM Parameter Store (MASTER_PASSWORD_SECRET). Only the auth function
// links it.
package secrets

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// SecretsManagerAPI is the part of the Secrets Manager client used here.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// SSMAPI is the part of the SSM client used here.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

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
	SecretsManager SecretsManagerAPI
	SSM            SSMAPI

	newClients func() (SecretsManagerAPI, SSMAPI) // set by NewAWS: built on first use
	once       sync.Once
}

// NewAWS returns a reader whose clients are built from ac on first use: the
// secret is read at most once per deployment (when the master user is
// absent), so a start does not pay for two SDK clients it rarely needs.
func NewAWS(ac aws.Config) *AWS {
	return &AWS{newClients: func() (SecretsManagerAPI, SSMAPI) {
		return secretsmanager.NewFromConfig(ac), ssm.NewFromConfig(ac)
	}}
}

// ReadSecret returns the password the reference points at.
func (a *AWS) ReadSecret(ctx context.Context, ref string) (string, error) {
	service, name := route(ref)
	if name == "" {
		return "", fmt.Errorf("empty secret reference %q", ref)
	}
	a.once.Do(func() {
		if a.newClients != nil && a.SecretsManager == nil && a.SSM == nil {
			a.SecretsManager, a.SSM = a.newClients()
		}
	})
	if service == "ssm" {
		out, err := a.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			return "", fmt.Errorf("read SSM parameter %s: %w", name, err)
		}
		if out.Parameter == nil || out.Parameter.Value == nil {
			return "", fmt.Errorf("SSM parameter %s has no value", name)
		}
		if out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
			return "", fmt.Errorf("SSM parameter %s must be a SecureString, is %s", name, out.Parameter.Type)
		}
		return *out.Parameter.Value, nil
	}
	out, err := a.SecretsManager.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
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
			return "ssm", ref
		}
		return "secretsmanager", ref
	case strings.HasPrefix(ref, "/"):
		return "ssm", ref
	}
	return "secretsmanager", ref
}
