package users

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/zenithfresh/zenith-serverless/shared/config"
	"github.com/zenithfresh/zenith-serverless/shared/passwords"
	"github.com/zenithfresh/zenith-serverless/shared/store"
)

// Master is the master user's configuration: MASTER_USERNAME and either
// MASTER_PASSWORD or MASTER_PASSWORD_SECRET.
type Master struct {
	Username string
	Password string // MASTER_PASSWORD (never logged)
	Secret   string // MASTER_PASSWORD_SECRET: a Secrets Manager secret or an SSM SecureString
}

// MasterFromConfig checks the master user's variables; the auth function
// cannot start without them. Errors name the variable.
func MasterFromConfig(cfg config.Config) (Master, error) {
	m := Master{Username: cfg.MasterUsername, Password: cfg.MasterPassword, Secret: cfg.MasterPasswordSecret}
	var errs []error
	if m.Username == "" {
		errs = append(errs, errors.New("MASTER_USERNAME is required by the auth function"))
	} else if msgs := ValidateUsername(m.Username); msgs != nil {
		errs = append(errs, fmt.Errorf("MASTER_USERNAME is invalid: %s", strings.Join(msgs, "; ")))
	}
	switch {
	case m.Password == "" && m.Secret == "":
		errs = append(errs, errors.New("MASTER_PASSWORD or MASTER_PASSWORD_SECRET is required by the auth function"))
	case m.Password != "" && m.Secret != "":
		errs = append(errs, errors.New("MASTER_PASSWORD and MASTER_PASSWORD_SECRET are both set: set only one"))
	case m.Password != "":
		if msgs := ValidatePassword(m.Password); msgs != nil {
			errs = append(errs, fmt.Errorf("MASTER_PASSWORD is invalid: %s", strings.Join(msgs, "; ")))
		}
	}
	return m, errors.Join(errs...)
}

// SecretReader resolves MASTER_PASSWORD_SECRET.
type SecretReader interface {
	ReadSecret(ctx context.Context, ref string) (string, error)
}

// Bootstrap seeds the default roles and creates the master user when it is
// absent: a strongly consistent GetItem first, and only when the user is
// missing, the password is read, hashed and written with a conditional put,
// so any number of instances starting together create exactly one user and
// a warm restart costs one read. An existing master user is never changed.
func (s *Store) Bootstrap(ctx context.Context, m Master, secrets SecretReader) error {
	if err := s.roles.Seed(ctx); err != nil {
		return err
	}
	existing, err := s.Get(ctx, m.Username)
	if err != nil {
		return fmt.Errorf("read master user: %w", err)
	}
	if existing != nil {
		return nil
	}
	password := m.Password
	if password == "" {
		if secrets == nil {
			return errors.New("MASTER_PASSWORD_SECRET is set but no secret reader is available")
		}
		password, err = secrets.ReadSecret(ctx, m.Secret)
		if err != nil {
			return fmt.Errorf("MASTER_PASSWORD_SECRET: %w", err)
		}
		if msgs := ValidatePassword(password); msgs != nil {
			return fmt.Errorf("MASTER_PASSWORD_SECRET holds an invalid password: %s", strings.Join(msgs, "; "))
		}
	}
	hash, err := passwords.Hash(password, s.params)
	if err != nil {
		return err
	}
	now := s.clock.Now().UnixMilli()
	u := &User{
		ID: ID(m.Username), Username: m.Username, Name: "Master Administrator", Role: RoleMasterAdmin,
		PasswordHash: hash, Active: true, SessionVersion: 1, Rev: 1, CreatedAt: now, UpdatedAt: now,
	}
	// Concurrent starts race on the conditional put; a transaction conflict
	// or a lost race both end with the user present, which a re-read proves.
	for attempt := 0; attempt < 8; attempt++ {
		created, err := s.put(ctx, u)
		if err == nil {
			if created {
				s.audit(ctx, Actor{Username: "bootstrap"}, "user.created", u.ID, "role", u.Role, "master", true)
			}
			return nil
		}
		existing, gerr := s.Get(ctx, m.Username)
		if gerr == nil && existing != nil {
			return nil
		}
		if err := store.Sleep(ctx, time.Duration(10*(attempt+1))*time.Millisecond); err != nil {
			return err
		}
	}
	return errors.New("create master user: gave up after repeated conflicts")
}

// SecretsManagerAPI is the part of the Secrets Manager client used here.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// SSMAPI is the part of the SSM client used here.
type SSMAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, opts ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// AWSSecrets reads the master password from Secrets Manager or SSM
// Parameter Store. A reference is routed by its form:
//   - an ARN names its service (arn:…:secretsmanager:… or arn:…:ssm:…:parameter/…);
//   - "ssm:<name>" and "secretsmanager:<name>" name the service explicitly;
//   - a name starting with "/" is an SSM parameter path;
//   - any other name is a Secrets Manager secret.
//
// A Secrets Manager secret may hold the password itself or a JSON object
// with a "password" field; an SSM parameter must be a SecureString.
type AWSSecrets struct {
	SecretsManager SecretsManagerAPI
	SSM            SSMAPI
}

// NewAWSSecrets builds the readers from an AWS configuration.
func NewAWSSecrets(ac aws.Config) AWSSecrets {
	return AWSSecrets{SecretsManager: secretsmanager.NewFromConfig(ac), SSM: ssm.NewFromConfig(ac)}
}

// ReadSecret returns the password the reference points at.
func (a AWSSecrets) ReadSecret(ctx context.Context, ref string) (string, error) {
	service, name := route(ref)
	if name == "" {
		return "", fmt.Errorf("empty secret reference %q", ref)
	}
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
