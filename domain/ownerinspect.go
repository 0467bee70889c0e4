package domain

// Per-owner inspection. An on-demand server (OnDemand) is not inspected at
// startup; it is inspected with an owner's own values at that owner's first
// connect, and the result is that owner's alone: recorded on the owner's stream,
// never folded into the server's shared state.

// OwnerInspected records a successful inspection of server for owner: the
// catalogue that owner's /mcp offers for it.
type OwnerInspected struct {
	Owner      string          `json:"owner"`
	Inspection ServerInspected `json:"inspection"`
}

// OwnerInspectionFailed records a failed inspection of server for owner.
type OwnerInspectionFailed struct {
	Owner   string                 `json:"owner"`
	Failure ServerInspectionFailed `json:"failure"`
}

// OwnerInspectionStream is the stream of owner's inspections of server:
// "owner/<owner>/inspections/<server>".
func OwnerInspectionStream(owner, server string) string {
	return "owner/" + owner + "/inspections/" + server
}

// DecideOwnerInspection returns the fact recording outcome, an inspection of st's
// config (at its current version) for owner. Returns ErrServerNotFound (as a
// *ServerError) when st does not exist.
func DecideOwnerInspection(st ServerState, owner string, outcome InspectionOutcome) (any, error) {
	facts, err := DecideRecordInspection(st, RecordInspection{Scope: st.Scope, Name: st.Name,
		InspectedVersion: st.Version, Outcome: outcome})
	if err != nil {
		return nil, err
	}
	switch f := facts[0].(type) {
	case ServerInspected:
		f.Recovered = false
		return OwnerInspected{Owner: owner, Inspection: f}, nil
	case ServerInspectionFailed:
		return OwnerInspectionFailed{Owner: owner, Failure: f}, nil
	}
	return nil, nil
}
