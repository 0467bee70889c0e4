package config

import (
	"strconv"

	"github.com/goccy/go-yaml/ast"
)

// pos returns the line and column of the deepest node along path (0, 0 if none).
func (d *decoder) pos(path []string) (int, int) {
	n := d.root
	if n == nil {
		return 0, 0
	}
	best := n
	for _, key := range path {
		next := child(n, key)
		if next == nil {
			break
		}
		n, best = next, next
	}
	return position(best)
}

// child returns the key node (for a mapping) or element (for a sequence) named key.
func child(n ast.Node, key string) ast.Node {
	if l, ok := n.(*located); ok {
		n = l.Node
	}
	for {
		switch t := n.(type) {
		case *ast.AnchorNode:
			n = t.Value
			continue
		case *ast.TagNode:
			n = t.Value
			continue
		}
		break
	}
	if seq, ok := n.(*ast.SequenceNode); ok {
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(seq.Values) {
			return nil
		}
		return seq.Values[i]
	}
	m, ok := n.(ast.MapNode)
	if !ok {
		return nil
	}
	it := m.MapRange()
	for it.Next() {
		k := it.Key()
		if tk := k.GetToken(); tk != nil && tk.Value == key {
			if v := it.Value(); v != nil {
				return &located{Node: v, at: k}
			}
			return k
		}
	}
	return nil
}

// located is a mapping value reported at its key's position (where a reader looks).
type located struct {
	ast.Node
	at ast.Node
}

func position(n ast.Node) (int, int) {
	if l, ok := n.(*located); ok {
		n = l.at
	}
	if n == nil {
		return 0, 0
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0, 0
	}
	return tk.Position.Line, tk.Position.Column
}
