package handlers

import "net/http"

// IdentityResponse is the body of GET /v1/identity: who the bearer token is, so a
// client such as the console can offer the admin an owner picker.
type IdentityResponse struct {
	Admin bool   `json:"admin"`
	Owner string `json:"owner,omitempty"`
	Actor string `json:"actor"`
}

func (a *api) identity(w http.ResponseWriter, _ *http.Request, id Identity) error {
	writeJSON(w, http.StatusOK, IdentityResponse{Admin: id.Admin, Owner: id.Owner, Actor: id.Actor()})
	return nil
}
