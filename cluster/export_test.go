package cluster

import (
	"context"
	"encoding/json"
	"fmt"
)

// DebugInfo describes the stream head and its cluster for a failing test.
func DebugInfo(s *Store) string {
	info, err := s.stream.Info(context.Background())
	if err != nil {
		return err.Error()
	}
	b, _ := json.Marshal(info.Cluster)
	return fmt.Sprintf("last %d applied %d cluster %s", info.State.LastSeq, s.Applied(), b)
}

// HeadSubject is the subject of node's head reports.
func HeadSubject(node string) string { return headsPrefix + nodeToken(node) }

// DecodeDecision parses one decisions stream message.
var DecodeDecision = decodeDecision

// DecisionSubject is the subject of node's decisions.
func DecisionSubject(node string) string { return decisionsPrefix + nodeToken(node) }
