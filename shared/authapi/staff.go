package authapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/zenithfresh/zenith-serverless/shared/httpapi"
	"github.com/zenithfresh/zenith-serverless/shared/store"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// Page sizes of GET /api/auth/users.
const (
	defaultUserPage = 50
	maxUserPage     = 100
)

type createUserBody struct {
	Username *string `json:"username"`
	Password *string `json:"password"`
	Role     *string `json:"role"`
	Name     *string `json:"name"`
}

type updateUserBody struct {
	Role            *string `json:"role"`
	Name            *string `json:"name"`
	Active          *bool   `json:"active"`
	Password        *string `json:"password"`
	CurrentPassword *string `json:"currentPassword"`
}

// ParseCreateUser decodes and validates POST /api/auth/users.
func ParseCreateUser(body []byte) (users.NewUser, *httpapi.Error) {
	var b createUserBody
	if err := httpapi.DecodeJSON(body, &b); err != nil {
		return users.NewUser{}, asError(err)
	}
	in := users.NewUser{Username: deref(b.Username), Password: deref(b.Password), Role: deref(b.Role), Name: deref(b.Name)}
	var details []string
	details = append(details, users.ValidateUsername(in.Username)...)
	details = append(details, users.ValidatePassword(in.Password)...)
	if in.Role == "" {
		details = append(details, "Role is required")
	}
	if b.Name != nil {
		details = append(details, users.ValidateName(in.Name)...)
		in.Name = strings.TrimSpace(in.Name)
	}
	if len(details) > 0 {
		return in, httpapi.Validation(details...)
	}
	return in, nil
}

// ParseUpdateUser decodes and validates PATCH /api/auth/users/{username}.
func ParseUpdateUser(body []byte) (users.Changes, *httpapi.Error) {
	var b updateUserBody
	if err := httpapi.DecodeJSON(body, &b); err != nil {
		return users.Changes{}, asError(err)
	}
	ch := users.Changes{Role: b.Role, Name: b.Name, Active: b.Active, Password: b.Password, CurrentPassword: b.CurrentPassword}
	var details []string
	if b.Role == nil && b.Name == nil && b.Active == nil && b.Password == nil {
		details = append(details, "At least one of role, name, active or password is required")
	}
	if b.Role != nil && *b.Role == "" {
		details = append(details, "Role must not be empty")
	}
	if b.Name != nil {
		details = append(details, users.ValidateName(*b.Name)...)
		trimmed := strings.TrimSpace(*b.Name)
		ch.Name = &trimmed
	}
	if b.Password != nil {
		details = append(details, users.ValidatePassword(*b.Password)...)
	}
	if b.CurrentPassword != nil && *b.CurrentPassword == "" {
		details = append(details, "currentPassword must not be empty")
	}
	if len(details) > 0 {
		return ch, httpapi.Validation(details...)
	}
	return ch, nil
}

// actor is the caller as the rules of who may change whom see them: their
// user id and current role from the session's principal (never from the
// body), and their address and session for the lockout of a wrong current
// password.
func actor(r *httpapi.Request) users.Actor {
	a := users.Actor{RequestID: r.RequestID, ClientIP: r.ClientIP}
	if p := r.Principal; p != nil {
		a.Username, a.Role = p.UserID, p.Role
		if p.Session != nil {
			a.Session = p.Session.Handle
		}
	}
	return a
}

// listUsers serves GET /api/auth/users?limit=&cursor=.
func (s *service) listUsers(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	limit, herr := limitParam(r, defaultUserPage, maxUserPage)
	if herr != nil {
		return nil, herr
	}
	list, next, err := s.users.List(ctx, limit, r.Query["cursor"])
	if errors.Is(err, store.ErrBadCursor) {
		return nil, httpapi.Validation("cursor is invalid")
	}
	if err != nil {
		return nil, err
	}
	views := make([]users.View, 0, len(list))
	for _, u := range list {
		views = append(views, u.View())
	}
	body := map[string]any{"success": true, "users": views}
	if next != "" {
		body["cursor"] = next
	}
	return httpapi.JSON(http.StatusOK, body), nil
}

// createUser serves POST /api/auth/users.
func (s *service) createUser(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	in, herr := ParseCreateUser(r.Body)
	if herr != nil {
		return nil, herr
	}
	u, err := s.identity.CreateUser(ctx, actor(r), in)
	if err != nil {
		return nil, userError(err)
	}
	return httpapi.JSON(http.StatusCreated, map[string]any{"success": true, "message": "User created", "user": u.View()}), nil
}

// updateUser serves PATCH /api/auth/users/{username}; a role, password or
// active change ends that user's sessions at once.
func (s *service) updateUser(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	name := r.Params["username"]
	if users.ValidateUsername(name) != nil {
		return nil, userNotFound()
	}
	ch, herr := ParseUpdateUser(r.Body)
	if herr != nil {
		return nil, herr
	}
	u, ended, err := s.identity.UpdateUser(ctx, actor(r), name, ch)
	if err != nil {
		return nil, credentialsError(userError(err))
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"success": true, "message": "User updated", "user": u.View(), "sessionsEnded": ended}), nil
}

// deleteUser serves DELETE /api/auth/users/{username}: deactivates the user
// and ends their sessions (the item stays, so the name cannot be reused to
// inherit anything).
func (s *service) deleteUser(ctx context.Context, r *httpapi.Request) (*httpapi.Response, error) {
	name := r.Params["username"]
	if users.ValidateUsername(name) != nil {
		return nil, userNotFound()
	}
	u, err := s.identity.DeactivateUser(ctx, actor(r), name)
	if err != nil {
		return nil, userError(err)
	}
	return httpapi.JSON(http.StatusOK, map[string]any{"success": true, "message": "User deactivated", "user": u.View()}), nil
}

func userError(err error) error {
	switch {
	case errors.Is(err, users.ErrNotFound):
		return userNotFound()
	case errors.Is(err, users.ErrExists):
		return httpapi.Conflict(CodeUserExists, "User already exists")
	case errors.Is(err, users.ErrLastAdmin):
		return httpapi.Conflict(CodeLastAdmin, "The last active master_admin cannot be demoted, deactivated or deleted")
	case errors.Is(err, users.ErrUnknownRole):
		return httpapi.Validation("Role does not exist")
	case errors.Is(err, users.ErrConflict):
		return httpapi.Conflict(CodeConflict, "The user was changed concurrently, please retry")
	case errors.Is(err, users.ErrForbidden):
		return httpapi.Forbidden()
	case errors.Is(err, users.ErrProtected):
		return httpapi.Conflict(CodeProtectedUser, "The master user cannot be deactivated, demoted or deleted")
	case errors.Is(err, users.ErrCurrentPasswordRequired):
		return httpapi.Validation("currentPassword is required to change your own password")
	}
	return err
}
