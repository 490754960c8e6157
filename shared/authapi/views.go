package authapi

import (
	"context"

	"github.com/zenithfresh/zenith-serverless/shared/sessions"
	"github.com/zenithfresh/zenith-serverless/shared/users"
)

// userView is API.md's `user`: never a password or hash.
type userView struct {
	Username    string      `json:"username"`
	Role        string      `json:"role"`
	Name        string      `json:"name"`
	Permissions *users.Role `json:"permissions"`
}

// featuresView is API.md's `features` (aiApis shown as aiAnalysis, as the original did).
type featuresView struct {
	Role        string       `json:"role"`
	RoleName    string       `json:"roleName"`
	AccessLevel string       `json:"accessLevel"`
	Features    featureFlags `json:"features"`
}

type featureFlags struct {
	AIAnalysis          bool   `json:"aiAnalysis"`
	CompetitiveAnalysis bool   `json:"competitiveAnalysis"`
	GeoOptimization     bool   `json:"geoOptimization"`
	AdvancedAudits      bool   `json:"advancedAudits"`
	SystemMonitoring    bool   `json:"systemMonitoring"`
	UserManagement      bool   `json:"userManagement"`
	BillingAccess       bool   `json:"billingAccess"`
	WhiteLabel          bool   `json:"whiteLabel"`
	APIAccess           string `json:"apiAccess"`
	ExportFormats       string `json:"exportFormats"`
}

type sessionView struct {
	ID           string   `json:"id"`
	User         userView `json:"user"`
	ExpiresAt    string   `json:"expiresAt"`
	LastActivity string   `json:"lastActivity,omitempty"`
}

type sessionResponse struct {
	Success   bool         `json:"success"`
	Session   sessionView  `json:"session"`
	Features  featuresView `json:"features"`
	RequestID string       `json:"requestId"`
}

// roleOf returns the user's role for display; a role missing from the store
// shows as its name with no permissions (and grants none).
func (s *service) roleOf(ctx context.Context, id string) (*users.Role, error) {
	role, _, err := s.sessions.Roles().Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if role == nil {
		return &users.Role{ID: id, Name: id}, nil
	}
	return role, nil
}

func (s *service) sessionBody(ctx context.Context, requestID, id, username, name, roleID string, sess *sessions.Session, withLastActivity bool) (*sessionResponse, error) {
	role, err := s.roleOf(ctx, roleID)
	if err != nil {
		return nil, err
	}
	body := &sessionResponse{
		Success: true,
		Session: sessionView{
			ID:        id,
			User:      userView{Username: username, Role: roleID, Name: name, Permissions: role},
			ExpiresAt: users.ISO(sess.EffectiveExpiry(s.sessions.Config())),
		},
		Features: featuresView{
			Role: roleID, RoleName: role.Name, AccessLevel: role.Access,
			Features: featureFlags{
				AIAnalysis: role.AIAPIs, CompetitiveAnalysis: role.CompetitiveAnalysis, GeoOptimization: role.GeoOptimization,
				AdvancedAudits: role.AdvancedAudits, SystemMonitoring: role.SystemMonitoring, UserManagement: role.UserManagement,
				BillingAccess: role.BillingAccess, WhiteLabel: role.WhiteLabel, APIAccess: role.APIAccess, ExportFormats: role.ExportFormats,
			},
		},
		RequestID: requestID,
	}
	if withLastActivity {
		body.Session.LastActivity = users.ISO(sess.LastActivity)
	}
	return body, nil
}
