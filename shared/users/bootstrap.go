package users

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

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

// Validate checks the master user's variables; the auth function cannot
// start without them. Errors name the variable, never echo the password.
func (m Master) Validate() error {
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
	return errors.Join(errs...)
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
